"""Concurrency: parallel postings on hot accounts, concurrent duplicates (R3), a balance that may not go negative (R2).

Method: fire requests concurrently through the HTTP API (the service runs them on its own event loop
with a real connection pool), then compare what the API reports with sums computed by SQL over the
lines, and with the arithmetic expectation.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import Tenant


async def sum_of_lines(pool: asyncpg.Pool, t: Tenant, number: str) -> int:
    value = await pool.fetchval(
        "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0) FROM lines l "
        "JOIN accounts a USING (merchant_id, business, account_id) WHERE l.merchant_id = $1 AND a.number = $2",
        t.merchant_id,
        number,
    )
    return int(value)


async def test_fifty_parallel_postings_on_the_same_accounts(pool: asyncpg.Pool, tenant: Tenant) -> None:
    results = await asyncio.gather(
        *(
            tenant.post_entry(
                [
                    {"account": "1210", "debit": "119.00"},
                    {"account": "8400", "credit": "100.00"},
                    {"account": "1776", "credit": "19.00"},
                ],
                description=f"order {i}",
            )
            for i in range(50)
        )
    )
    assert [r.status_code for r in results] == [201] * 50
    assert len({r.json()["id"] for r in results}) == 50
    expected = {"1210": 50 * 11900, "8400": -50 * 10000, "1776": -50 * 1900}
    for number, minor in expected.items():
        assert await sum_of_lines(pool, tenant, number) == minor
        balance = (await tenant.get(f"/accounts/{number}/balance")).json()["balances"][0]
        assert balance["balance"] == f"{abs(minor) // 100}.{abs(minor) % 100:02d}"
        assert balance["side"] == ("DEBIT" if minor > 0 else "CREDIT")
    # the slots were spread: hot accounts are several rows, not one locked row
    slots = await pool.fetchval(
        "SELECT count(DISTINCT slot) FROM balance_totals WHERE merchant_id = $1", tenant.merchant_id
    )
    assert slots > 1
    trial = (await tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True
    assert trial["totals"] == [{"currency": "EUR", "debit": "5950.00", "credit": "5950.00"}]


async def test_concurrent_duplicates_book_exactly_one_entry(pool: asyncpg.Pool, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    lines = [{"account": "1400", "customer": "C-9", "debit": "50.00"}, {"account": "8400", "credit": "50.00"}]
    results = await asyncio.gather(*(tenant.post_entry(lines, idem=key) for _ in range(12)))
    assert {r.status_code for r in results} == {201}
    bodies = {r.text for r in results}
    assert len(bodies) == 1, "every duplicate gets the identical original response"
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == 11
    count = await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id)
    assert count == 1


async def test_concurrent_reuse_with_different_bodies(pool: asyncpg.Pool, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    results = await asyncio.gather(
        *(
            tenant.post_entry(
                [{"account": "1200", "debit": f"{i}.00"}, {"account": "8400", "credit": f"{i}.00"}], idem=key
            )
            for i in range(1, 9)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [422] * 7
    assert all(r.json()["code"] == "idempotency_key_reused" for r in results if r.status_code == 422)
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id) == 1


async def test_account_that_may_not_go_negative_under_concurrency(pool: asyncpg.Pool, tenant: Tenant) -> None:
    """R2: 200 concurrent withdrawals of 100.00 from a wallet holding 10,000.00: exactly 100 succeed, none fails
    with a server error, and the wallet ends at zero."""
    r = await tenant.client.post(
        tenant.url("/accounts"),
        headers=tenant.headers(),
        json={"number": "1370", "name": "Prepaid wallet", "type": "liability", "allow_negative": False},
    )
    assert r.status_code == 201, r.text
    funded = await tenant.post_entry(
        [{"account": "1200", "debit": "10000.00"}, {"account": "1370", "credit": "10000.00"}]
    )
    assert funded.status_code == 201
    results = await asyncio.gather(
        *(
            tenant.post_entry([{"account": "1370", "debit": "100.00"}, {"account": "1200", "credit": "100.00"}])
            for _ in range(200)
        )
    )
    statuses = [r.status_code for r in results]
    assert (statuses.count(201), statuses.count(409)) == (100, 100), sorted(set(statuses))
    assert {r.json()["code"] for r in results if r.status_code == 409} == {"insufficient_balance"}
    assert await sum_of_lines(pool, tenant, "1370") == 0
    balance = (await tenant.get("/accounts/1370/balance")).json()["balances"][0]
    assert (balance["balance"], balance["side"]) == ("0.00", "BALANCED")


def idempotent_posting(i: int) -> dict[str, Any]:
    return {
        "effective_date": "2026-11-20",
        "description": f"order {i}",
        "reference": f"R3-{i}",
        "lines": [
            {"account": "1400", "customer": f"C-{i % 17}", "debit": f"{100 + i}.19"},
            {"account": "8400", "credit": f"{100 + i}.00"},
            {"account": "1776", "credit": "0.19"},
        ],
    }


async def send_three_times(tenant: Tenant, count: int) -> None:
    """R3: every posting is sent three times, two of them concurrently and one after, in waves of 50."""
    keys = [str(uuid.uuid4()) for _ in range(count)]

    async def send(i: int) -> list[Any]:
        body, headers = idempotent_posting(i), tenant.headers(tenant.poster_key, keys[i])
        pair = await asyncio.gather(
            *(tenant.client.post(tenant.url("/entries"), json=body, headers=headers) for _ in "ab")
        )
        later = await tenant.client.post(tenant.url("/entries"), json=body, headers=headers)
        return [*pair, later]

    for wave in range(0, count, 50):
        for responses in await asyncio.gather(*(send(i) for i in range(wave, min(wave + 50, count)))):
            assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
            assert len({r.text for r in responses}) == 1, "replays return the identical body"
            assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 2
    # a used key with another body is refused and books nothing
    changed = {**idempotent_posting(0), "description": "changed"}
    r = await tenant.client.post(
        tenant.url("/entries"), json=changed, headers=tenant.headers(tenant.poster_key, keys[0])
    )
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")


async def test_postings_sent_three_times_are_booked_once(pool: asyncpg.Pool, tenant: Tenant) -> None:
    count = 1000
    await send_three_times(tenant, count)
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id) == count
    refs = await pool.fetchval(
        "SELECT count(DISTINCT reference) FROM entries WHERE merchant_id = $1", tenant.merchant_id
    )
    assert refs == count
    expected = sum((100 + i) * 100 + 19 for i in range(count))
    assert await sum_of_lines(pool, tenant, "1400") == expected


async def test_transactions_are_retried_whole_after_a_deadlock_and_only_so_often(pool: asyncpg.Pool) -> None:
    from ledger.db import transaction_retrying

    calls: list[int] = []

    async def flaky(conn: Any) -> int:
        calls.append(await conn.fetchval("SELECT txid_current()"))
        if len(calls) < 3:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return len(calls)

    assert await transaction_retrying(pool, 3, flaky) == 3
    assert len(set(calls)) == 3  # each attempt ran in a transaction of its own

    async def hopeless(conn: Any) -> None:
        calls.append(0)
        raise asyncpg.SerializationError("could not serialize access")

    calls.clear()
    with pytest.raises(asyncpg.SerializationError):
        await transaction_retrying(pool, 2, hopeless)
    assert len(calls) == 2

    async def wrong(conn: Any) -> None:
        calls.append(0)
        raise asyncpg.UniqueViolationError("not retryable")

    calls.clear()
    with pytest.raises(asyncpg.UniqueViolationError):
        await transaction_retrying(pool, 3, wrong)
    assert len(calls) == 1
