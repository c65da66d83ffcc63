"""R10: the database connection is lost in the middle of requests.

Method: while postings and reads run concurrently, the service's connections are terminated from the
database side (pg_terminate_backend, as a failover or an idle-killer does) again and again. Passes when
every request either succeeds or fails cleanly (problem+json 503, never a hung request or a 500), every
failed posting retried with its Idempotency-Key is booked exactly once, nothing is half-written, and the
pool serves normally afterwards.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.conftest import Tenant
from tests.integration.test_concurrency import sum_of_lines

KILL_SERVICE_CONNECTIONS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = 'kontor' AND datname = current_database()"
)


async def test_requests_survive_or_fail_cleanly_when_connections_are_killed(pool: asyncpg.Pool, tenant: Tenant) -> None:
    count = 300
    keys = [str(uuid.uuid4()) for _ in range(count)]

    def body(i: int) -> dict[str, object]:
        return {
            "effective_date": "2026-11-20",
            "description": f"sale {i}",
            "lines": [
                {"account": "1400", "customer": f"C-{i % 7}", "debit": "1.19"},
                {"account": "8400", "credit": "1.00"},
                {"account": "1776", "credit": "0.19"},
            ],
        }

    async def post(i: int) -> httpx.Response:
        headers = tenant.headers(tenant.poster_key, keys[i])
        return await tenant.client.post(tenant.url("/entries"), json=body(i), headers=headers)

    killed = 0

    async def killer() -> None:
        nonlocal killed
        for _ in range(6):
            await asyncio.sleep(0.15)
            killed += await pool.fetchval(KILL_SERVICE_CONNECTIONS)

    async def reads() -> list[httpx.Response]:
        out = []
        for _ in range(30):
            out.append(await tenant.get("/accounts/1400/balance"))
            await asyncio.sleep(0.04)
        return out

    async def paced(i: int) -> httpx.Response:
        await asyncio.sleep(i * 0.004)  # spread over ~1.2 s, across the kills
        return await post(i)

    posted, read, _ = await asyncio.gather(asyncio.gather(*(paced(i) for i in range(count))), reads(), killer())
    assert killed > 0, "the test killed no connection: it proved nothing"
    for r in [*posted, *read]:
        assert r.status_code in (200, 201, 503), (r.status_code, r.text)
        if r.status_code == 503:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "database_unavailable"
            assert r.headers["retry-after"]
    # every posting that did not get its 201 is retried with its key: booked exactly once overall
    failed = [i for i, r in enumerate(posted) if r.status_code != 201]
    print(
        f"R10: {killed} connections killed; postings 503: {len(failed)}, reads 503: "
        f"{sum(r.status_code == 503 for r in read)}"
    )
    for i in failed:
        retried = await post(i)
        assert retried.status_code == 201, retried.text
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id) == count
    assert await sum_of_lines(pool, tenant, "1400") == count * 119
    # nothing half-written: every entry has its three lines (the database also refuses an unbalanced commit)
    sizes = await pool.fetch(
        "SELECT count(*) AS n FROM lines WHERE merchant_id = $1 GROUP BY entry_id", tenant.merchant_id
    )
    assert {r["n"] for r in sizes} == {3}
    # the pool recovered: requests succeed at once
    for _ in range(20):
        assert (await tenant.get("/accounts/1400/balance")).status_code == 200
    balance = (await tenant.get("/accounts/1400/balance")).json()["balances"][0]["balance"]
    assert balance == f"{count * 119 // 100}.{count * 119 % 100:02d}"
