"""The desk plugin: the accountant's commands (reports, exports, closing) and the month-end closing job."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.plugins import InitPluginProtocol

from desk import http, web
from desk.cli import export, period, report
from desk.closing import close_due_months
from desk.config import DeskSettings
from desk.errorpages import error_page
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
        # a path under /ui that no page has (/ui/1001/, /ui/1001/nothing) or a method it does not take: an HTML
        # error page in the browser, not the API's JSON problem (the pages' own errors: desk.web.router)
        handlers = app_config.exception_handlers
        for missing in (NotFoundException, MethodNotAllowedException):
            handlers[missing] = _pages_or(handlers.get(missing) or handlers.get(HTTPException))
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


def _pages_or(api: Any) -> Any:
    """The pages' HTML error page for a path under /ui/, else the API's own handler."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if request.url.path == "/ui" or request.url.path.startswith("/ui/") or api is None:
            return error_page(request, exc)
        response: Response[Any] = api(request, exc)
        return response

    return handle


plugin = DeskPlugin()
