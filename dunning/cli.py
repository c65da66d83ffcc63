"""`kontor dunning run|preview`: dunning from the command line (on the service's database)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dunning.runs import run_dunning
from ledger.context import Kontor
from ledger.domain import check_date
from ledger.tenancy import get_business
from ledger.textsafe import terminal

__all__ = ["dunning"]


@click.group()
def dunning() -> None:
    """Dunning runs."""


def _options(command: Any) -> Any:
    command = click.option("--business", "code", type=int, default=None, help="Only this business code.")(command)
    command = click.option(
        "--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="The run's day (default: today)."
    )(command)
    command = click.option("--merchant", type=int, default=None, help="Only this merchant.")(command)
    return click.option(
        "--data-dir", type=click.Path(path_type=Path), default=None, help="Embedded PostgreSQL data directory."
    )(command)


def _execute(data_dir: Path | None, merchant: int | None, code: int | None, as_of: datetime | None, dry: bool) -> None:
    # ledger.cli loads the plugins (and so this module) when it is imported: import it when run
    from ledger.cli import run_with_kontor  # noqa: PLC0415

    async def work(ctx: Kontor) -> None:
        rows = await ctx.pool.fetch(
            "SELECT merchant_id, business FROM dunning_policies WHERE ($1::bigint IS NULL OR merchant_id = $1) "
            "AND ($2::smallint IS NULL OR business = $2) ORDER BY 1, 2",
            merchant,
            code,
        )
        if not rows:
            click.echo("no business code has a dunning policy")
            return
        day = as_of.date() if as_of else ctx.today()
        check_date(day, "--as-of")
        for row in rows:
            business = await get_business(ctx, row["merchant_id"], row["business"])
            with click.progressbar(length=1, label=f"merchant {business.merchant_id} business {business.code}") as bar:

                def progress(done: int, total: int) -> None:
                    bar.length = max(total, 1)
                    bar.update(done - bar.pos)

                out = await run_dunning(ctx, business, as_of=day, trigger="cli", dry_run=dry, progress=progress)
            counts = ", ".join(f"{k} {v}" for k, v in sorted(out.counts.items())) or "nothing to do"
            click.echo(f"  {'would do' if dry else 'done'} ({day}): {counts}")
            for action in out.actions if dry else []:
                what = f"level {action.level}" if action.level else action.reason or ""
                click.echo(terminal(f"    {action.customer}: {action.action} {what} {action.amount or ''}".rstrip()))
            for skip in out.skipped:
                click.echo(terminal(f"    {skip.customer}: skipped ({skip.reason})"))

    run_with_kontor(data_dir, work)


@dunning.command("run")
@_options
@click.option("--dry-run", is_flag=True, help="Only show what the run would do.")
def run_command(
    data_dir: Path | None, merchant: int | None, code: int | None, as_of: datetime | None, dry_run: bool
) -> None:
    """Run the day's dunning of every business code with a policy (or one)."""
    _execute(data_dir, merchant, code, as_of, dry_run)


@dunning.command("preview")
@_options
def preview_command(data_dir: Path | None, merchant: int | None, code: int | None, as_of: datetime | None) -> None:
    """Show what the next run would do, booking nothing."""
    _execute(data_dir, merchant, code, as_of, True)
