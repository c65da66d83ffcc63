"""The record of dunning runs (table dunning_runs), the lock that makes a run its business code's only one, and
reading runs back.

One run per business code at a time, across all service instances: the runner holds a PostgreSQL
advisory lock for the run (released by the database if the runner dies). Scheduled runs claim the
day's slot (a unique row); a slot left `running` by a dead runner is resumed by the next instance.

The lock is also the run's lease: a row still `running` while nobody holds its business code's lock was left
by a runner that is gone (killed, crashed). It is shown as `failed` with an "aborted: ..." error from then on
(marked when runs are read, and by the next run, which holds the lock); the books are unaffected, because
every chunk of a run is its own transaction and a run of the same day again books only what is still due.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, Literal

from msgspec import Struct

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, NotFound

__all__ = [
    "LOCK_CLASS",
    "ActionOut",
    "RunOut",
    "SkipOut",
    "Trigger",
    "claim",
    "finish",
    "get_run",
    "list_runs",
    "lock_key",
    "run_lock",
]

LOCK_CLASS = 0x44554E  # 'DUN'
Trigger = Literal["schedule", "api", "cli"]
ABANDONED = (
    "aborted: the runner stopped before the run finished (its process ended); a run of the same day completes the work"
)


class SkipOut(Struct, kw_only=True):
    customer: str
    reason: str


class ActionOut(Struct, kw_only=True):
    customer: str
    action: str  # notice, write_off, collection, reset
    level: int | None = None
    amount: str | None = None
    reason: str | None = None


class RunOut(Struct, kw_only=True):
    run_id: int | None  # None for a dry run
    as_of: date
    trigger: str
    dry_run: bool
    state: str
    counts: dict[str, int]
    skipped: list[SkipOut]
    actions: list[ActionOut]  # dry runs: what a run would do (first 1,000)
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None


def lock_key(business: Business) -> int:
    """The advisory lock's second key (the first is LOCK_CLASS): one per merchant and business code."""
    return (business.merchant_id * 10_000 + business.code) % 2_147_483_647


@asynccontextmanager
async def run_lock(ctx: Kontor, business: Business) -> AsyncIterator[None]:
    """Hold the business code's run lock for the block; 409 `dunning_run_in_progress` when another runner has it.

    Once it is held, every row still `running` is a dead runner's and is marked failed."""
    async with ctx.pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, lock_key(business)):
            raise Conflict("dunning_run_in_progress", f"a dunning run of business code {business.code} is running")
        try:
            await _abort_abandoned(ctx, business, lock_held_here=True)
            yield
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, lock_key(business))


async def _abort_abandoned(ctx: Kontor, business: Business, *, lock_held_here: bool = False) -> None:
    """Mark `running` rows whose runner is gone as failed (see the module docstring).

    With `lock_held_here` the caller holds the business code's run lock, so every `running` row is a dead
    runner's; otherwise a row counts as abandoned while no session holds the lock. A runner that finishes
    meanwhile has committed `done` before it releases the lock, and the update re-checks the row's state."""
    await ctx.pool.execute(
        "UPDATE dunning_runs SET state = 'failed', error = $5, finished_at = now() "
        "WHERE merchant_id = $1 AND business = $2 AND state = 'running' AND ($6 OR NOT EXISTS (SELECT 1 FROM pg_locks "
        "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = $3::oid AND objid = $4::oid AND objsubid = 2 AND granted))",
        business.merchant_id,
        business.code,
        LOCK_CLASS,
        lock_key(business),
        ABANDONED,
        lock_held_here,
    )


async def claim(ctx: Kontor, business: Business, as_of: date, trigger: Trigger) -> tuple[int, bool]:
    """The run's row: a new one, or for a scheduled run the day's slot (done already: nothing to do).

    Returns (run id, whether this runner is to do the run)."""
    if trigger == "schedule":
        row = await ctx.pool.fetchrow(
            "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, $2, $3, 'schedule', "
            "'running') ON CONFLICT (merchant_id, business, as_of) WHERE trigger = 'schedule' DO UPDATE "
            "SET state = 'running', error = NULL WHERE dunning_runs.state <> 'done' RETURNING run_id",
            business.merchant_id,
            business.code,
            as_of,
        )
        if row is None:
            done = await ctx.pool.fetchval(
                "SELECT run_id FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND as_of = $3 "
                "AND trigger = 'schedule'",
                business.merchant_id,
                business.code,
                as_of,
            )
            return int(done), False
        return int(row["run_id"]), True
    run_id = await ctx.pool.fetchval(
        "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, $2, $3, $4, 'running') "
        "RETURNING run_id",
        business.merchant_id,
        business.code,
        as_of,
        trigger,
    )
    return int(run_id), True


async def finish(
    ctx: Kontor,
    business: Business,
    run_id: int,
    state: str,
    counts: Counter[str],
    skipped: list[SkipOut],
    error: str | None,
) -> None:
    """The run ends `done` or `failed` (with the error), with its counts and the customers it skipped."""
    await ctx.pool.execute(
        "UPDATE dunning_runs SET state = $3, counts = $4, skipped = $5, error = $6, finished_at = now() "
        "WHERE merchant_id = $1 AND run_id = $2",
        business.merchant_id,
        run_id,
        state,
        dict(counts),
        [{"customer": s.customer, "reason": s.reason} for s in skipped],
        error,
    )


# --- reading -----------------------------------------------------------------------------------------------
def _run_out(row: Any) -> RunOut:
    return RunOut(
        run_id=row["run_id"],
        as_of=row["as_of"],
        trigger=row["trigger"],
        dry_run=False,
        state=row["state"],
        counts=dict(row["counts"]),
        skipped=[SkipOut(customer=s["customer"], reason=s["reason"]) for s in row["skipped"]],
        actions=[],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
    )


async def get_run(ctx: Kontor, business: Business, run_id: int) -> RunOut:
    """One run (404 `dunning_run_not_found`)."""
    await _abort_abandoned(ctx, business)
    row = await ctx.pool.fetchrow(
        "SELECT * FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND run_id = $3",
        business.merchant_id,
        business.code,
        run_id,
    )
    if row is None:
        raise NotFound("dunning_run_not_found", f"dunning run {run_id} not found")
    return _run_out(row)


async def list_runs(ctx: Kontor, business: Business, *, before: int | None, limit: int) -> list[RunOut]:
    """Runs newest first, those with an id below `before` (None: from the newest), at most `limit`."""
    await _abort_abandoned(ctx, business)
    rows = await ctx.pool.fetch(
        "SELECT * FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND ($3::bigint IS NULL OR run_id < $3) "
        "ORDER BY run_id DESC LIMIT $4",
        business.merchant_id,
        business.code,
        before,
        limit,
    )
    return [_run_out(r) for r in rows]
