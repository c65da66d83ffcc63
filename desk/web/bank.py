"""Amazon Pay settlements, bank statements (lines, checks), reconciliation exceptions and their resolve form."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from desk import find
from desk.charts import bar_chart
from desk.sheets import Cell
from desk.web.common import (
    After,
    form_date,
    form_reason,
    money_text,
    page_url,
    read_form,
    say,
    year_range,
)
from desk.webkit import HEADERS, PAGE, View, check_csrf, open_page
from ledger.errors import BadRequest, NotFound, Unprocessable
from ledger.http.deps import BusinessCodePath as Code
from ledger.http.deps import Cursor
from ledger.tenancy import account_index
from ledger.textsafe import parse_ascii_int
from payments.reconciliation import Resolution, list_exceptions, resolve_exception
from payments.reports import list_settlements
from payments.settlement import get_settlement

__all__ = ["reconciliation", "resolve", "settlement_page", "settlements_page", "statement_page", "statements_page"]


# --- Amazon Pay settlements and bank statements ----------------------------------------------------------
@get("/{code:int}/settlements")
async def settlements_page(
    request: Request[Any, Any, Any], code: Code, year: FromQuery[int | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    y, start, end = year_range(v, year)
    today = v.ctx.today()
    if year is None:  # the last twelve months up to this one
        start, end = date(today.year - 1, today.month, 1) + timedelta(days=31), today
        start = start.replace(day=1)
    end = min(end, today)  # no month-end balances of months to come
    listed = await list_settlements(v.ctx, v.business, 500 if v.downloading else 100)
    _ = v.lang._
    sheet = v.sheet(
        "settlements",
        "Settlements",
        [
            ("Settlement", "text"),
            ("Period from", "date"),
            ("Period to", "date"),
            ("Imported", "date"),
            ("Source", "text"),
            ("Rows", "int"),
            ("Exceptions", "int"),
        ],
        "No settlement has been imported yet.",
    )
    for s in listed.settlements:
        sheet.add(
            Cell(s.settlement_id, href=page_url(v, f"settlements/{s.settlement_id}")),
            s.period_start.date() if s.period_start else None,
            s.period_end.date() if s.period_end else None,
            s.imported_at.date(),
            _(s.source),
            s.rows,
            s.exception_count,
            settlement=s.settlement_id,
        )
    months = await find.amazon_pay_months(v.ctx, v.business, start, end)
    money = v.sheet(
        "amazon-pay",
        "Amazon Pay clearing and reserve against payouts",
        [("Month", "text"), ("Clearing (Amazon owes)", "amount"), ("Reserve", "amount"), ("Payouts", "amount")],
    )
    for m in months:
        money.add(
            f"{m.month:%Y-%m}",
            money_text(v, m.clearing),
            money_text(v, m.reserve),
            money_text(v, m.payouts),
            month=f"{m.month:%Y-%m}",
        )
    chart = bar_chart(
        _("Amazon Pay clearing and reserve against payouts"),
        [f"{m.month:%m/%y}" for m in months],
        [
            (_("Clearing (Amazon owes)"), [m.clearing / 100 for m in months]),
            (_("Reserve"), [m.reserve / 100 for m in months]),
            (_("Payouts"), [m.payouts / 100 for m in months]),
        ],
        value=lambda x: v.fmt.amount(f"{x:.0f}", "JPY"),
        chart_id="chart-amazon-pay",
    )
    return v.respond(
        "settlements.html",
        "settlements",
        [sheet, money],
        chart=chart,
        year=y if year else None,
        reports=listed.reports,
        start=start,
        end=end,
    )


@get("/{code:int}/settlements/{settlement_id:str}")
async def settlement_page(request: Request[Any, Any, Any], code: Code, settlement_id: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    if not 1 <= len(settlement_id) <= 64:
        raise NotFound("settlement_not_found", f"settlement {settlement_id} was not imported")
    summary = await get_settlement(v.ctx, v.business, settlement_id)
    rows = await v.ctx.reports_pool.fetch(
        "SELECT line_no, transaction_type, transaction_id, seller_reference_id, order_reference_id, description, "
        "amount_minor, fee_minor, posted_on, outcome FROM settlement_rows WHERE merchant_id = $1 AND business = $2 "
        "AND settlement_id = $3 ORDER BY line_no LIMIT 10000",
        v.business.merchant_id,
        v.business.code,
        settlement_id,
    )
    sheet = v.sheet(
        "settlement-rows",
        "Rows and what they matched",
        [
            ("Line", "int"),
            ("Type", "text"),
            ("Transaction", "text"),
            ("Order", "text"),
            ("Description", "text"),
            ("Amount", "amount"),
            ("Fee", "amount"),
            ("Posted", "date"),
            ("Outcome", "text"),
        ],
    )
    for r in rows:
        sheet.add(
            r["line_no"],
            r["transaction_type"],
            r["transaction_id"],
            r["seller_reference_id"] or r["order_reference_id"],
            r["description"],
            money_text(v, r["amount_minor"]),
            money_text(v, r["fee_minor"]),
            r["posted_on"],
            v.lang._(r["outcome"]) if r["outcome"] else "",
            line=r["line_no"],
        )
    return v.respond("settlement.html", "settlements", [sheet], summary=summary)


@get("/{code:int}/bank-statements")
async def statements_page(request: Request[Any, Any, Any], code: Code, cursor: Cursor = None) -> Response[Any]:
    v = await open_page(request, code)
    page = await find.bank_statements(
        v.ctx,
        v.business,
        account=None,
        from_date=None,
        to_date=None,
        cursor=cursor or None,
        limit=500 if v.downloading else PAGE,
    )
    sheet = v.sheet(
        "bank-statements",
        "",
        [
            ("Date", "date"),
            ("Statement", "text"),
            ("Account", "text"),
            ("Lines", "int"),
            ("Credits", "amount"),
            ("Debits", "amount"),
            ("Exceptions", "int"),
        ],
        "No bank statement has been imported yet.",
    )
    for s in page.items:
        href = page_url(v, f"bank-statements/{s.statement_date}/{s.statement_id}") + (
            f"?account={s.account}" if s.account else ""
        )
        sheet.add(
            s.statement_date,
            Cell(s.statement_id, href=href),
            s.account,
            s.line_count,
            s.credits,
            s.debits,
            len(s.exceptions),
            statement=s.statement_id,
        )
    return v.respond("bank_statements.html", "bank-statements", [sheet], page=page, first=cursor is None)


@get("/{code:int}/bank-statements/{statement_on:str}/{statement_id:str}")
async def statement_page(
    request: Request[Any, Any, Any],
    code: Code,
    statement_on: FromPath[str],
    statement_id: FromPath[str],
    account: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Response[Any]:
    v = await open_page(request, code)
    try:
        day = date.fromisoformat(statement_on)
    except ValueError:
        raise NotFound("statement_not_found", say(v, "This bank statement was not imported.")) from None
    found = await find.bank_statement(v.ctx, v.business, day, statement_id[:64], account or None)
    if not found:
        raise NotFound("statement_not_found", f"no bank statement {statement_id} of {day.isoformat()}")
    s = found[0]
    _ = v.lang._
    lines = v.sheet(
        "statement-lines",
        "Lines and matches",
        [
            ("Entry", "int"),
            ("Detail", "int"),
            ("Booked", "date"),
            ("Amount", "amount"),
            ("Counterparty", "text"),
            ("IBAN", "text"),
            ("Outcome", "text"),
            ("Matched", "text"),
            ("Journal entry", "int"),
        ],
    )
    for line in s.lines:
        lines.add(
            line.entry,
            line.detail,
            line.booking_date,
            line.amount,
            line.counterparty_name or "",
            line.counterparty_iban or "",
            _(line.outcome),
            _match(v, line.match),
            Cell(line.entry_id, href=page_url(v, f"journal/{line.entry_id}")) if line.entry_id else None,
            entry=line.entry,
        )
    exceptions = v.sheet(
        "statement-exceptions",
        "Reconciliation exceptions",
        [("No.", "int"), ("Line", "int"), ("Kind", "text"), ("Amount", "amount"), ("State", "text")],
        "None.",
    )
    for e in s.exceptions:
        exceptions.add(e.exception_id, e.line, _(e.kind), e.amount, _(e.state), exception=e.exception_id, kind=e.kind)
    checks = v.sheet(
        "statement-checks",
        "Balance checks",
        [("Check", "text"), ("Outcome", "text"), ("Statement", "amount"), ("Compared with", "amount"),
         ("Difference", "amount"), ("Exception", "int")],
        "The statement was imported before its balances were checked.",
    )  # fmt: skip
    for c in s.checks:
        outcome = Cell(_(c.outcome), attrs=(("title", c.detail),))  # the check in words, as the API gives it
        checks.add(
            _(_CHECKS[c.check]), outcome, c.stated, c.expected, c.difference, c.exception_id,
            check=c.check, outcome=c.outcome,
        )  # fmt: skip
    return v.respond("bank_statement.html", "bank-statements", [lines, exceptions, checks], statement=s)


# what a bank line paid, as `payments.remittance` names it ("invoice RE-4711"), in the page's language
_MATCHES = ("payment reference", "invoice", "order", "customer", "settlement")


def _match(v: View, text: str | None) -> str:
    for what in _MATCHES:
        if text and text.startswith(f"{what} "):
            return v.lang._(f"{what} {{reference}}").format(reference=text[len(what) + 1 :])
    return text or ""


# the clause `payments.bank` starts a parked line's description with (stored English text: the rest, the
# bank's reference, counterparty and remittance, is shown as it is)
_PARKED = ("no payout, invoice, order or customer matches", "money out of the bank")


def _described(v: View, text: str) -> str:
    for clause in _PARKED:
        if text.startswith(f"{clause};"):
            return v.lang._(clause) + text[len(clause) :]
    return text


_CHECKS = {
    "opening_balance": "Opening balance = previous closing balance",
    "closing_balance": "Opening balance + lines = closing balance",
    "ledger_balance": "Closing balance = ledger's bank account",
}


# --- reconciliation ------------------------------------------------------------------------------------
@get("/{code:int}/reconciliation")
async def reconciliation(
    request: Request[Any, Any, Any],
    code: Code,
    shown: Annotated[str, QueryParameter(name="state")] = "open",
    after: After = 0,
) -> Response[Any]:
    v = await open_page(request, code)
    if shown not in ("open", "resolved", "dismissed", "all"):
        raise BadRequest("query_parameter_invalid", say(v, "State: “{value}” is not one of open, resolved, "
                       "dismissed, all.", value=shown[:40]))  # fmt: skip
    page = await list_exceptions(
        v.ctx,
        v.business,
        state=None if shown == "all" else shown,
        source=None,
        after=max(after, 0),
        limit=5000 if v.downloading else PAGE,
    )
    _ = v.lang._
    sheet = v.sheet(
        "exceptions",
        "",
        [
            ("No.", "int"),
            ("Source", "text"),
            ("Reference", "text"),
            ("Line", "int"),
            ("Kind", "text"),
            ("Description", "text"),
            ("Amount", "amount"),
            ("State", "text"),
            ("Entry", "int"),
        ],
        "No exceptions.",
    )
    for e in page.items:
        entry = e.resolution_entry_id or e.suspense_entry_id
        sheet.add(
            e.exception_id,
            _(e.source),
            e.source_reference,
            e.line,
            _(e.kind),
            _described(v, e.description),
            Cell(e.amount, currency=e.currency, display=f"{v.fmt.amount(e.amount, e.currency)} {e.currency}"),
            _(e.state),
            Cell(entry, href=page_url(v, f"journal/{entry}")) if entry else None,
            exception=e.exception_id,
            kind=e.kind,
        )
    open_ones = [e for e in page.items if e.state == "open"]
    index = await account_index(v.ctx, v.business)
    accounts = sorted(index.by_number.values(), key=lambda a: a.number)
    return v.respond(
        "reconciliation.html",
        "reconciliation",
        [sheet],
        page=page,
        state=shown,
        open=open_ones,
        accounts=accounts,
        today=v.ctx.today(),
    )


@post("/{code:int}/reconciliation/resolution", status_code=303)
async def resolve(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    form = await read_form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = form_reason(v, form)
    exception_id = parse_ascii_int(form.get("exception", ""))
    if exception_id is None or exception_id < 1:
        raise Unprocessable("exception_required", say(v, "Choose the exception."))
    action = form.get("action", "")
    if action not in ("resolve", "dismiss"):
        raise Unprocessable("action_invalid", say(v, "Choose to resolve or to dismiss."))
    try:
        body = Resolution(
            action="resolve" if action == "resolve" else "dismiss",
            account=form.get("account") or None,
            customer=form.get("customer") or None,
            reason=reason,
            booking_date=form_date(v, form, "booking_date", "Booking date"),
        )
    except (msgspec.ValidationError, ValueError) as exc:
        raise Unprocessable("resolution_invalid", str(exc)) from None
    with v.acting():
        await resolve_exception(v.ctx, v.business, exception_id, body)
    return Redirect(page_url(v, "reconciliation?state=all"), status_code=303, headers=HEADERS)
