"""`kontor report`, `kontor export csv`, `kontor period close`: against a running service or the database.

With `--url` (or KONTOR_URL) and `--key` (or KONTOR_API_KEY) the command reads through the service's API
with that key, like any client; without, it opens the database (KONTOR_DATABASE_URL, or the embedded one
in the data directory) and reads it directly, then `--merchant` picks the merchant when several have the
business code.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import msgspec

from desk.reports import REPORTS, Args, Fetch
from desk.tables import Format, render
from ledger import datev, entries, periods
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, NotFound
from ledger.tenancy import get_business
from ledger.textsafe import cells, csv_writer, terminal
from payments.closing import book_prepayment_vat
from payments.notify import emit_period_closed

__all__ = ["export", "period", "report"]

T = TypeVar("T")


class Target:
    """Where a command reads and writes: the service (url + key) or the database."""

    def __init__(self, url: str | None, key: str | None, data_dir: Path | None, merchant: int | None, code: int):
        if url and not key:
            raise click.UsageError("--url needs --key (or KONTOR_API_KEY)")
        self.url, self.key, self.data_dir, self.merchant, self.code = url, key, data_dir, merchant, code

    def run(
        self, over_api: Callable[[httpx.AsyncClient], Awaitable[T]], in_db: Callable[[Kontor, Business], Awaitable[T]]
    ) -> T:
        if self.url:
            return asyncio.run(self._api(over_api))
        # ledger.cli loads the plugins (and so this module) when it is imported: import it when run
        from ledger.cli import run_with_kontor  # noqa: PLC0415

        return run_with_kontor(self.data_dir, lambda ctx: self._db(ctx, in_db))

    async def _api(self, work: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
        base = f"{self.url.rstrip('/')}/v1/businesses/{self.code}" if self.url else ""
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            try:
                return await work(client)
            except httpx.HTTPError as exc:
                raise click.ClickException(f"cannot reach the service at {self.url}: {exc!r}") from None

    async def _db(self, ctx: Kontor, work: Callable[[Kontor, Business], Awaitable[T]]) -> T:
        merchants = [self.merchant] if self.merchant is not None else [
            r["merchant_id"] for r in await ctx.pool.fetch("SELECT merchant_id FROM businesses WHERE business = $1", self.code)
        ]  # fmt: skip
        if len(merchants) > 1:
            raise BadRequest(
                "merchant_ambiguous", f"{len(merchants)} merchants have business code {self.code}: give --merchant"
            )
        if not merchants:
            raise NotFound("business_not_found", f"business code {self.code} does not exist")
        return await work(ctx, await get_business(ctx, merchants[0], self.code))


def fetcher(client: httpx.AsyncClient) -> Fetch:
    async def fetch(path: str, params: dict[str, str]) -> Any:
        return answer(await client.get(path, params=params))

    return fetch


def answer(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        problem = response.json()
        detail = f"{problem.get('detail')} [{problem.get('code')}]"
        detail += "".join(f"\n  {e['field']}: {e['message']}" for e in problem.get("errors", []))
    except ValueError:
        detail = response.text[:500]
    raise click.ClickException(terminal(f"the service answered {response.status_code}: {detail}"))


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--business", "code", type=int, required=True, help="Business code."),
            click.option("--merchant", type=int, default=None, help="Merchant id (database access only)."),
            click.option("--url", envvar="KONTOR_URL", default=None, help="A running service [env KONTOR_URL]."),
            click.option(
                "--key", envvar="KONTOR_API_KEY", default=None, help="API key for --url [env KONTOR_API_KEY]."
            ),
            click.option(
                "--data-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Embedded PostgreSQL data directory (database access) [env KONTOR_DATA_DIR].",
            ),
        ]
    ):
        command = option(command)
    return command


DAY = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


@click.command()
@click.argument("name", type=click.Choice(sorted(REPORTS)))
@target_options
@click.option("--as-of", type=DAY, default=None, help="Balances as of this day (default: today).")
@click.option("--from", "from_", type=DAY, default=None, help="First day (income statement, register).")
@click.option("--to", type=DAY, default=None, help="Last day (income statement, register).")
@click.option("--account", default=None, help="Account number (register).")
@click.option("--customer", default=None, help="Customer (register, customer-account, open-items).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def report(
    name: str,
    code: int,
    merchant: int | None,
    url: str | None,
    key: str | None,
    data_dir: Path | None,
    as_of: datetime | None,
    from_: datetime | None,
    to: datetime | None,
    account: str | None,
    customer: str | None,
    fmt: Format,
) -> None:
    """Print a report: trial-balance, balance-sheet, income-statement, register, customer-account, open-items."""
    spec = REPORTS[name]
    args = Args(as_of=_day(as_of), from_date=_day(from_), to_date=_day(to), account=account, customer=customer)

    async def over_api(client: httpx.AsyncClient) -> Any:
        return await spec.api(fetcher(client), args)

    async def in_db(ctx: Kontor, business: Business) -> Any:
        return msgspec.to_builtins(await spec.db(ctx, business, args))

    data = Target(url, key, data_dir, merchant, code).run(over_api, in_db)
    click.echo(render(spec.table(data), data, fmt), nl=False)


LINE_COLUMNS = [
    "entry_id", "effective_date", "recorded_at", "description", "reference", "reverses", "line_no", "account",
    "customer", "currency", "debit", "credit",
]  # fmt: skip


@click.group()
def export() -> None:
    """Export the journal."""


@export.command("csv")
@target_options
@click.option("--from", "from_", type=DAY, default=None, help="First effective day.")
@click.option("--to", type=DAY, default=None, help="Last effective day.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="File (default: stdout).")
def export_csv(
    code: int,
    merchant: int | None,
    url: str | None,
    key: str | None,
    data_dir: Path | None,
    from_: datetime | None,
    to: datetime | None,
    output: Path | None,
) -> None:
    """One row per journal line, in recording order; amounts as decimal strings (UTF-8, comma-separated)."""
    period = {"from": _day(from_), "to": _day(to)}

    async def over_api(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        params = {k: v.isoformat() for k, v in period.items() if v is not None}
        return [
            e async for e in _pages(lambda cursor: fetcher(client)("/entries", {**params, "limit": "500", **cursor}))
        ]

    async def in_db(ctx: Kontor, business: Business) -> list[dict[str, Any]]:
        where = entries.EntryFilter(from_date=period["from"], to_date=period["to"])

        async def page(cursor: dict[str, str]) -> Any:
            return msgspec.to_builtins(await entries.list_entries(ctx, business, where, cursor.get("cursor"), 500))

        return [e async for e in _pages(page)]

    lines_of = Target(url, key, data_dir, merchant, code).run(over_api, in_db)
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(LINE_COLUMNS)
    for e in lines_of:
        for line in e["lines"]:
            writer.writerow(cells([e["id"], e["effective_date"], e["recorded_at"], e["description"], e["reference"],
                                   e["reverses"], line["line_no"], line["account"], line.get("customer"),
                                   line["currency"], line["debit"], line["credit"]]))  # fmt: skip
    if output is None:
        sys.stdout.write(out.getvalue())
    else:
        output.write_text(out.getvalue(), encoding="utf-8")
        click.echo(
            f"{sum(len(e['lines']) for e in lines_of)} lines of {len(lines_of)} entries written to {output}", err=True
        )


@export.command("datev")
@target_options
@click.option("--period", "month", required=True, help="The month, YYYY-MM.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="The file to write.")
def export_datev(
    code: int, merchant: int | None, url: str | None, key: str | None, data_dir: Path | None, month: str, output: Path
) -> None:
    """The month's entries as a DATEV EXTF Buchungsstapel (needs the business code's DATEV settings)."""

    async def over_api(client: httpx.AsyncClient) -> bytes:
        response = await client.get(f"/periods/{month}/datev")
        if not response.is_success:
            answer(response)  # raises the problem as a one-line error
        return response.content

    async def in_db(ctx: Kontor, business: Business) -> bytes:
        return await datev.buchungsstapel(ctx, business, month, created=ctx.clock())

    body = Target(url, key, data_dir, merchant, code).run(over_api, in_db)
    output.write_bytes(body)
    rows = body.count(b"\r\n") - 2  # all lines but the format header and the column names
    click.echo(f"{rows} bookings of {month} written to {output}", err=True)


async def _pages(page: Callable[[dict[str, str]], Awaitable[Any]]) -> AsyncIterator[dict[str, Any]]:
    cursor: dict[str, str] = {}
    while True:
        got = await page(cursor)
        for item in got["items"]:
            yield item
        if not got["next_cursor"]:
            return
        cursor = {"cursor": got["next_cursor"]}


@click.group()
def period() -> None:
    """Close months."""


@period.command("close")
@target_options
@click.option("--period", "month", required=True, help="The month, YYYY-MM.")
def period_close(
    code: int, merchant: int | None, url: str | None, key: str | None, data_dir: Path | None, month: str
) -> None:
    """Close a month: no entry can be dated in it or before it any more."""

    async def over_api(client: httpx.AsyncClient) -> Any:
        return answer(await client.post(f"/periods/{month}/close"))

    async def in_db(ctx: Kontor, business: Business) -> Any:
        # as in the service: period-end postings are booked, period.closed goes out
        ctx.period_closing_hooks.append(book_prepayment_vat)
        ctx.period_closed_hooks.append(emit_period_closed)
        return msgspec.to_builtins(await periods.close_period(ctx, business, month, "kontor period close"))

    closed = Target(url, key, data_dir, merchant, code).run(over_api, in_db)
    click.echo(f"business {code}: closed through {closed['closed_through']}")
