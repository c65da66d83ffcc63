"""Onboarding, API keys and roles over HTTP: who may do what, and keys that are shown once and revocable."""

from __future__ import annotations

import hashlib

import asyncpg
import httpx
import pytest

from tests.conftest import OPERATOR_KEY, Tenant, make_tenant


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_operator_creates_a_merchant_with_business_codes(
    app_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    r = await app_client.post(
        "/v1/merchants",
        headers=bearer(OPERATOR_KEY),
        json={
            "name": "Müller Versand GmbH",
            "businesses": [
                {"code": 1001, "country": "DE", "currency": "EUR", "chart": "skr04"},
                {"code": 2200, "country": "GB", "currency": "GBP", "vat_rates": ["20", "5"]},
            ],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert [(b["code"], b["currency"], b["chart"], b["vat_rates"]) for b in body["businesses"]] == [
        (1001, "EUR", "skr04", ["19", "7"]),
        (2200, "GBP", "skr03", ["20", "5"]),
    ]
    key = body["api_key"]["key"]
    assert body["api_key"]["role"] == "admin"
    assert key.startswith(f"kontor_{body['merchant_id']}_")
    assert len(key.split("_", 3)[3]) >= 43  # 256 random bits, url-safe base64
    # only a hash is stored
    stored = await pool.fetchval("SELECT secret_sha256 FROM api_keys WHERE merchant_id = $1", body["merchant_id"])
    secret = key.split("_", 3)[3]
    assert stored == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in bytes(stored)
    listed = await app_client.get("/v1/businesses", headers=bearer(key))
    assert [b["code"] for b in listed.json()] == [1001, 2200]
    accounts = await app_client.get("/v1/businesses/2200/accounts", headers=bearer(key), params={"role": "VAT_20"})
    assert [(a["number"], a["vat_rate"]) for a in accounts.json()] == [("1776", "20")]
    skr04 = await app_client.get("/v1/businesses/1001/accounts/1200", headers=bearer(key))
    assert skr04.json()["role"] == "AR"  # SKR04 receivables


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "businesses": [{"code": 1001, "country": "DE", "currency": "XAU"}]}, 422, "currency_unknown"),
        ({"name": "x", "businesses": [{"code": 999, "country": "DE", "currency": "EUR"}]}, 400, "request_invalid"),
        ({"name": "x", "businesses": []}, 400, "request_invalid"),
        (
            {"name": "x", "businesses": [{"code": 1001, "country": "DE", "currency": "EUR"}] * 2},
            422,
            "business_duplicate",
        ),
        (
            {"name": "x", "businesses": [{"code": 1001, "country": "DE", "currency": "EUR", "vat_rates": ["0"]}]},
            422,
            "vat_rates_invalid",
        ),
        (
            {"name": "x", "businesses": [{"code": 1001, "country": "DE", "currency": "EUR"}], "admin": True},
            400,
            "request_invalid",
        ),
    ],
)
async def test_bad_onboarding_requests(
    app_client: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, object], status: int, code: str
) -> None:
    merchants = await pool.fetchval("SELECT count(*) FROM merchants")
    r = await app_client.post("/v1/merchants", headers=bearer(OPERATOR_KEY), json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await pool.fetchval("SELECT count(*) FROM merchants") == merchants, "nothing was created"


async def test_admin_adds_a_business_code(tenant: Tenant) -> None:
    r = await tenant.client.post(
        "/v1/businesses", headers=tenant.headers(), json={"code": 1006, "country": "FR", "currency": "EUR"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["vat_rates"] == ["20", "10", "5.5"]
    again = await tenant.client.post(
        "/v1/businesses", headers=tenant.headers(), json={"code": 1006, "country": "FR", "currency": "EUR"}
    )
    assert (again.status_code, again.json()["code"]) == (409, "business_exists")
    roles = {
        a["role"] for a in (await tenant.client.get("/v1/businesses/1006/accounts", headers=tenant.headers())).json()
    }
    assert {"REV_20", "REV_10", "REV_5_5", "VAT_5_5", "AR", "PSP"} <= roles


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic abc",
        "Bearer kontor_1_1_wrong",
        "Bearer kontor_x_y_z",
        "Bearer " + "a" * 300,
        "Bearer kontor_99999999_1_secret",
    ],
)
async def test_requests_without_a_valid_key_get_401(tenant: Tenant, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = await tenant.client.get(tenant.url("/accounts"), headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] in ("api_key_missing", "api_key_invalid")
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_wrong_secret_for_a_real_key_id_is_refused(tenant: Tenant) -> None:
    merchant, key_id = tenant.admin_key.split("_")[1:3]
    r = await tenant.client.get(tenant.url("/accounts"), headers=bearer(f"kontor_{merchant}_{key_id}_{'A' * 43}"))
    assert r.status_code == 401


async def test_roles(tenant: Tenant) -> None:
    lines = [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}]
    assert (await tenant.post_entry(lines, key=tenant.accountant_key, reason="typo")).status_code == 201  # a correction
    batch = {"entries": [{"effective_date": "2026-11-20", "description": "x", "lines": lines}]}
    assert (await tenant.post("/entries/batch", batch, key=tenant.accountant_key)).status_code == 403
    assert (await tenant.post_entry(lines, key=tenant.poster_key)).status_code == 201
    assert (await tenant.post_entry(lines, key=tenant.admin_key)).status_code == 201
    for key in (tenant.accountant_key, tenant.poster_key, tenant.admin_key):
        assert (await tenant.get("/entries", key=key)).status_code == 200
    for key in (tenant.accountant_key, tenant.poster_key):
        r = await tenant.client.post("/v1/api-keys", headers=bearer(key), json={"name": "x", "role": "admin"})
        assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")
        r = await tenant.client.post(
            tenant.url("/accounts"), headers=bearer(key), json={"number": "1999", "name": "x", "type": "asset"}
        )
        assert r.status_code == 403
    closing = await tenant.client.post(tenant.url("/periods/2026-09/close"), headers=bearer(tenant.poster_key))
    assert closing.status_code == 403
    closing = await tenant.client.post(
        tenant.url("/periods/2026-09/close"), headers=bearer(tenant.accountant_key), json={"reason": "month end"}
    )
    assert closing.status_code == 200, closing.text
    # a merchant key cannot onboard merchants, the operator key cannot read a merchant's books
    r = await tenant.client.post(
        "/v1/merchants",
        headers=tenant.headers(),
        json={"name": "x", "businesses": [{"code": 1001, "country": "DE", "currency": "EUR"}]},
    )
    assert r.status_code == 403
    assert (await tenant.client.get(tenant.url("/accounts"), headers=bearer(OPERATOR_KEY))).status_code == 403


async def test_keys_are_listed_without_secrets_and_revocation_is_immediate(tenant: Tenant) -> None:
    created = await tenant.client.post(
        "/v1/api-keys", headers=tenant.headers(), json={"name": "shop", "role": "poster"}
    )
    assert created.status_code == 201
    new = created.json()
    assert (await tenant.get("/entries", key=new["key"])).status_code == 200
    listed = await tenant.client.get("/v1/api-keys", headers=tenant.headers())
    assert all("key" not in k for k in listed.json())
    assert new["key"] not in listed.text
    revoked = await tenant.client.delete(f"/v1/api-keys/{new['key_id']}", headers=tenant.headers())
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    r = await tenant.get("/entries", key=new["key"])
    assert (r.status_code, r.json()["code"]) == (401, "api_key_invalid")
    missing = await tenant.client.delete("/v1/api-keys/999999999", headers=tenant.headers())
    assert missing.status_code == 404


async def test_another_merchants_key_id_cannot_be_revoked(tenant: Tenant) -> None:
    other = await make_tenant(tenant.client)
    other_key_id = other.poster_key.split("_")[2]
    r = await tenant.client.delete(f"/v1/api-keys/{other_key_id}", headers=tenant.headers())
    assert r.status_code == 404
    assert (await other.get("/entries", key=other.poster_key)).status_code == 200
