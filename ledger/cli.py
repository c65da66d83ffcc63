"""The `kontor` command: serve, onboard merchants, verify the journal, back up and restore, rotate secret keys.

Composition root for command-line processes. Without KONTOR_DATABASE_URL every command uses the
embedded PostgreSQL in the data directory (the one `kontor serve` uses); if a server is already
running there, the command attaches to it and leaves it running (`ledger.cli_run`). The operational
commands (backup, restore, schema, secrets) are `ledger.cli_ops`'s, the plugins' commands their own; all are
registered on `main` here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import msgspec
import uvicorn

from ledger import profile_fields, profiles, tenancy
from ledger.app import discover_plugins
from ledger.chain import link_pending, verify_chain
from ledger.cli_ops import COMMANDS as OPS_COMMANDS
from ledger.cli_run import data_dir_option, require_database, run, run_with_kontor, settings_for
from ledger.context import Kontor
from ledger.db import apply_schema_at
from ledger.embedded import EmbeddedPostgres, start_embedded
from ledger.errors import present
from ledger.logs import configure_logging
from ledger.money import imbalance, parse_amount
from ledger.plugins import plugin_commands
from ledger.reports import trial_balance
from ledger.schemas import BusinessCreate, CurrencyTotals
from ledger.secrets import SecretBox
from ledger.textsafe import ascii_digits, terminal

__all__ = ["data_dir_option", "main", "run_with_kontor"]


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
    settings = settings_for(data_dir)
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
    created = run(settings_for(data_dir), lambda ctx: tenancy.create_merchant(ctx, name, specs))
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
        spec = msgspec.json.decode(path.read_bytes(), type=profile_fields.ProfileIn)
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise click.BadParameter(str(exc), param_hint="--file") from None
    image = logo.read_bytes() if logo is not None else None
    media_type = "image/png" if image is not None and image.startswith(b"\x89PNG") else "image/jpeg"

    async def work(ctx: Kontor) -> profile_fields.ProfileOut:
        found = await tenancy.get_business(ctx, merchant_id, code)
        out = await profiles.put_profile(ctx, found, spec)
        if image is not None:
            out = await profiles.put_logo(ctx, found, image, media_type)
        return out

    out = run(settings_for(data_dir), work)  # a refusal is the API's problem text, exit 1
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
    settings = require_database(settings_for(data_dir))

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

    if not run(settings, work):
        sys.exit(1)


def _imbalance(totals: CurrencyTotals) -> str:
    """ "EUR credits exceed debits by 0.10" for a trial balance's totals that differ, else ""."""
    c = totals.currency
    text = imbalance(parse_amount(totals.debit, c, allow_zero=True), parse_amount(totals.credit, c, allow_zero=True), c)
    return f"{c} {text}" if text else ""


for _command in (*OPS_COMMANDS, *plugin_commands(discover_plugins())):
    main.add_command(_command)

if __name__ == "__main__":
    main()
