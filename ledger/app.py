"""Composition root of the HTTP service: `create_app()` wires settings, database, routes and plugins.

The only module that knows every part. `payments` and `dunning` are not imported here: they are found
through the `kontor.plugins` entry-point group and add their routes and jobs as Litestar plugins, so
the dependency rule dunning -> payments -> ledger holds (checked by import-linter in the test suite).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

import asyncpg
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.plugins import InitPluginProtocol

from ledger.config import Settings
from ledger.context import Clock, Kontor, system_clock
from ledger.db import apply_schema_at, create_pool
from ledger.embedded import start_embedded
from ledger.http import accounts, journal, onboarding, profiles, reports
from ledger.http.access import access_layer
from ledger.http.auth import AuthMiddleware, RateLimiter, query_names
from ledger.http.deps import DEPENDENCIES
from ledger.http.docs import render_plugins
from ledger.http.fastpath import posting_fast_path
from ledger.http.inputs import KontorRequest, before_request, date_parameters, horizon_layer
from ledger.http.ops import MetricsController, health, ready
from ledger.http.problem_docs import StrictStructSchemaPlugin, document_problems
from ledger.http.problems import EXCEPTION_HANDLERS
from ledger.logs import configure_logging
from ledger.plugins import Startable, plugin_public_routes, plugin_routes, plugin_sealed_columns
from ledger.rotation import count_unopenable
from ledger.scheduler import Jobs
from ledger.secrets import SealedColumn, SecretBox

__all__ = ["create_app", "discover_plugins"]

log = logging.getLogger("kontor.app")

VERSION = "0.1.0"


def discover_plugins() -> list[InitPluginProtocol]:
    """Plugins registered by installed packages under the `kontor.plugins` entry-point group."""
    plugins: list[InitPluginProtocol] = []
    for ep in sorted(entry_points(group="kontor.plugins"), key=lambda e: e.name):
        plugins.append(ep.load())
    return plugins


def _openapi(settings: Settings) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Kontor",
        version=VERSION,
        path="/schema",
        description="Accounting as a Service: an immutable double-entry ledger for merchants paid through "
        "Amazon Pay. Amounts are decimal strings in the business code's currency. Errors are "
        "RFC 9457 problem+json.",
        render_plugins=render_plugins(interactive=settings.api_docs),
        components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}),
        security=[{"BearerAuth": []}],
        tags=[Tag(name=n) for n in ("onboarding", "accounts", "journal", "balances", "reports", "periods", "ops")],
    )


def create_app(
    settings: Settings | None = None, *, clock: Clock = system_clock, plugins: list[InitPluginProtocol] | None = None
) -> Litestar:
    """Build the service. Database: settings.database_url, else the embedded PostgreSQL in data_dir.
    SystemExit if the secret keys are malformed (ledger.secrets)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    secrets = SecretBox.from_settings(settings)
    found = discover_plugins() if plugins is None else plugins
    sealed = plugin_sealed_columns(found)
    api = Router(
        path="/",
        middleware=[AuthMiddleware()],
        dependencies=DEPENDENCIES,
        route_handlers=[
            onboarding.router,
            accounts.router,
            journal.router,
            reports.router,
            profiles.router,
            *plugin_routes(found),
        ],
    )
    application = Litestar(
        route_handlers=[api, health, ready, MetricsController, *plugin_public_routes(found)],
        lifespan=[_lifespan(settings, clock, secrets, found, sealed)],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(settings),
        plugins=[*found, StrictStructSchemaPlugin()],
        request_max_body_size=settings.request_body_bytes_max,
        request_class=KontorRequest,
        before_request=before_request,
        logging_config=None,  # configure_logging above owns the handlers: one JSON line per event
        debug=False,
    )
    document_problems(application)
    application.state.query_names = query_names(application)
    application.state.date_parameters = date_parameters(application)
    # outermost, so that unmatched routes (404, 405) get a request id and an access line too
    # the posting fast path inside it: the plain single-entry posting without Litestar's per-request layers
    handler = horizon_layer(application.asgi_handler)
    if settings.post_fast_path:
        handler = posting_fast_path(handler, body_bytes_max=settings.request_body_bytes_max)
    application.asgi_handler = access_layer(handler, log_requests=settings.access_log)
    return application


def _lifespan(
    settings: Settings,
    clock: Clock,
    secrets: SecretBox,
    plugins: list[InitPluginProtocol],
    sealed: list[SealedColumn],
) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with _database(settings) as (pool, reports_pool):
            ctx = Kontor(pool=pool, reports_pool=reports_pool, settings=settings, secrets=secrets, clock=clock)
            await _warn_unopenable(ctx, sealed)
            app.state.kontor = ctx
            app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second)
            started: list[Startable] = []
            jobs = Jobs(ctx) if settings.scheduler_enabled else None
            try:
                for plugin in plugins:
                    if isinstance(plugin, Startable):
                        await plugin.start(app.state, ctx)
                        started.append(plugin)
                if jobs is not None:
                    for plugin in plugins:
                        if hasattr(plugin, "register_jobs"):
                            plugin.register_jobs(jobs)
                    jobs.start()
                _settle_heap()
                yield
            finally:
                if jobs is not None:
                    jobs.stop()
                for resource in reversed(started):
                    await resource.stop()

    return lifespan


def _settle_heap() -> None:
    """Keep the garbage collector off the objects built at start (routes, schemas, modules: most of the heap).

    `gc.freeze()` moves them out of the collected generations, so that the collections a request's garbage
    triggers scan only what requests made; the young generation is collected every 10,000 allocations instead of
    700 (a bulk posting of 1,000 entries allocates some 50,000 objects). Measured with py-spy under P3: the
    collections had taken a sixth of the service's CPU.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def _warn_unopenable(ctx: Kontor, sealed: list[SealedColumn]) -> None:
    """Log an error for stored secrets no configured key opens: typically instances sharing one database with
    different keys (each created its own `<data_dir>/secret.key`), or a key dropped before rotating."""
    for column, count in (await count_unopenable(ctx.pool, ctx.secrets, sealed)).items():
        log.error(
            "%d values in %s are sealed with keys this process does not hold (its keys: %s); configure the same "
            "keys on every instance, see `kontor secrets rotate --dry-run`",
            count,
            column,
            ", ".join(ctx.secrets.key_ids),
        )


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """The write pool and the reports pool (a replica if configured), on the schema of this version."""
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        url = embedded.uri
    try:
        await apply_schema_at(url)  # a connection of its own: no per-statement timeout for a long migration
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    options = {
        "size_max": settings.db_pool_size_max,
        "statement_cache_size": settings.db_statement_cache_size,
        "command_timeout_s": settings.db_command_timeout_s,
    }
    pool = await create_pool(url, **options)  # type: ignore[arg-type]
    reports_pool = pool
    try:
        if settings.read_database_url:
            reports_pool = await create_pool(settings.read_database_url, application_name="kontor-reports", **options)  # type: ignore[arg-type]
        yield pool, reports_pool
    finally:
        if reports_pool is not pool:
            await reports_pool.close()
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def app() -> Litestar:
    """Factory for `uvicorn --factory ledger.app:app` (settings from the environment)."""
    return create_app()
