"""R7, tenant isolation: merchant A's keys against merchant B's business codes, entries, accounts and customers.

Passes when every attempt answers 404 (the resource does not exist for A) and B's books are unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from schemathesis import GenerationMode

from tests.conftest import Tenant, make_tenant


async def snapshot(pool: asyncpg.Pool, merchant_id: int) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT 'e', entry_id, 0 FROM entries WHERE merchant_id = $1 UNION ALL "
        "SELECT 'b', account_id, debit_minor - credit_minor FROM balance_totals WHERE merchant_id = $1 UNION ALL "
        "SELECT 'a', account_id, 0 FROM accounts WHERE merchant_id = $1 UNION ALL "
        "SELECT 'p', business, 0 FROM period_closes WHERE merchant_id = $1 UNION ALL "
        "SELECT 'k', key_id, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END FROM api_keys WHERE merchant_id = $1 "
        "ORDER BY 1, 2, 3",
        merchant_id,
    )
    return [tuple(r) for r in rows]


async def test_merchant_a_cannot_touch_merchant_b(pool: asyncpg.Pool, tenant: Tenant) -> None:
    a = tenant
    b = await make_tenant(a.client, businesses=[{"code": 2200, "country": "GB", "currency": "GBP"}])
    b_entry = await b.post_entry([{"account": "1200", "debit": "10.00"}, {"account": "8400", "credit": "10.00"}])
    assert b_entry.status_code == 201
    b_entry_id = b_entry.json()["id"]
    b_key_id = b.poster_key.split("_")[2]
    before = await snapshot(pool, b.merchant_id)

    lines = [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}]
    entry = {"effective_date": "2026-11-20", "description": "x", "lines": lines}
    attempts = [
        ("GET", "/v1/businesses/2200", None),
        ("GET", "/v1/businesses/2200/accounts", None),
        ("GET", "/v1/businesses/2200/accounts/1200", None),
        ("PATCH", "/v1/businesses/2200/accounts/1200", {"name": "x"}),
        ("POST", "/v1/businesses/2200/accounts", {"number": "1999", "name": "x", "type": "asset"}),
        ("GET", "/v1/businesses/2200/accounts/1200/balance", None),
        ("GET", "/v1/businesses/2200/accounts/1200/register", None),
        ("GET", "/v1/businesses/2200/customers/C-1/account", None),
        ("GET", "/v1/businesses/2200/entries", None),
        ("GET", f"/v1/businesses/2200/entries/{b_entry_id}", None),
        ("POST", "/v1/businesses/2200/entries", entry),
        ("POST", "/v1/businesses/2200/entries/batch", {"entries": [entry]}),
        ("POST", f"/v1/businesses/2200/entries/{b_entry_id}/reversal", {}),
        ("GET", "/v1/businesses/2200/journal/verify", None),
        ("GET", "/v1/businesses/2200/reports/trial-balance", None),
        ("GET", "/v1/businesses/2200/reports/balance-sheet", None),
        ("GET", "/v1/businesses/2200/reports/income-statement?from=2026-01-01&to=2026-12-31", None),
        ("GET", "/v1/businesses/2200/periods", None),
        ("POST", "/v1/businesses/2200/periods/2026-01/close", None),
        # B's entry id under A's own business code
        ("GET", f"/v1/businesses/1001/entries/{b_entry_id}", None),
        ("POST", f"/v1/businesses/1001/entries/{b_entry_id}/reversal", {}),
        ("DELETE", f"/v1/api-keys/{b_key_id}", None),
    ]
    for method, path, body in attempts:
        r = await a.client.request(method, path, json=body, headers=a.headers(idem=f"iso-{method}-{path}"))
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # lists scoped to A show nothing of B
    assert b_entry_id not in [e["id"] for e in (await a.get("/entries")).json()["items"]]
    assert [x["code"] for x in (await a.client.get("/v1/businesses", headers=a.headers())).json()] == [1001]
    assert await snapshot(pool, b.merchant_id) == before
    # and B's keys still work
    assert (await b.get(f"/entries/{b_entry_id}", key=b.poster_key)).status_code == 200


async def test_same_idempotency_key_in_two_merchants_is_two_requests(tenant: Tenant) -> None:
    b = await make_tenant(tenant.client)
    lines = [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}]
    first = await tenant.post_entry(lines, idem="shared-key-1")
    second = await b.post_entry(lines, idem="shared-key-1")
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]


async def test_every_route_refuses_another_merchants_ids(
    pool: asyncpg.Pool, app: Litestar, app_url: str, app_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Every operation that names a business code or an id, generated from the OpenAPI document with valid
    bodies, sent with merchant A's admin key and merchant B's business code and ids: 404 (or 403), and B's
    books unchanged."""
    a = tenant
    b = await make_tenant(a.client, businesses=[{"code": 2200, "country": "GB", "currency": "GBP"}])
    b_entry = await b.post_entry([{"account": "1200", "debit": "10.00"}, {"account": "8400", "credit": "10.00"}])
    b_callback = await b.client.post(
        "/v1/notification-callbacks",
        headers=b.headers(),
        json={"url": "https://hooks.example.com/b", "types": ["balance.updated"]},
    )
    assert (b_entry.status_code, b_callback.status_code) == (201, 201)
    ids = {
        "business_code": 2200,
        "key_id": int(b.poster_key.split("_")[2]),
        "callback_id": b_callback.json()["callback_id"],
        "customer": "C-1",
        "order": "o-1",
        "number": "1200",
        "period": "2026-01",
        "settlement_id": "1",
    }
    before = await snapshot(pool, b.merchant_id)
    doc = (await app_client.get("/schema/openapi.json")).json()
    sent = await asyncio.to_thread(attack, doc, app_url, a.admin_key, ids, b_entry.json()["id"])
    assert len(sent) > 50, sorted(sent)  # every operation that names a business code or an id
    assert await snapshot(pool, b.merchant_id) == before
    assert (await b.get(f"/entries/{b_entry.json()['id']}", key=b.poster_key)).status_code == 200


def attack(doc: dict[str, Any], base_url: str, key: str, ids: dict[str, Any], other_id: int) -> set[str]:
    sent: set[str] = set()
    with requests.Session() as session:
        for result in schemathesis.openapi.from_dict(doc).get_all_operations():
            op = result.ok()
            params = {p["name"] for p in doc["paths"][op.path][op.method].get("parameters", []) if p["in"] == "path"}
            if not params or op.path.startswith("/v1/base-rates"):
                continue  # acts on the caller's own merchant only, or operator data shared by all
            values = {name: ids.get(name, other_id) for name in params}
            probe_operation(op, values, base_url, key, session)
            sent.add(f"{op.method.upper()} {op.path}")
    return sent


def probe_operation(op: Any, values: dict[str, Any], base_url: str, key: str, session: requests.Session) -> None:
    @settings(max_examples=3, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def probe(case: schemathesis.Case) -> None:
        case.path_parameters = values
        r = case.call(base_url=base_url, session=session, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code in (403, 404), (op.method, op.path, r.status_code, r.text[:300])
        assert r.headers["content-type"][0].startswith("application/problem+json")

    probe()
