"""The report pages: trial balance, income statement, balance sheet, VAT (with the UStVA fields) and the
receivables ageing; the same figures as the API's reports.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromQuery, QueryParameter

from desk import find
from desk.charts import bar_chart
from desk.formats import signed_minor
from desk.sheets import Cell, Sheet
from desk.web.common import (
    money_text,
    page_url,
    say,
    year_range,
)
from desk.webkit import View, open_page
from ledger import reports
from ledger.errors import BadRequest
from ledger.http.deps import BusinessCodePath as Code
from ledger.money import format_amount, parse_amount
from ledger.schemas import BalanceSheetOut, TrialBalanceOut

__all__ = ["ageing_page", "balance_sheet", "income_statement", "trial_balance", "vat_page"]


# --- trial balance -------------------------------------------------------------------------------------
@get("/{code:int}/trial-balance")
async def trial_balance(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    report = await reports.trial_balance(v.ctx, v.business, as_of=as_of or v.ctx.today())
    sheet = v.sheet(
        "trial-balance",
        "",
        [
            ("Account", "text"),
            ("Name", "text"),
            ("Alt. no.", "text"),
            ("Currency", "text"),
            ("Debit", "amount"),
            ("Credit", "amount"),
        ],
    )
    for r in report.rows:
        href = page_url(v, f"accounts/{r.account}/register?to={report.as_of}")
        sheet.add(
            Cell(r.account, href=href),
            v.lang.account(r.name),
            r.alt_number or "",
            r.currency,
            Cell(r.debit, currency=r.currency),
            Cell(r.credit, currency=r.currency),
            account=r.account,
            currency=r.currency,
        )
    for t in report.totals:
        sheet.total(
            v.lang._("Total"),
            "",
            "",
            t.currency,
            Cell(t.debit, currency=t.currency),
            Cell(t.credit, currency=t.currency),
            total=t.currency,
        )
    return v.respond("trial_balance.html", "trial-balance", [sheet], report=report, notes=_balance_notes(v, report))


def _balance_notes(v: View, report: TrialBalanceOut) -> list[str]:
    """The verdict in the page's language: which side exceeds the other in which currency, by a positive amount."""
    notes = []
    for t in report.totals:
        debit, credit = (parse_amount(x, t.currency, allow_zero=True) for x in (t.debit, t.credit))
        if debit == credit:
            continue
        text = (
            v.lang._("OUT OF BALANCE: {currency} debits exceed credits by {amount}.")
            if debit > credit
            else v.lang._("OUT OF BALANCE: {currency} credits exceed debits by {amount}.")
        )
        amount = v.fmt.amount(format_amount(abs(debit - credit), t.currency), t.currency)
        notes.append(text.format(currency=t.currency, amount=amount))
    return notes or [v.lang._("Debits equal credits.")]


# --- statements ----------------------------------------------------------------------------------------
def _default_range(v: View, from_date: date | None, to_date: date | None) -> tuple[date, date]:
    today = v.ctx.today()
    start = from_date or date(today.year, 1, 1)
    end = to_date or today
    if start > end:
        raise BadRequest("query_parameter_invalid", say(v, "From ({start}) is after To ({end}).",
                       start=v.fmt.day(start), end=v.fmt.day(end)))  # fmt: skip
    return start, end


def _report_sheet(v: View, id: str, sections: list[tuple[str, list[Any]]], totals: list[tuple[str, str]]) -> Sheet:
    _ = v.lang._
    sheet = v.sheet(
        id, "", [("Section", "text"), ("Account", "text"), ("Alt. no.", "text"), ("Name", "text"), ("Amount", "amount")]
    )
    for section, lines in sections:
        for x in lines:
            sheet.add(
                _(section),
                Cell(x.account, href=page_url(v, f"accounts/{x.account}/register")),
                x.alt_number or "",
                v.lang.account(x.name),
                x.amount,
                account=x.account,
            )
    for label, amount in totals:
        sheet.total(_(label), "", "", "", amount, total=label)
    return sheet


@get("/{code:int}/income-statement")
async def income_statement(
    request: Request[Any, Any, Any],
    code: Code,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
) -> Response[Any]:
    v = await open_page(request, code)
    start, end = _default_range(v, from_date, to_date)
    report = await reports.income_statement(v.ctx, v.business, from_date=start, to_date=end)
    sheet = _report_sheet(
        v,
        "income-statement",
        [("Revenue", report.revenue), ("Expenses", report.expenses)],
        [
            ("Total revenue", report.total_revenue),
            ("Total expenses", report.total_expenses),
            ("Net income", report.net_income),
        ],
    )
    chart_start = max(start, end.replace(day=1) - timedelta(days=366)).replace(day=1)
    months = await find.monthly_sales(v.ctx, v.business, chart_start, end)
    _ = v.lang._
    monthly = v.sheet(
        "monthly-sales",
        "Revenue, returns and goodwill per month",
        [
            ("Month", "text"),
            ("Revenue", "amount"),
            ("Cancellations", "amount"),
            ("Returns", "amount"),
            ("Goodwill", "amount"),
            ("Other deductions", "amount"),
        ],
    )
    for m in months:
        monthly.add(
            f"{m.month:%Y-%m}",
            money_text(v, m.revenue),
            money_text(v, m.cancellations),
            money_text(v, m.returns),
            money_text(v, m.goodwill),
            money_text(v, m.other_reductions),
            month=f"{m.month:%Y-%m}",
        )
    chart = bar_chart(
        _("Revenue, returns and goodwill per month"),
        [f"{m.month:%m/%y}" for m in months],
        [
            (_("Revenue"), [m.revenue / 100 for m in months]),
            (_("Returns"), [m.returns / 100 for m in months]),
            (_("Goodwill"), [m.goodwill / 100 for m in months]),
            (_("Cancellations"), [m.cancellations / 100 for m in months]),
        ],
        value=lambda x: v.fmt.amount(f"{x:.0f}", "JPY"),
        chart_id="chart-monthly-sales",
    )
    return v.respond(
        "statement.html",
        "income-statement",
        [sheet, monthly],
        report=report,
        start=start,
        end=end,
        heading=_("Income statement"),
        chart=chart,
        dated=False,
    )


@get("/{code:int}/balance-sheet")
async def balance_sheet(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    day = as_of or v.ctx.today()
    report = await reports.balance_sheet(v.ctx, v.business, as_of=day)
    sheet = _report_sheet(
        v,
        "balance-sheet",
        [("Assets", report.assets), ("Liabilities", report.liabilities), ("Equity", report.equity)],
        [
            ("Current earnings", report.current_earnings),
            ("Total assets", report.total_assets),
            ("Total liabilities and equity", report.total_liabilities_and_equity),
        ],
    )
    return v.respond(
        "statement.html",
        "balance-sheet",
        [sheet],
        report=report,
        as_of=day,
        dated=True,
        heading=v.lang._("Balance sheet"),
        chart=None,
        verdict=_sheet_verdict(v, report),
    )


def _sheet_verdict(v: View, report: BalanceSheetOut) -> str:
    """Assets against liabilities and equity in the page's language: which side exceeds, by a positive amount."""
    cur = report.currency
    assets, other = (signed_minor(x, cur) for x in (report.total_assets, report.total_liabilities_and_equity))
    if assets == other:
        return v.lang._("Assets equal liabilities and equity.")
    text = (
        v.lang._("OUT OF BALANCE: assets exceed liabilities and equity by {amount}.")
        if assets > other
        else v.lang._("OUT OF BALANCE: liabilities and equity exceed assets by {amount}.")
    )
    return text.format(amount=v.fmt.amount(format_amount(abs(assets - other), cur), cur))


# --- VAT -----------------------------------------------------------------------------------------------
# Umsatzsteuer-Voranmeldung: taxable base and tax of sales at 19 % (Kz 81), at 7 % (Kz 86), at other rates
# (Kz 35 base, Kz 36 tax); reductions and §17 UStG corrections are negative amounts in the same lines.
USTVA = {Decimal(19): "81", Decimal(7): "86"}


@get("/{code:int}/vat")
async def vat_page(request: Request[Any, Any, Any], code: Code, year: FromQuery[int | None] = None) -> Response[Any]:
    v = await open_page(request, code)
    y, start, end = year_range(v, year)
    rows = await find.vat_summary(v.ctx, v.business, start, end)
    _ = v.lang._
    sheet = v.sheet(
        "vat-summary",
        "VAT per month and rate",
        [
            ("Month", "text"),
            ("Rate %", "text"),
            ("Sales (net)", "amount"),
            ("VAT on sales", "amount"),
            ("Credit notes and returns (net)", "amount"),
            ("VAT on credit notes", "amount"),
            ("Bad debts, §17 UStG (net)", "amount"),
            ("VAT on bad debts", "amount"),
            ("Taxable amount", "amount"),
            ("VAT", "amount"),
        ],
        "No VAT booked in this year.",
    )
    for r in rows:
        rate = format(r.rate.normalize(), "f")
        sheet.add(
            f"{r.month:%Y-%m}",
            rate,
            money_text(v, r.sales),
            money_text(v, r.sales_tax),
            money_text(v, r.reductions),
            money_text(v, r.reductions_tax),
            money_text(v, r.bad_debts),
            money_text(v, r.bad_debts_tax),
            money_text(v, r.base),
            money_text(v, r.tax),
            month=f"{r.month:%Y-%m}",
            rate=rate,
        )
    sheet.total(
        _("Total"),
        "",
        *(
            money_text(v, sum(getattr(r, k) for r in rows))
            for k in ("sales", "sales_tax", "reductions", "reductions_tax", "bad_debts", "bad_debts_tax", "base", "tax")
        ),
    )
    sheets = [sheet]
    if v.business.country == "DE":
        ustva = v.sheet(
            "ustva",
            "Umsatzsteuer-Voranmeldung",
            [
                ("Month", "text"),
                ("Kz 81 base (19 %)", "amount"),
                ("Kz 81 tax", "amount"),
                ("Kz 86 base (7 %)", "amount"),
                ("Kz 86 tax", "amount"),
                ("Kz 35 base (other rates)", "amount"),
                ("Kz 36 tax", "amount"),
                ("Output VAT", "amount"),
            ],
            "No VAT booked in this year.",
        )
        by_month: dict[date, dict[str, int]] = {}
        for r in rows:
            if r.rate == 0:
                continue
            box = USTVA.get(r.rate, "35")
            m = by_month.setdefault(r.month, dict.fromkeys(("81", "81t", "86", "86t", "35", "36t"), 0))
            m[box] += r.base
            m[{"81": "81t", "86": "86t", "35": "36t"}[box]] += r.tax
        for month, m in sorted(by_month.items()):
            ustva.add(
                f"{month:%Y-%m}",
                *(money_text(v, m[k]) for k in ("81", "81t", "86", "86t", "35", "36t")),
                money_text(v, m["81t"] + m["86t"] + m["36t"]),
                month=f"{month:%Y-%m}",
            )
        sheets.append(ustva)
    return v.respond("vat.html", "vat", sheets, year=y)


# --- receivables ---------------------------------------------------------------------------------------
BUCKET_LABELS = {
    "not_due": "Not yet due",
    "days_0_30": "0–30 days",
    "days_31_60": "31–60 days",
    "days_61_90": "61–90 days",
    "days_over_90": "over 90 days",
}


@get("/{code:int}/ageing")
async def ageing_page(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    day = as_of or v.ctx.today()
    report = await find.ageing(v.ctx, v.business, day)
    _ = v.lang._
    sheet = v.sheet(
        "ageing",
        "",
        [
            ("Customer", "text"),
            ("Name", "text"),
            ("Oldest due", "date"),
            *((BUCKET_LABELS[b], "amount") for b in find.AGEING_BUCKETS),
            ("Fees and interest", "amount"),
            ("Credit balance", "amount"),
            ("Total", "amount"),
        ],
        "No receivables are open.",
    )
    shown = report.rows if v.downloading else report.rows[:500]
    for r in shown:
        sheet.add(
            Cell(r.customer, href=page_url(v, f"customers/{r.customer}")),
            r.name or "",
            r.oldest_due,
            *(money_text(v, getattr(r, b)) for b in find.AGEING_BUCKETS),
            money_text(v, r.charges),
            money_text(v, r.credit),
            money_text(v, r.total),
            customer=r.customer,
        )
    t = report.totals
    sheet.total(
        _("Total"),
        "",
        None,
        *(money_text(v, t[b]) for b in find.AGEING_BUCKETS),
        money_text(v, t["charges"]),
        money_text(v, t["credit"]),
        money_text(v, t["total"]),
        total=v.business.currency,
    )
    chart = bar_chart(
        _("Open receivables by days past due"),
        [_(BUCKET_LABELS[b]) for b in find.AGEING_BUCKETS],
        [(_("Open"), [t[b] / 100 for b in find.AGEING_BUCKETS])],
        value=lambda x: v.fmt.amount(f"{x:.2f}"),
        chart_id="chart-ageing",
    )
    return v.respond(
        "ageing.html",
        "ageing",
        [sheet],
        report=report,
        as_of=day,
        chart=chart,
        more=len(report.rows) > len(shown),
        owing=sum(1 for r in report.rows if r.total > 0),
    )
