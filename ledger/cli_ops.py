"""The operational `kontor` commands: `backup`, `restore`, `schema status|migrate`, `secrets generate-key|rotate`.

Registered on the main group by `ledger.cli` (`COMMANDS`); see docs/operations.md.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import click

from ledger.app import discover_plugins
from ledger.backup import BackupError, backup, restore
from ledger.cli_run import data_dir_option, database_url, require_database, run, settings_for
from ledger.config import Settings
from ledger.context import Kontor
from ledger.migrate import SchemaError, load_migrations, migrate, recorded
from ledger.plugins import plugin_sealed_columns
from ledger.rotation import BATCH_ROWS, ColumnRotation, rotate_sealed_columns
from ledger.secrets import SecretBox, generate_key
from ledger.textsafe import terminal

__all__ = ["COMMANDS"]


@click.command("backup")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="The file to write (replaced).")
@click.option(
    "--url", default=None, help="Back up this PostgreSQL database [default: KONTOR_DATABASE_URL, else embedded]."
)
@data_dir_option
def backup_command(output: Path, url: str | None, data_dir: Path | None) -> None:
    """Write the database to OUTPUT in pg_dump's custom format, from one snapshot (safe while the service runs).

    The key of the sealed secrets is not in the file: keep it with the backups, apart from them."""
    settings = settings_for(data_dir)
    try:
        result = asyncio.run(backup(output, url=url or settings.database_url, data_dir=settings.data_dir))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        terminal(f"backup written to {result.path} ({result.size_bytes:,} bytes, PostgreSQL {result.server_version})")
    )
    click.echo(f"  {result.counts}")


@click.command("restore")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the database in the data directory (kept beside it).")
@data_dir_option
def restore_command(source: Path, force: bool, data_dir: Path | None) -> None:
    """Restore SOURCE (written by `kontor backup` or pg_dump -Fc) as the embedded database of the data directory.

    Refused if the data directory holds a database (unless --force) or its database is in use."""
    settings = settings_for(data_dir)
    if settings.database_url is not None:
        raise click.ClickException(
            "KONTOR_DATABASE_URL is set: kontor restore restores the embedded database only; restore an external "
            "database with pg_restore (docs/operations.md)"
        )
    keyed = settings.secret_key or settings.secret_key_file or (settings.data_dir / "secret.key").exists()
    box = SecretBox.from_settings(settings) if keyed else None  # never create a new key file here
    sealed = plugin_sealed_columns(discover_plugins())
    try:
        result = asyncio.run(restore(source, data_dir=settings.data_dir, force=force, box=box, sealed=sealed))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(terminal(f"restored into {result.pgdata}"))
    click.echo(f"  {result.counts}")
    if result.migrated:
        versions = ", ".join(f"{v:04d}" for v in result.migrated)
        click.echo(f"  the backup's schema was older: migrated to this Kontor's (applied {versions})")
    if result.replaced is not None:
        click.echo(terminal(f"  the database it replaced is kept in {result.replaced}: delete it when satisfied"))
    if result.unopenable is None:
        click.echo(
            "  no secrets key is configured for this data directory: put the key of the backed-up installation in "
            f"{settings.data_dir / 'secret.key'} (or set KONTOR_SECRET_KEY) before starting the service",
            err=True,
        )
    for column, count in (result.unopenable or {}).items():
        click.echo(f"  {count} values in {column} do not open with the configured secrets key", err=True)
    click.echo(f"next: kontor verify --data-dir {terminal(str(settings.data_dir))}")


@asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """One plain connection to the configured (or embedded) database, with no schema applied."""
    async with database_url(settings) as url:
        conn = await asyncpg.connect(url)
        try:
            yield conn
        finally:
            await conn.close()


@click.group("schema")
def schema_group() -> None:
    """The database schema: which migrations it records, and applying the missing ones (docs/operations.md)."""


@schema_group.command("status")
@data_dir_option
def schema_status(data_dir: Path | None) -> None:
    """List each migration as installed, migrated (with when) or pending. Changes nothing.

    Exit code 0 when the schema is current, 1 when migrations are pending (the next `kontor schema migrate`,
    `kontor serve` or other command applies them), 2 when there is no database."""
    settings = require_database(settings_for(data_dir))

    async def read() -> int:
        async with _connection(settings) as conn:
            rows = await recorded(conn)
            has_books = await conn.fetchval("SELECT to_regclass('merchants') IS NOT NULL")
        known = load_migrations()
        done = {r.version: r for r in rows or []}
        if rows is None:
            click.echo(
                "a database from before versioned migrations: every migration is pending"
                if has_books
                else "an empty database: schema.sql will be installed"
            )
        for m in known:
            r = done.get(m.version)
            mark = "pending" if r is None else f"{r.how} {r.applied_at:%Y-%m-%d %H:%M:%S} UTC"
            if r is not None and r.sha256 != m.sha256:
                mark += " (applied with other contents than this file)"
            click.echo(f"{m.name:<48} {mark}")
        for v in sorted(set(done) - {m.version for m in known}):
            click.echo(f"{done[v].name:<48} {done[v].how}, unknown to this Kontor (a newer release migrated it)")
        return 0 if rows is not None and all(m.version in done for m in known) else 1

    sys.exit(asyncio.run(read()))


@schema_group.command("migrate")
@data_dir_option
def schema_migrate(data_dir: Path | None) -> None:
    """Install schema.sql into an empty database, or apply the migrations it lacks, now.

    `kontor serve` and every other command do the same at start; this command does only that, so an upgrade can
    migrate once, with a backup just before, and then restart the instances."""
    settings = settings_for(data_dir)

    async def run() -> str:
        async with _connection(settings) as conn:
            result = await migrate(conn)
        if result.how == "migrated":
            return "migrated: applied " + ", ".join(f"{v:04d}" for v in result.applied)
        return {"installed": "installed schema.sql into an empty database", "current": "the schema is current"}[
            result.how
        ]

    try:
        click.echo(asyncio.run(run()))
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("secrets")
def secrets_group() -> None:
    """Keys of the secrets stored sealed in the database (README, "Secrets at rest")."""


@secrets_group.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key (base64url of 32 random bytes) for KONTOR_SECRET_KEY or a key file."""
    click.echo(generate_key())


@secrets_group.command("rotate")
@click.option("--dry-run", is_flag=True, help="Only count and try to open what would be re-sealed.")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=BATCH_ROWS, show_default=True, help="Rows per transaction."
)
@data_dir_option
def secrets_rotate(dry_run: bool, batch_size: int, data_dir: Path | None) -> None:
    """Re-seal every stored secret not sealed with the current key; exit 1 if any does not open.

    Configure the new key as current and the old one as previous on every instance first."""
    columns = plugin_sealed_columns(discover_plugins())

    async def work(ctx: Kontor) -> list[ColumnRotation]:
        click.echo(f"current key {ctx.secrets.key_id}{' (dry run: nothing is written)' if dry_run else ''}")
        return await rotate_sealed_columns(ctx.pool, ctx.secrets, columns, dry_run=dry_run, batch_rows=batch_size)

    results = run(require_database(settings_for(data_dir)), work)
    for r in results:
        verb = "to re-seal" if dry_run else "re-sealed"
        click.echo(f"{r.column}: {r.resealed} {verb}, {r.current} already current, {len(r.failed)} do not open")
        for failure in r.failed:
            click.echo(f"  does not open: {failure}")
    if not columns:
        click.echo("no sealed columns are registered by the installed plugins")
    if any(r.failed for r in results):
        sys.exit(1)


COMMANDS = (backup_command, restore_command, schema_group, secrets_group)
