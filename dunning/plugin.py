"""The dunning plugin: policy, open items, runs, notices, pauses, collection, write-offs and recovery.

Found by the service through the `kontor.plugins` entry-point group. At start it registers the
recovery of written-off debts as a receivable hook (run in the transaction of every booking on a
customer's account) and the daily runs as scheduled jobs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.plugins import InitPluginProtocol

from dunning.cli import dunning
from dunning.config import DunningSettings
from dunning.http import base_rate_routes, router
from dunning.reversals import refuse_reversal
from dunning.runs import run_dunning
from dunning.writeoffs import recover
from ledger.config import settings_from_env
from ledger.context import Kontor
from ledger.errors import Conflict
from ledger.scheduler import Jobs
from ledger.tenancy import get_business

__all__ = ["DunningPlugin", "plugin", "run_due"]

log = logging.getLogger("kontor.dunning")


async def run_due(ctx: Kontor, *, chunk: int = 500, only_started: bool = False) -> int:
    """Run today's slot of every business code with a dunning policy that is not done yet; returns runs done.

    Several instances may call this at once: each business code's run is taken by one of them (the
    others get `dunning_run_in_progress` and move on), a finished slot is not run again.
    """
    today = ctx.today()
    rows = await ctx.pool.fetch(
        "SELECT p.merchant_id, p.business FROM dunning_policies p WHERE NOT EXISTS (SELECT 1 FROM dunning_runs r "
        "WHERE r.merchant_id = p.merchant_id AND r.business = p.business AND r.trigger = 'schedule' "
        "AND r.as_of = $1 AND r.state = 'done') "
        "AND (NOT $2 OR EXISTS (SELECT 1 FROM dunning_runs r WHERE r.merchant_id = p.merchant_id "
        "AND r.business = p.business AND r.trigger = 'schedule' AND r.as_of = $1)) ORDER BY 1, 2",
        today,
        only_started,
    )
    done = 0
    for row in rows:
        business = await get_business(ctx, row["merchant_id"], row["business"])
        try:
            await run_dunning(ctx, business, as_of=today, trigger="schedule", chunk=chunk)
            done += 1
        except Conflict:
            continue  # another instance is running it
        except Exception:
            log.exception("dunning run failed", extra={"merchant_id": business.merchant_id, "business": business.code})
    return done


class DunningPlugin(InitPluginProtocol):
    def __init__(self, settings: DunningSettings | None = None) -> None:
        self._given = settings
        self.settings = settings or DunningSettings()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config

    def route_handlers(self) -> list[Any]:
        return [router, base_rate_routes]

    def commands(self) -> list[Any]:
        return [dunning]

    async def start(self, state: State, ctx: Kontor) -> None:
        self.settings = self._given or settings_from_env(DunningSettings)
        if recover not in ctx.receivable_hooks:
            ctx.receivable_hooks.append(recover)
        if refuse_reversal not in ctx.reversal_guards:
            ctx.reversal_guards.append(refuse_reversal)

    async def stop(self) -> None:
        return None

    def register_jobs(self, jobs: Jobs) -> None:
        cron = CronTrigger.from_crontab(self.settings.dunning_cron, timezone=UTC)
        jobs.add("dunning-daily", self.daily, cron)
        jobs.add("dunning-resume", self.resume, "interval", seconds=self.settings.dunning_resume_interval_s)

    async def daily(self, ctx: Kontor) -> None:
        await run_due(ctx, chunk=self.settings.dunning_chunk_size)

    async def resume(self, ctx: Kontor) -> None:
        """Runs of today that were missed (no instance was up) or left unfinished (their runner died)."""
        cron = CronTrigger.from_crontab(self.settings.dunning_cron, timezone=UTC)
        start_of_day = datetime.combine(ctx.today(), time.min, UTC)
        first = cron.get_next_fire_time(None, start_of_day)
        missed = first is not None and first.date() == ctx.today() and first <= ctx.clock()
        await run_due(ctx, chunk=self.settings.dunning_chunk_size, only_started=not missed)


plugin = DunningPlugin()
