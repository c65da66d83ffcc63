"""Connecting a business code to Amazon Pay (v2): keys or delegated access, proven by a signed call to Amazon,
secrets sealed and never shown, an Amazon merchant account belonging to one business code of one merchant."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Simulator, Tenant, make_tenant
from tests.e2e.amazon import amazon_merchant, connect, item, make_shop


async def _put(tenant: Tenant, body: dict[str, Any], code: int | None = None) -> httpx.Response:
    url = f"/v1/businesses/{code or tenant.business}/amazon-pay/settings"
    return await tenant.client.put(url, headers=tenant.headers(), json=body)


def _pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


async def test_keys_are_proven_sealed_and_never_shown(
    tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    account = await amazon_merchant(simulator)
    body_of_key = account["private_key"].splitlines()[5]  # a line of the PEM's base64 body
    with caplog.at_level(logging.DEBUG):
        r = await connect(tenant, account)
        shop_order = await make_shop(tenant, simulator)  # connects again (another account) and orders with the key
        assert (await shop_order.create_order("o-k", [item(1, "10.00")])).status_code == 201
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["access"], out["private_key_set"], out["public_key_id"]) == ("keys", True, account["public_key_id"])
    assert out["verified_at"] is not None
    assert "PRIVATE KEY" not in r.text
    assert body_of_key not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    stored = await pool.fetchval(
        "SELECT private_key_sealed FROM amazon_pay_settings WHERE merchant_id = $1", tenant.merchant_id
    )
    assert stored.startswith("kv1.")
    # a database dump: no text column of any table holds the key in clear
    dump = await pool.fetchval(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM amazon_pay_settings WHERE merchant_id = $1) t",
        tenant.merchant_id,
    )
    assert body_of_key not in dump
    assert "PRIVATE KEY" not in dump
    read = await tenant.client.get(tenant.url("/amazon-pay/settings"), headers=tenant.headers())
    assert "PRIVATE KEY" not in read.text
    assert (await tenant.get("/amazon-pay/settings", key=tenant.poster_key)).status_code == 403


async def test_a_later_put_keeps_the_stored_key(tenant: Tenant, simulator: Simulator) -> None:
    account = await amazon_merchant(simulator)
    assert (await connect(tenant, account)).status_code == 200
    again = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "region": "eu",
            "sandbox": True,
            "payment_execution": "two_step",
        },
    )
    assert again.status_code == 200, again.text
    assert (again.json()["payment_execution"], again.json()["private_key_set"]) == ("two_step", True)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"private_key": "not a key at all, clearly not a PEM" * 3}, "private_key"),
        ({"public_key_id": "SANDBOX-UNKNOWNKEYID0000000000"}, "public_key_id"),  # unknown to Amazon: no signature check
        ({"sandbox": False}, "sandbox"),  # a sandbox key (SANDBOX-...) for the live environment
    ],
)
async def test_credentials_amazon_refuses_are_a_422_naming_the_field(
    tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool, change: dict[str, Any], field: str
) -> None:
    account = await amazon_merchant(simulator)
    body = {
        "amazon_merchant_id": account["merchant_id"],
        "public_key_id": account["public_key_id"],
        "private_key": account["private_key"],
        "region": "eu",
        "sandbox": True,
        **change,
    }
    r = await _put(tenant, body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert (
        await pool.fetchval("SELECT count(*) FROM amazon_pay_settings WHERE merchant_id = $1", tenant.merchant_id) == 0
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM amazon_pay_accounts WHERE merchant_id = $1", tenant.merchant_id) == 0
    )


async def test_another_key_pair_is_refused_by_amazon(tenant: Tenant, simulator: Simulator) -> None:
    account = await amazon_merchant(simulator)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "private_key": _pem(other, serialization.PrivateFormat.TraditionalOpenSSL),  # PKCS#1 is read too
            "sandbox": True,
        },
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["public_key_id", "private_key"]


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "bits"),
        (
            lambda: (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"secret"),
                )
                .decode()
            ),
            "password",
        ),
    ],
)
async def test_unusable_keys_are_refused_before_amazon_is_asked(
    tenant: Tenant, simulator: Simulator, pem: Any, message: str
) -> None:
    account = await amazon_merchant(simulator)
    r = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "private_key": pem(),
            "sandbox": True,
        },
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "private_key")
    assert message in r.json()["detail"]


async def test_an_amazon_account_belongs_to_one_business_code(
    tenant: Tenant, simulator: Simulator, app_client: httpx.AsyncClient
) -> None:
    account = await amazon_merchant(simulator)
    assert (await connect(tenant, account)).status_code == 200
    other = await make_tenant(app_client, name="Someone Else GmbH")
    taken = await connect(other, account)
    assert (taken.status_code, taken.json()["code"]) == (409, "amazon_merchant_taken")
    assert "another Kontor merchant" in taken.json()["detail"]
    second = await tenant.client.post(
        "/v1/businesses", headers=tenant.headers(), json={"code": 2001, "country": "AT", "currency": "EUR"}
    )
    assert second.status_code == 201, second.text
    in_use = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "private_key": account["private_key"],
            "sandbox": True,
        },
        code=2001,
    )
    assert (in_use.status_code, in_use.json()["code"]) == (409, "amazon_merchant_in_use")
    # moving the business code to another account frees the first one
    assert (await connect(tenant, await amazon_merchant(simulator))).status_code == 200
    assert (await connect(other, account)).status_code == 200


async def test_delegated_access_through_kontors_provider_key(tenant: Tenant, simulator: Simulator) -> None:
    account = await amazon_merchant(simulator)
    grant = await simulator.control(
        "POST",
        "providers/grants",
        json={"merchant_id": account["merchant_id"], "public_key_id": simulator.provider_key_id},
    )
    token = grant.json()["mws_auth_token"]
    r = await _put(tenant, {"amazon_merchant_id": account["merchant_id"], "mws_auth_token": token, "sandbox": True})
    assert r.status_code == 200, r.text
    assert (r.json()["access"], r.json()["auth_token_set"], r.json()["public_key_id"]) == ("delegated", True, None)
    assert token not in r.text
    # an order through the delegated token
    from tests.e2e.amazon import Shop

    shop = Shop(tenant=tenant, sim=simulator, merchant_id=account["merchant_id"])
    order = await shop.create_order("o-d", [item(1, "25.00")])
    assert order.status_code == 201, order.text
    assert order.json()["status"] == "captured"
    forged = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "mws_auth_token": "amzn.mws." + secrets.token_hex(16),
            "sandbox": True,
        },
    )
    assert (forged.status_code, forged.json()["errors"][0]["field"]) == (422, "mws_auth_token")


async def test_keys_and_token_together_are_ambiguous(tenant: Tenant, simulator: Simulator) -> None:
    account = await amazon_merchant(simulator)
    r = await _put(
        tenant,
        {
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "private_key": account["private_key"],
            "mws_auth_token": "amzn.mws.0000",
        },
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "mws_auth_token")


async def test_amazon_out_of_reach_stores_nothing(tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool) -> None:
    account = await amazon_merchant(simulator)
    await simulator.control("POST", "failures", json={"count": 2, "status": 503})  # both attempts (tests: 2)
    r = await connect(tenant, account)
    assert (r.status_code, r.json()["code"]) == (502, "gateway_unavailable")
    assert r.headers["Retry-After"] == "30"
    assert (
        await pool.fetchval("SELECT count(*) FROM amazon_pay_settings WHERE merchant_id = $1", tenant.merchant_id) == 0
    )
    assert (await connect(tenant, account)).status_code == 200


async def test_orders_need_amazon_pay_settings(tenant: Tenant) -> None:
    r = await tenant.client.post(
        tenant.url("/customers/C-1/orders"),
        headers=tenant.headers(tenant.poster_key),
        json={
            "order_reference": "x",
            "order_date": "2026-11-20",
            "items": [item(1, "1.00")],
            "payment_method": {"checkout_session_id": "bd504926-f659-4ad7-a1a9-9a747aaf5275"},
        },
    )
    assert (r.status_code, r.json()["code"]) == (409, "amazon_pay_not_configured")
    shown = await tenant.client.get(tenant.url("/amazon-pay/settings"), headers=tenant.headers())
    assert (shown.status_code, shown.json()["code"]) == (404, "amazon_pay_settings_not_found")


async def test_no_token_reaches_a_log_line_at_any_level(
    tenant: Tenant, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """QA finding 8: httpx logged "HTTP Request: GET .../v2/authorizationTokens/amzn.mws.…?merchantId=…" at INFO,
    and Kontor's own call line showed the same path at DEBUG."""
    account = await amazon_merchant(simulator)
    grant = await simulator.control(
        "POST",
        "providers/grants",
        json={"merchant_id": account["merchant_id"], "public_key_id": simulator.provider_key_id},
    )
    token = grant.json()["mws_auth_token"]
    with caplog.at_level(logging.DEBUG):
        r = await _put(tenant, {"amazon_merchant_id": account["merchant_id"], "mws_auth_token": token, "sandbox": True})
        assert r.status_code == 200, r.text
        from tests.e2e.amazon import Shop

        shop = Shop(tenant=tenant, sim=simulator, merchant_id=account["merchant_id"])
        assert (await shop.create_order("o-log", [item(1, "5.00")])).status_code == 201
    v2_token = simulator.sim.ring.issued[(simulator.provider_key_id, account["merchant_id"])]
    # what the simulator's own web server logs is Amazon's side (a served simulator of another test may log here)
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in ours)  # the message, its args and extras
    for secret in (token, token.removeprefix("amzn.mws."), v2_token):
        assert secret not in logged
    assert "authorizationTokens/[redacted]" in logged  # the exchange was logged, without its token
