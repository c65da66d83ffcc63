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
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ledger.chain import link_pending
from ledger.context import Kontor

__all__ = ["Jobs", "purge_idempotency_keys"]

log = logging.getLogger("kontor.jobs")
PURGE_BATCH_MAX = 10_000


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

    def add(self, job_id: str, func: Callable[[Kontor], Awaitable[Any]], trigger: str, **trigger_args: Any) -> None:
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
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
