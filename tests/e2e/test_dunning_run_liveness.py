"""A dunning run whose runner is gone is not shown as running for ever (security-16): the business code's run
lock is the run's lease. A row left `running` while nobody holds the lock becomes `failed` ("aborted: ..."), a
live runner's row (lock held, perhaps by another instance) stays `running`, and a later run completes the day.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from dunning.runlog import LOCK_CLASS, lock_key
from ledger.context import Kontor
from ledger.tenancy import get_business
from tests.conftest import Tenant

POLICY = {"levels": [{"days": 1, "payment_term_days": 14, "fee": "0.00"}]}


async def _left_running(pool: asyncpg.Pool, tenant: Tenant, trigger: str, as_of: date) -> int:
    """The row a runner that was killed mid-run leaves behind."""
    run_id: int = await pool.fetchval(
        "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, $2, $3, $4, 'running') "
        "RETURNING run_id",
        tenant.merchant_id,
        tenant.business,
        as_of,
        trigger,
    )
    return run_id


async def _run(tenant: Tenant, run_id: int) -> dict[str, Any]:
    r = await tenant.get(f"/dunning/runs/{run_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_run_whose_runner_died_shows_as_aborted(pool: asyncpg.Pool, tenant: Tenant) -> None:
    run_id = await _left_running(pool, tenant, "api", date(2026, 11, 27))
    listed = (await tenant.get("/dunning/runs")).json()
    assert [(r["run_id"], r["state"]) for r in listed] == [(run_id, "failed")]
    run = await _run(tenant, run_id)
    assert run["error"].startswith("aborted:")
    assert run["finished_at"] is not None


async def test_a_live_runner_keeps_its_run_running(
    ctx: Kontor, database_url: str, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    business = await get_business(ctx, tenant.merchant_id, tenant.business)
    runner = await asyncpg.connect(database_url)  # another instance, running the business code's dunning
    try:
        await runner.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, lock_key(business))
        run_id = await _left_running(pool, tenant, "api", date(2026, 11, 27))
        assert (await _run(tenant, run_id))["state"] == "running"
        busy = await tenant.post("/dunning/runs", {"as_of": "2026-11-27"}, key=tenant.poster_key, idem=None)
        assert (busy.status_code, busy.json()["code"]) == (409, "dunning_run_in_progress")
    finally:
        await runner.close()  # the runner dies: the database releases its lock
    assert (await _run(tenant, run_id))["state"] == "failed"


async def test_the_next_run_completes_the_day_and_closes_the_dead_row(pool: asyncpg.Pool, tenant: Tenant) -> None:
    assert (await tenant.client.put(tenant.url("/dunning/policy"), json=POLICY, headers=tenant.headers())).is_success
    await tenant.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-01")
    dead = await _left_running(pool, tenant, "api", date(2026, 11, 2))
    r = await tenant.post("/dunning/runs", {"as_of": "2026-11-02"}, key=tenant.poster_key, idem=None)
    assert (r.status_code, r.json()["state"]) == (200, "done"), r.text
    states = {row["run_id"]: row["state"] for row in (await tenant.get("/dunning/runs")).json()}
    assert states == {dead: "failed", r.json()["run_id"]: "done"}
    assert [n["level"] for n in (await tenant.get("/dunning/notices")).json()["items"]] == [1]


async def test_the_resume_job_finishes_a_scheduled_slot_left_running(
    ctx: Kontor, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    from dunning.plugin import run_due

    assert (await tenant.client.put(tenant.url("/dunning/policy"), json=POLICY, headers=tenant.headers())).is_success
    await tenant.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-01")
    slot = await _left_running(pool, tenant, "schedule", ctx.today())
    assert (await _run(tenant, slot))["state"] == "failed"  # shown as aborted while nobody works on it
    await run_due(ctx, only_started=True)
    run = await _run(tenant, slot)
    assert (run["state"], run["error"]) == ("done", None)
    assert [n["level"] for n in (await tenant.get("/dunning/notices")).json()["items"]] == [1]
