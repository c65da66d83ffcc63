"""Scheduled jobs (APScheduler 3.11), registered with fixed ids in every service instance.

Why no job store: APScheduler 3.x cannot share one between processes. Every instance registers the
same jobs in memory and every job is safe to run in several instances at once: the chainer takes its
watermark row with SKIP LOCKED, the purge deletes rows older than the retention (a second run finds
none). Jobs that must run once per slot (dunning, month-end closing) claim their slot in PostgreSQL.
Plugins add their jobs through `Jobs.add`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from ledger.chain import link_pending
from ledger.context import Kontor

__all__ = ["Jobs", "analyze_stale_tables", "compact_balance_slots", "purge_idempotency_keys"]

log = logging.getLogger("kontor.jobs")
PURGE_BATCH_MAX = 10_000
COMPACT_BATCH_MAX = 20_000
JOURNAL_TABLES = ("entries", "lines", "balance_totals", "account_totals", "idempotency_keys", "chain_links")
YOUNG_TABLE_ROWS_MIN = 2_000
STALE_FRACTION = 0.2


async def compact_balance_slots(ctx: Kontor) -> int:
    """Fold the balance slots of days before yesterday into one row each; returns slot rows folded."""
    before = ctx.today() - timedelta(days=1)
    folded = 0
    while True:
        count = int(await ctx.pool.fetchval("SELECT kontor_compact_balance_slots($1, $2)", before, COMPACT_BATCH_MAX))
        folded += count
        if count < COMPACT_BATCH_MAX:
            return folded


async def analyze_stale_tables(ctx: Kontor, tables: tuple[str, ...] = JOURNAL_TABLES) -> list[str]:
    """ANALYZE journal tables whose statistics are missing or stale; returns the tables analyzed.

    Stale: at least YOUNG_TABLE_ROWS_MIN rows changed since the last ANALYZE, and at least STALE_FRACTION of
    the table (autovacuum's own rule, with its threshold; it may be late or off, as seen in production).
    Why: plans cached on a connection while a table was empty can choose a secondary index for a
    primary-key lookup (with no statistics the costs tie) and keep it until the next ANALYZE, so
    postings slow down with every row; and a journal that grew fast is planned as if it were empty.
    """
    young = await ctx.pool.fetch(
        "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY($1::text[]) AND n_mod_since_analyze >= $2 "
        "AND (last_analyze IS NULL AND last_autoanalyze IS NULL OR n_mod_since_analyze >= $3 * n_live_tup)",
        list(tables),
        YOUNG_TABLE_ROWS_MIN,
        STALE_FRACTION,
    )
    names = [r["relname"] for r in young]
    for name in names:
        await ctx.pool.execute(f'ANALYZE "{name}"')  # a name from `tables` that exists: not user input
    if names:
        log.info("analyzed tables with stale statistics", extra={"tables": names})
    return names


async def purge_idempotency_keys(ctx: Kontor) -> int:
    """Forget idempotency keys older than the retention; returns how many were removed."""
    removed = 0
    while True:
        status = await ctx.pool.execute(
            "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
            "WHERE created_at < now() - make_interval(days => $1) LIMIT $2))",
            ctx.settings.idempotency_retention_days,
            PURGE_BATCH_MAX,
        )
        count = int(status.split()[-1])
        removed += count
        if count < PURGE_BATCH_MAX:
            return removed


class Jobs:
    """The process's scheduler; start it inside the running event loop (APScheduler 3.11 requires it)."""

    def __init__(self, ctx: Kontor) -> None:
        self.ctx = ctx
        self.scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
        )

    def add(
        self, job_id: str, func: Callable[[Kontor], Awaitable[Any]], trigger: str | BaseTrigger, **trigger_args: Any
    ) -> None:
        async def run() -> None:
            try:
                await func(self.ctx)
            except Exception:
                log.exception("job failed", extra={"job": job_id})

        self.scheduler.add_job(run, trigger, id=job_id, name=job_id, replace_existing=True, **trigger_args)

    def start(self) -> None:
        self.add(
            "chain-journal", lambda ctx: link_pending(ctx.pool), "interval", seconds=self.ctx.settings.chain_interval_s
        )
        self.add("purge-idempotency-keys", purge_idempotency_keys, "cron", minute=17)
        self.add("analyze-stale-tables", analyze_stale_tables, "interval", seconds=5)
        self.add("compact-balance-slots", compact_balance_slots, "interval", minutes=10)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
