"""The desk plugin: the accountant's commands (reports, exports, closing) and the month-end closing job."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.plugins import InitPluginProtocol

from desk import http, web
from desk.cli import export, period, report
from desk.closing import close_due_months
from desk.config import DeskSettings
from ledger.config import settings_from_env
from ledger.context import Kontor
from ledger.scheduler import Jobs

__all__ = ["DeskPlugin", "plugin"]


class DeskPlugin(InitPluginProtocol):
    def __init__(self, settings: DeskSettings | None = None) -> None:
        self._given = settings
        self.settings = settings or DeskSettings()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.template_config = web.template_config()
        return app_config

    def route_handlers(self) -> list[Any]:
        return [http.router]  # finding customers, orders, bank statements; ageing and VAT summary

    def public_route_handlers(self) -> list[Any]:
        return [web.router]  # the pages authenticate by their session cookie, not by an API key

    def commands(self) -> list[Any]:
        return [report, export, period]

    async def start(self, state: State, ctx: Kontor) -> None:
        self.settings = self._given or settings_from_env(DeskSettings)

    async def stop(self) -> None:
        return None

    def register_jobs(self, jobs: Jobs) -> None:
        jobs.add(
            "month-end-closing", self.close_months, CronTrigger.from_crontab(self.settings.closing_cron, timezone=UTC)
        )

    async def close_months(self, ctx: Kontor) -> None:
        await close_due_months(ctx, today=ctx.today(), workday=self.settings.closing_workday)


plugin = DeskPlugin()
