"""Coalesced postings: requests that share one commit keep their own outcomes (ledger/coalesce.py, schema.sql
kontor_post_coalesced).

Method: a service of its own whose posting queue sends a batch only when it holds exactly as many requests as
the test sends at once (the window is far longer than the test), so that every request of the test lands in
one batch; the entries booked from it share one transaction id, which the test checks. Then the books are
compared with what the answers say.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.app import create_app
from ledger.config import Settings
from tests.conftest import FixedClock, Tenant, client_for, make_tenant, running


def order(i: int, *, date: str = "2026-11-20", gross: str = "119.00") -> dict[str, Any]:
    return {
        "effective_date": date,
        "description": f"order {i}",
        "reference": f"coalesced-{i}",
        "lines": [
            {"account": "1400", "customer": f"C-{i}", "debit": gross},
            {"account": "8400", "credit": "100.00"},
            {"account": "1776", "credit": f"{int(gross.split('.', maxsplit=1)[0]) - 100}.00"},
        ],
    }


@pytest.fixture
async def batch_of_eight(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    """A service whose batches leave when 8 postings wait (and only then)."""
    tuned = replace(settings, post_coalesce_window_ms=600_000.0, post_coalesce_entries_max=8)
    application = create_app(tuned, clock=clock, plugins=[])
    async with running(application), client_for(application) as client:
        yield client


async def post(t: Tenant, body: dict[str, Any], key: str) -> httpx.Response:
    return await t.client.post(t.url("/entries"), json=body, headers=t.headers(t.poster_key, key))


async def test_a_refused_entry_inside_a_coalesced_batch_leaves_its_neighbours_booked(
    pool: asyncpg.Pool, batch_of_eight: httpx.AsyncClient
) -> None:
    t = await make_tenant(batch_of_eight)
    # books a September entry and closes October (and September) with it: a month the batch may not post into
    first_key = str(uuid.uuid4())
    earlier = await asyncio.gather(
        post(t, order(100, date="2026-09-30"), first_key),
        *(post(t, order(200 + i), str(uuid.uuid4())) for i in range(7)),
    )
    assert [r.status_code for r in earlier] == [201] * 8, [r.text for r in earlier]
    closed = await t.post("/periods/2026-10/close", {"reason": "VAT return filed"}, key=t.accountant_key, idem=None)
    assert closed.is_success, closed.text

    twin = str(uuid.uuid4())
    answers = await asyncio.gather(
        post(t, order(1), str(uuid.uuid4())),
        post(t, order(2, date="2026-10-15"), str(uuid.uuid4())),  # closed period: refused
        post(t, order(3), str(uuid.uuid4())),
        post(t, order(4), first_key),  # a key already used for another body: refused
        post(t, order(5), twin),
        post(t, order(5), twin),  # the same request twice in one batch: booked once, answered alike
        post(t, order(6), str(uuid.uuid4())),
        post(t, order(7, date="2026-10-01"), str(uuid.uuid4())),  # closed period: refused
    )
    statuses = [r.status_code for r in answers]
    assert statuses == [201, 409, 201, 422, 201, 201, 201, 409], [r.text for r in answers]
    assert answers[1].json()["code"] == answers[7].json()["code"] == "period_closed"
    assert answers[3].json()["code"] == "idempotency_key_reused"
    assert answers[4].text == answers[5].text
    assert sorted(r.headers.get("Idempotent-Replayed", "-") for r in answers[4:6]) == ["-", "true"]

    booked = await pool.fetch(
        "SELECT reference, xid::text AS xid FROM entries WHERE merchant_id = $1 AND reference = ANY($2::text[])",
        t.merchant_id,
        [f"coalesced-{i}" for i in range(1, 8)],
    )
    assert sorted(r["reference"] for r in booked) == [f"coalesced-{i}" for i in (1, 3, 5, 6)]
    assert len({r["xid"] for r in booked}) == 1, "the neighbours were booked in one commit"
    ids = {answers[i].json()["reference"]: answers[i].json()["id"] for i in (0, 2, 4, 6)}
    for reference, entry_id in ids.items():
        stored = await t.get(f"/entries/{entry_id}")
        assert (stored.status_code, stored.json()["reference"]) == (200, reference)
    # the balances are the sums of the lines booked: 4 of the batch and 8 before it
    balance = (await t.get("/accounts/8400/balance")).json()["balances"][0]
    assert (balance["balance"], balance["side"]) == ("1200.00", "CREDIT")
    trial = (await t.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True


async def test_a_batch_refused_whole_is_posted_again_one_by_one(
    pool: asyncpg.Pool, batch_of_eight: httpx.AsyncClient
) -> None:
    """The account bound is checked on the batch's sums: when one posting would exceed it, the database refuses
    the whole batch; its postings are then posted alone, and only the one beyond the bound is refused."""
    t = await make_tenant(batch_of_eight)
    huge = "10000000000000.00"  # 10^15 minor units, the most one line may carry
    filling = [
        {
            "effective_date": "2026-11-20",
            "description": f"filling {i}",
            "lines": [{"account": "1200", "debit": huge}, {"account": "1360", "credit": huge}],
        }
        for i in range(9)  # 9 x 10^15: account 1360 is at its bound
    ]
    answers = await asyncio.gather(*(post(t, body, str(uuid.uuid4())) for body in filling[:8]))
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    beyond = {**filling[8], "description": "one more"}
    answers = await asyncio.gather(
        post(t, filling[8], str(uuid.uuid4())),
        post(t, beyond, str(uuid.uuid4())),  # one of these two is refused: 10 x 10^15 would exceed the bound
        *(post(t, order(i), str(uuid.uuid4())) for i in range(6)),
    )
    statuses = [r.status_code for r in answers]
    assert sorted(statuses[:2]) == [201, 422], [r.text for r in answers]
    assert next(r for r in answers[:2] if r.status_code == 422).json()["code"] == "account_total_exceeded"
    assert statuses[2:] == [201] * 6
    count = await pool.fetchval(
        "SELECT count(*) FROM entries WHERE merchant_id = $1 AND reference LIKE 'coalesced-%'", t.merchant_id
    )
    assert count == 6
