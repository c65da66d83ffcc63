"""The reports `kontor report` prints: where each comes from (the service's API or the database) and its table.

Both sources give the same data: the database path calls the functions the API's handlers call and converts
their results to the API's JSON, so a report reads the same wherever it was taken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from desk.formats import signed_minor
from desk.tables import Table
from dunning.accounts import customer_open_items
from ledger import registers, reports
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, present
from ledger.money import format_amount, imbalance

__all__ = ["REPORTS", "Args", "Fetch", "Report", "balance_notes"]

PAGE = 500


@dataclass(frozen=True)
class Args:
    as_of: date | None = None
    from_date: date | None = None
    to_date: date | None = None
    account: str | None = None
    customer: str | None = None


Fetch = Callable[[str, dict[str, str]], Awaitable[Any]]  # GET a path under the business code, as JSON


@dataclass(frozen=True)
class Report:
    """`api(fetch, args)` reads through the HTTP API; `db(ctx, business, args)` through the database."""

    api: Callable[[Fetch, Args], Awaitable[Any]]
    db: Callable[[Kontor, Business, Args], Awaitable[Any]]
    table: Callable[[Any], Table]


def _params(**values: date | str | None) -> dict[str, str]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items() if v is not None}


_REQUIRED = "_require() checked that the option is given"


def _require(args: Args, *names: str) -> None:
    missing = [n for n in names if getattr(args, n) is None]
    if missing:
        options = ", ".join("--" + n.replace("_date", "").replace("_", "-") for n in missing)
        raise BadRequest("option_missing", f"this report needs {options}")


# --- trial balance -------------------------------------------------------------------------------------------
def _trial_table(d: dict[str, Any]) -> Table:
    rows = [[r["account"], r["alt_number"] or "", r["name"], r["currency"], r["debit"], r["credit"]] for r in d["rows"]]
    footer = [["Total", "", "", t["currency"], t["debit"], t["credit"]] for t in d["totals"]]
    as_of = d["as_of"] or "today"
    return Table(
        f"Trial balance, business {d['business']}, as of {as_of}",
        ["Account", "Alt. no.", "Name", "Currency", "Debit", "Credit"],
        rows,
        right={4, 5},
        footer=footer,
        notes=["", *balance_notes(d["totals"])],
    )


def balance_notes(totals: list[dict[str, str]], amount_text: Callable[[int, str], str] = format_amount) -> list[str]:
    """The trial balance's verdict: "Debits equal credits.", else one line per currency that does not balance,
    e.g. "OUT OF BALANCE: EUR credits exceed debits by 0.10." (the API's totals, decimal strings; `amount_text`
    writes the amount)."""
    notes = []
    for t in totals:
        c = t["currency"]
        text = imbalance(signed_minor(t["debit"], c), signed_minor(t["credit"], c), c, amount_text=amount_text)
        if text:
            notes.append(f"OUT OF BALANCE: {c} {text}.")
    return notes or ["Debits equal credits."]


async def _trial_api(fetch: Fetch, a: Args) -> Any:
    return await fetch("/reports/trial-balance", _params(as_of=a.as_of))


async def _trial_db(ctx: Kontor, b: Business, a: Args) -> Any:
    return await reports.trial_balance(ctx, b, as_of=a.as_of)


# --- balance sheet and income statement ----------------------------------------------------------------------
def _lines(section: str, lines: list[dict[str, Any]]) -> list[list[str]]:
    return [[section, x["account"], x["alt_number"] or "", x["name"], x["amount"]] for x in lines]


def _sheet_table(d: dict[str, Any]) -> Table:
    rows = _lines("Assets", d["assets"]) + _lines("Liabilities", d["liabilities"]) + _lines("Equity", d["equity"])
    footer = [
        ["Current earnings", "", "", "", d["current_earnings"]],
        ["Total assets", "", "", "", d["total_assets"]],
        ["Total liabilities and equity", "", "", "", d["total_liabilities_and_equity"]],
    ]
    return Table(
        f"Balance sheet, business {d['business']}, {d['currency']}, as of {d['as_of']}",
        ["Section", "Account", "Alt. no.", "Name", "Amount"],
        rows,
        right={4},
        footer=footer,
        notes=["", _sheet_note(d)],
    )


def _sheet_note(d: dict[str, Any]) -> str:
    c = d["currency"]
    text = imbalance(
        signed_minor(d["total_assets"], c),
        signed_minor(d["total_liabilities_and_equity"], c),
        c,
        ("assets", "liabilities and equity"),
    )
    return f"OUT OF BALANCE: {text}." if text else "Assets equal liabilities and equity."


async def _sheet_api(fetch: Fetch, a: Args) -> Any:
    return await fetch("/reports/balance-sheet", _params(as_of=a.as_of))


async def _sheet_db(ctx: Kontor, b: Business, a: Args) -> Any:
    return await reports.balance_sheet(ctx, b, as_of=a.as_of or ctx.today())


def _income_table(d: dict[str, Any]) -> Table:
    return Table(
        f"Income statement, business {d['business']}, {d['currency']}, {d['from_date']} to {d['to_date']}",
        ["Section", "Account", "Alt. no.", "Name", "Amount"],
        _lines("Revenue", d["revenue"]) + _lines("Expenses", d["expenses"]),
        right={4},
        footer=[
            ["Total revenue", "", "", "", d["total_revenue"]],
            ["Total expenses", "", "", "", d["total_expenses"]],
            ["Net income", "", "", "", d["net_income"]],
        ],
    )


async def _income_api(fetch: Fetch, a: Args) -> Any:
    _require(a, "from_date", "to_date")
    return await fetch("/reports/income-statement", _params(**{"from": a.from_date, "to": a.to_date}))


async def _income_db(ctx: Kontor, b: Business, a: Args) -> Any:
    _require(a, "from_date", "to_date")
    from_date, to_date = present(a.from_date, _REQUIRED), present(a.to_date, _REQUIRED)
    return await reports.income_statement(ctx, b, from_date=from_date, to_date=to_date)


# --- register ------------------------------------------------------------------------------------------------
def _register_table(d: dict[str, Any]) -> Table:
    rows = [["", "", "Opening balance", "", "", "", "", f"{d['opening_balance']} {d['opening_side'][0]}"]]
    rows += [
        [
            r["effective_date"],
            str(r["entry_id"]),
            r["description"],
            r["reference"] or "",
            r["customer"] or "",
            r["debit"] or "",
            r["credit"] or "",
            f"{r['balance']} {r['side'][0]}",
        ]
        for r in d["rows"]
    ]
    span = f"{d['from_date'] or 'the beginning'} to {d['to_date'] or 'today'}"
    who = f", customer {d['customer']}" if d["customer"] else ""
    return Table(
        f"Register of {d['account']} {d['name']}{who}, {d['currency']}, {span}",
        ["Date", "Entry", "Description", "Reference", "Customer", "Debit", "Credit", "Balance"],
        rows,
        right={1, 5, 6, 7},
        notes=["", "Balance: D debit, C credit, B balanced."],
    )


async def _register_api(fetch: Fetch, a: Args) -> Any:
    _require(a, "account")
    params = _params(**{"from": a.from_date, "to": a.to_date, "customer": a.customer}, limit=str(PAGE))
    first = page = await fetch(f"/accounts/{a.account}/register", params)
    while page["next_cursor"]:
        page = await fetch(f"/accounts/{a.account}/register", {**params, "cursor": page["next_cursor"]})
        first["rows"] += page["rows"]
    first["next_cursor"] = None
    return first


async def _register_db(ctx: Kontor, b: Business, a: Args) -> Any:
    _require(a, "account")
    account = present(a.account, _REQUIRED)
    first = page = await registers.register(
        ctx, b, account, from_date=a.from_date, to_date=a.to_date, customer=a.customer, currency=None,
        cursor=None, limit=PAGE,
    )  # fmt: skip
    while page.next_cursor:
        page = await registers.register(
            ctx, b, account, from_date=a.from_date, to_date=a.to_date, customer=a.customer, currency=None,
            cursor=page.next_cursor, limit=PAGE,
        )  # fmt: skip
        first.rows += page.rows
    first.next_cursor = None
    return first


# --- a customer ----------------------------------------------------------------------------------------------
def _customer_table(d: dict[str, Any]) -> Table:
    rows = [[d["customer"], d["currency"], d["debit_total"], d["credit_total"], d["balance"], d["state"]]]
    rows += [
        [d["customer"], o["currency"], o["debit_total"], o["credit_total"], o["balance"], o["side"]]
        for o in d["other_currencies"]
    ]
    return Table(
        f"Customer account {d['customer']}, as of {d['as_of'] or 'today'}",
        ["Customer", "Currency", "Debit", "Credit", "Balance", "State"],
        rows,
        right={2, 3, 4},
    )


async def _customer_api(fetch: Fetch, a: Args) -> Any:
    _require(a, "customer")
    return await fetch(f"/customers/{a.customer}/account", _params(as_of=a.as_of))


async def _customer_db(ctx: Kontor, b: Business, a: Args) -> Any:
    _require(a, "customer")
    return await reports.customer_account(ctx, b, present(a.customer, _REQUIRED), as_of=a.as_of)


def _open_items_table(d: dict[str, Any]) -> Table:
    rows = [
        [
            p["order_reference"] or "",
            p["due_date"],
            ", ".join(f"{rate} %: {gross}" if rate != "none" else gross for rate, gross in p["by_rate"].items()),
            "yes" if p["overdue"] else "",
            "paused" if p["paused"] else "",
            p["amount"],
        ]
        for p in d["principal"]
    ]
    footer = [
        ["Fees", "", "", "", "", d["costs"]],
        ["Interest", "", "", "", "", d["interest"]],
        ["Credit", "", "", "", "", d["credit"]],
        ["Total due", "", "", "", "", d["total"]],
        ["of which overdue", "", "", "", "", d["overdue_total"]],
    ]
    level = f"dunning level {d['dunning_level']}" + (
        f", last notice {d['last_notice_on']}" if d["last_notice_on"] else ""
    )
    return Table(
        f"Open items of customer {d['customer']}, {d['currency']}, as of {d['as_of']}",
        ["Order", "Due", "By VAT rate", "Overdue", "Paused", "Amount"],
        rows,
        right={5},
        footer=footer,
        notes=["", level + (f"; collection status {d['collection_status']}" if d["collection_status"] else "")],
    )


async def _open_items_api(fetch: Fetch, a: Args) -> Any:
    _require(a, "customer")
    return await fetch(f"/customers/{a.customer}/open-items", _params(as_of=a.as_of))


async def _open_items_db(ctx: Kontor, b: Business, a: Args) -> Any:
    _require(a, "customer")
    return await customer_open_items(ctx, b, present(a.customer, _REQUIRED), a.as_of or ctx.today())


REPORTS: dict[str, Report] = {
    "trial-balance": Report(_trial_api, _trial_db, _trial_table),
    "balance-sheet": Report(_sheet_api, _sheet_db, _sheet_table),
    "income-statement": Report(_income_api, _income_db, _income_table),
    "register": Report(_register_api, _register_db, _register_table),
    "customer-account": Report(_customer_api, _customer_db, _customer_table),
    "open-items": Report(_open_items_api, _open_items_db, _open_items_table),
}
