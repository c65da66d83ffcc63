"""What every `kontor` command runs on: the settings, the database (the embedded one unless
KONTOR_DATABASE_URL is set), a `Kontor` context, and the translation of errors into one-line messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg
import click

from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import CONNECTION_LOST, apply_schema_at, create_pool
from ledger.embedded import EmbeddedPostgres, start_embedded
from ledger.errors import KontorError
from ledger.migrate import SchemaError
from ledger.secrets import SecretBox

__all__ = [
    "NoDatabase",
    "data_dir_option",
    "database_url",
    "require_database",
    "run",
    "run_with_kontor",
    "settings_for",
]

T = TypeVar("T")


def settings_for(data_dir: Path | None) -> Settings:
    settings = Settings.from_env()
    return settings if data_dir is None else Settings.from_env(data_dir=data_dir)


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The URL of the configured database, else of the embedded one in the data directory: started (or attached
    to) for the block and stopped after it (a server that was already running there keeps running)."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded: EmbeddedPostgres = await asyncio.to_thread(start_embedded, settings.data_dir)
    try:
        yield embedded.uri
    finally:
        await asyncio.to_thread(embedded.stop)


@asynccontextmanager
async def _context(settings: Settings, secrets: SecretBox) -> AsyncIterator[Kontor]:
    async with database_url(settings) as url:
        await apply_schema_at(url)
        pool = await create_pool(url, size_max=4, command_timeout_s=settings.db_command_timeout_s)
        try:
            yield Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=secrets)
        finally:
            await pool.close()


class NoDatabase(click.ClickException):
    """The command reads books that are not there: a usage error (exit code 2), nothing is created."""

    exit_code = 2


def require_database(settings: Settings) -> Settings:
    """Commands that read or change existing books refuse a data directory without a database, instead of
    creating an empty one there (and then reporting on nothing): exit code 2 naming the directory."""
    if settings.database_url is not None:
        return settings
    where = settings.data_dir
    hint = "give the directory `kontor serve` uses (--data-dir or KONTOR_DATA_DIR), or KONTOR_DATABASE_URL"
    if not where.is_dir():
        raise NoDatabase(f"the data directory {where} does not exist; {hint}")
    if not (where / "pgdata").is_dir():
        raise NoDatabase(f"the data directory {where} holds no database ({where / 'pgdata'} is missing); {hint}")
    return settings


def run(settings: Settings, work: Callable[[Kontor], Awaitable[T]]) -> T:
    secrets = SecretBox.from_settings(settings)  # a malformed key stops the command before any work

    async def main() -> T:
        async with _context(settings, secrets) as ctx:
            return await work(ctx)

    try:
        return asyncio.run(main())
    except SchemaError as exc:
        raise click.ClickException(f"{exc} [schema]") from None
    except KontorError as exc:
        raise click.ClickException(
            f"{exc.detail} [{exc.code}]" + "".join(f"\n  {e.field}: {e.message}" for e in exc.errors)
        ) from None
    except (TimeoutError, asyncpg.QueryCanceledError):
        # a one-line error, as the service's 503 database_timeout: not a traceback
        raise click.ClickException(
            f"the database did not answer within {settings.db_command_timeout_s:g} s "
            "(KONTOR_DB_COMMAND_TIMEOUT_S); nothing was changed by the statement that timed out [database_timeout]"
        ) from None
    except CONNECTION_LOST as exc:
        raise click.ClickException(f"lost the connection to the database: {exc!r} [database_unavailable]") from None


def run_with_kontor(data_dir: Path | None, work: Callable[[Kontor], Awaitable[T]], *, existing: bool = True) -> T:
    """For plugins' commands: run `work` with a context on the configured (or embedded) database; with
    `existing` (the default) a data directory without a database is refused (exit code 2) rather than created."""
    settings = settings_for(data_dir)
    return run(require_database(settings) if existing else settings, work)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedded PostgreSQL data directory [env KONTOR_DATA_DIR].",
)
