"""The `kontor` command: serve, onboard merchants, verify the journal, back up and restore, rotate secret keys.

Composition root for command-line processes. Without KONTOR_DATABASE_URL every command uses the
embedded PostgreSQL in the data directory (the one `kontor serve` uses); if a server is already
running there, the command attaches to it and leaves it running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click
import msgspec
import uvicorn

from ledger import profiles, tenancy
from ledger.app import discover_plugins
from ledger.backup import BackupError, backup, restore
from ledger.chain import link_pending, verify_chain
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import CONNECTION_LOST, apply_schema_at, create_pool
from ledger.embedded import EmbeddedPostgres, start_embedded
from ledger.errors import KontorError, present
from ledger.logs import configure_logging
from ledger.migrate import SchemaError, load_migrations, migrate, recorded
from ledger.money import imbalance, parse_amount
from ledger.plugins import plugin_commands, plugin_sealed_columns
from ledger.reports import trial_balance
from ledger.rotation import BATCH_ROWS, ColumnRotation, rotate_sealed_columns
from ledger.schemas import BusinessCreate, CurrencyTotals
from ledger.secrets import SecretBox, generate_key
from ledger.textsafe import ascii_digits, terminal

__all__ = ["data_dir_option", "main", "run_with_kontor"]

T = TypeVar("T")


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings.from_env()
    return settings if data_dir is None else Settings.from_env(data_dir=data_dir)


@asynccontextmanager
async def _context(settings: Settings, secrets: SecretBox) -> AsyncIterator[Kontor]:
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        url = embedded.uri
    try:
        await apply_schema_at(url)
        pool = await create_pool(url, size_max=4, command_timeout_s=settings.db_command_timeout_s)
        try:
            yield Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=secrets)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


class NoDatabase(click.ClickException):
    """The command reads books that are not there: a usage error (exit code 2), nothing is created."""

    exit_code = 2


def _existing(settings: Settings) -> Settings:
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


def _run(settings: Settings, work: Callable[[Kontor], Awaitable[T]]) -> T:
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
    settings = _settings(data_dir)
    return _run(_existing(settings) if existing else settings, work)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedded PostgreSQL data directory [env KONTOR_DATA_DIR].",
)


@click.group()
def main() -> None:
    """Kontor: an immutable double-entry ledger service for merchants paid through Amazon Pay."""


@main.command()
@data_dir_option
@click.option("--host", default=None, help="Bind address [env KONTOR_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env KONTOR_PORT, default 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [env KONTOR_WORKERS, default 1].")
def serve(data_dir: Path | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the HTTP service (on the embedded PostgreSQL unless KONTOR_DATABASE_URL is set)."""
    settings = _settings(data_dir)
    configure_logging(settings.log_level, settings.log_format)
    SecretBox.from_settings(settings)  # check the keys (create the default key file) once, before any worker
    if data_dir is not None:  # the workers build their settings from the environment: the same key file
        os.environ["KONTOR_DATA_DIR"] = str(settings.data_dir)
    # uvicorn re-raises the signal that stopped it once it has shut down; turn it into SystemExit so the
    # `finally` below runs and the embedded server is stopped rather than orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    embedded: EmbeddedPostgres | None = None
    try:
        if settings.database_url is None:
            embedded = start_embedded(settings.data_dir)
            os.environ["KONTOR_DATABASE_URL"] = embedded.uri
        url = os.environ["KONTOR_DATABASE_URL"] if embedded else settings.database_url
        url = present(url, "KONTOR_DATABASE_URL is set, or the embedded server's URL")
        asyncio.run(apply_schema_at(url))
        count = workers or settings.workers
        if count > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kontor-metrics-")
        uvicorn.run(
            "ledger.app:app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=count,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
        )
    finally:
        if embedded is not None:
            embedded.stop()


@main.group()
def merchant() -> None:
    """Onboard merchants."""


def _parse_business(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (3, 4) or not ascii_digits(parts[0], length_max=4):
        raise click.BadParameter(f"{text!r}: use CODE:COUNTRY:CURRENCY[:RATE,RATE], e.g. 1001:DE:EUR")
    spec: dict[str, Any] = {"code": int(parts[0]), "country": parts[1].upper(), "currency": parts[2].upper()}
    if len(parts) == 4:
        spec["vat_rates"] = [r.strip() for r in parts[3].split(",") if r.strip()]
    return spec


@merchant.command("create")
@click.argument("name")
@click.option(
    "--business",
    "businesses",
    multiple=True,
    required=True,
    help="CODE:COUNTRY:CURRENCY[:RATES], e.g. 1001:DE:EUR or 2200:GB:GBP:20,5 (repeatable).",
)
@click.option("--chart", type=click.Choice(["skr03", "skr04"]), default="skr03", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@data_dir_option
def merchant_create(name: str, businesses: tuple[str, ...], chart: str, as_json: bool, data_dir: Path | None) -> None:
    """Create merchant NAME with its business codes; prints its first admin API key (shown once)."""
    try:
        specs = [msgspec.convert({**_parse_business(b), "chart": chart}, BusinessCreate) for b in businesses]
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--business") from None
    created = _run(_settings(data_dir), lambda ctx: tenancy.create_merchant(ctx, name, specs))
    if as_json:
        click.echo(msgspec.json.encode(created).decode())
        return
    click.echo(terminal(f"merchant {created.merchant_id}: {created.name}"))
    for b in created.businesses:
        click.echo(f"  business {b.code} {b.country}/{b.currency} chart {b.chart} VAT {', '.join(b.vat_rates)} %")
    click.echo(f"admin API key (shown once, store it now):\n  {created.api_key.key}")


@main.group()
def business() -> None:
    """A business code's settings."""


@business.group("profile")
def business_profile() -> None:
    """The letterhead: legal name, address, tax ids, register, bank, contact, letter language, logo."""


@business_profile.command("set")
@click.option("--merchant", "merchant_id", type=int, required=True, help="The merchant's id.")
@click.option("--business", "code", type=int, required=True, help="The business code.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The profile as JSON, as PUT /v1/businesses/{code}/profile takes it.",
)
@click.option(
    "--logo",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A PNG or JPEG logo (at most 512 KiB, 2000 x 2000 pixels).",
)
@data_dir_option
def business_profile_set(merchant_id: int, code: int, path: Path, logo: Path | None, data_dir: Path | None) -> None:
    """Set the business profile of a business code (validated as the API does; exit 1 naming what is wrong)."""
    try:
        spec = msgspec.json.decode(path.read_bytes(), type=profiles.ProfileIn)
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise click.BadParameter(str(exc), param_hint="--file") from None
    image = logo.read_bytes() if logo is not None else None
    media_type = "image/png" if image is not None and image.startswith(b"\x89PNG") else "image/jpeg"

    async def work(ctx: Kontor) -> profiles.ProfileOut:
        found = await tenancy.get_business(ctx, merchant_id, code)
        out = await profiles.put_profile(ctx, found, spec)
        if image is not None:
            out = await profiles.put_logo(ctx, found, image, media_type)
        return out

    out = _run(_settings(data_dir), work)  # a refusal is the API's problem text, exit 1
    click.echo(terminal(f"business {code}: {out.legal_name}, letters in {out.letter_language}"))
    click.echo(f"  IBAN {out.bank.iban}" + (f", logo {out.logo.width} x {out.logo.height}" if out.logo else ""))


@main.command()
@click.option("--merchant", "merchant_id", type=int, default=None, help="Only this merchant.")
@click.option("--business", "code", type=int, default=None, help="Only this business code.")
@click.option(
    "--link-first/--no-link-first",
    default=True,
    show_default=True,
    help="Link entries of finished transactions into the chain before verifying.",
)
@data_dir_option
def verify(merchant_id: int | None, code: int | None, link_first: bool, data_dir: Path | None) -> None:
    """Recompute every business code's hash chain and check that its debits equal its credits; exit 1 and name
    the first broken link or the imbalance if any, or when nothing was checked (no business code matched);
    exit 2 when the data directory holds no database."""
    settings = _existing(_settings(data_dir))

    async def work(ctx: Kontor) -> bool:
        if link_first:
            while await link_pending(ctx.pool):
                pass
        rows = await ctx.pool.fetch(
            "SELECT merchant_id, business FROM businesses WHERE ($1::bigint IS NULL OR merchant_id = $1) "
            "AND ($2::smallint IS NULL OR business = $2) ORDER BY 1, 2",
            merchant_id,
            code,
        )
        all_ok = True
        for r in rows:
            business = await tenancy.get_business(ctx, r["merchant_id"], r["business"])
            result = await verify_chain(ctx.pool, business)
            where = f"merchant {r['merchant_id']} business {r['business']}"
            out_of_balance = [_imbalance(t) for t in (await trial_balance(ctx, business, as_of=None)).totals]
            if result.ok and not any(out_of_balance):
                click.echo(f"{where}: OK ({result.chained} entries chained, {result.unchained} not yet)")
                continue
            all_ok = False
            broken = result.first_broken
            if broken is not None:
                click.echo(f"{where}: BROKEN at seq {broken.seq} entry {broken.entry_id}: {broken.reason}")
            elif not result.balances_match_lines:
                click.echo(f"{where}: BROKEN: the balance totals differ from the lines")
            for text in filter(None, out_of_balance):
                click.echo(f"{where}: OUT OF BALANCE: {text}")
        if not rows:
            click.echo("nothing was checked: no business code found" + (" (--merchant/--business)" if
                       merchant_id is not None or code is not None else ""), err=True)  # fmt: skip
            return False
        return all_ok

    if not _run(settings, work):
        sys.exit(1)


def _imbalance(totals: CurrencyTotals) -> str:
    """ "EUR credits exceed debits by 0.10" for a trial balance's totals that differ, else ""."""
    c = totals.currency
    text = imbalance(parse_amount(totals.debit, c, allow_zero=True), parse_amount(totals.credit, c, allow_zero=True), c)
    return f"{c} {text}" if text else ""


@main.command("backup")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="The file to write (replaced).")
@click.option(
    "--url", default=None, help="Back up this PostgreSQL database [default: KONTOR_DATABASE_URL, else embedded]."
)
@data_dir_option
def backup_command(output: Path, url: str | None, data_dir: Path | None) -> None:
    """Write the database to OUTPUT in pg_dump's custom format, from one snapshot (safe while the service runs).

    The key of the sealed secrets is not in the file: keep it with the backups, apart from them."""
    settings = _settings(data_dir)
    try:
        result = asyncio.run(backup(output, url=url or settings.database_url, data_dir=settings.data_dir))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        terminal(f"backup written to {result.path} ({result.size_bytes:,} bytes, PostgreSQL {result.server_version})")
    )
    click.echo(f"  {result.counts}")


@main.command("restore")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the database in the data directory (kept beside it).")
@data_dir_option
def restore_command(source: Path, force: bool, data_dir: Path | None) -> None:
    """Restore SOURCE (written by `kontor backup` or pg_dump -Fc) as the embedded database of the data directory.

    Refused if the data directory holds a database (unless --force) or its database is in use."""
    settings = _settings(data_dir)
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
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        url = embedded.uri
    try:
        conn = await asyncpg.connect(url)
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


@main.group("schema")
def schema_group() -> None:
    """The database schema: which migrations it records, and applying the missing ones (docs/operations.md)."""


@schema_group.command("status")
@data_dir_option
def schema_status(data_dir: Path | None) -> None:
    """List each migration as installed, migrated (with when) or pending. Changes nothing.

    Exit code 0 when the schema is current, 1 when migrations are pending (the next `kontor schema migrate`,
    `kontor serve` or other command applies them), 2 when there is no database."""
    settings = _existing(_settings(data_dir))

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
    settings = _settings(data_dir)

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


@main.group("secrets")
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

    results = _run(_existing(_settings(data_dir)), work)
    for r in results:
        verb = "to re-seal" if dry_run else "re-sealed"
        click.echo(f"{r.column}: {r.resealed} {verb}, {r.current} already current, {len(r.failed)} do not open")
        for failure in r.failed:
            click.echo(f"  does not open: {failure}")
    if not columns:
        click.echo("no sealed columns are registered by the installed plugins")
    if any(r.failed for r in results):
        sys.exit(1)


for _command in plugin_commands(discover_plugins()):
    main.add_command(_command)

if __name__ == "__main__":
    main()
