"""Balances and reports, read from the balance slots and the lines (on the reports pool).

Why this shape: `balance_totals` holds debit and credit sums per (account, currency, day, slot), so a
current balance, a balance as of a date and a trial balance are sums over a few thousand small rows at
most, whatever the size of the journal. Per-customer figures read the lines through
their indexes. Balances are reported as an absolute amount with the side it sits on (DEBIT, CREDIT,
BALANCED), plus the debit and credit totals, which is how accountants read them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Literal

import asyncpg
import msgspec

from ledger.context import Kontor
from ledger.domain import CREDIT_NORMAL_TYPES, Account, Business, month_end, parse_period
from ledger.errors import Unprocessable
from ledger.money import format_amount
from ledger.schemas import (
    AccountBalanceOut,
    BalanceSheetOut,
    BalanceSide,
    CurrencyBalance,
    CurrencyTotals,
    CustomerAccountOut,
    GLReportOut,
    GLRow,
    GLTotals,
    IncomeStatementOut,
    ReportLine,
    TrialBalanceOut,
    TrialBalanceRow,
)
from ledger.tenancy import account_index, accounts_with, get_account

__all__ = [
    "account_balance",
    "balance_sheet",
    "customer_account",
    "gl_report",
    "income_statement",
    "side_of",
    "trial_balance",
]


def side_of(net: int) -> BalanceSide:
    return "DEBIT" if net > 0 else "CREDIT" if net < 0 else "BALANCED"


def _currency_balance(currency: str, debit: int, credit: int) -> CurrencyBalance:
    net = debit - credit
    return CurrencyBalance(
        currency=currency,
        debit_total=format_amount(debit, currency),
        credit_total=format_amount(credit, currency),
        balance=format_amount(abs(net), currency),
        side=side_of(net),
    )


async def account_balance(
    ctx: Kontor, business: Business, number: str, *, as_of: date | None, customer: str | None
) -> AccountBalanceOut:
    account = await get_account(ctx, business, number)
    if customer is None:
        rows = await ctx.reports_pool.fetch(
            "SELECT currency, sum(debit_minor) AS debit, sum(credit_minor) AS credit "
            "FROM balance_totals WHERE merchant_id = $1 AND business = $2 AND account_id = $3 "
            "AND ($4::date IS NULL OR day <= $4) GROUP BY currency ORDER BY currency",
            business.merchant_id,
            business.code,
            account.account_id,
            as_of,
        )
    else:
        rows = await _customer_sums(ctx, business, customer, as_of, account.account_id)
    balances = [_currency_balance(r["currency"], int(r["debit"]), int(r["credit"])) for r in rows]
    if not any(b.currency == business.currency for b in balances):
        balances.insert(0, _currency_balance(business.currency, 0, 0))
    return AccountBalanceOut(
        account=account.number, name=account.name, type=account.type, as_of=as_of, customer=customer, balances=balances
    )


async def _customer_sums(
    ctx: Kontor, business: Business, customer: str, as_of: date | None, account_id: int | None
) -> list[asyncpg.Record]:
    return await ctx.reports_pool.fetch(
        "SELECT currency, COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) AS debit, "
        "COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0) AS credit FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND ($4::date IS NULL OR effective_date <= $4) "
        "AND ($5::bigint IS NULL OR account_id = $5) GROUP BY currency ORDER BY currency",
        business.merchant_id,
        business.code,
        customer,
        as_of,
        account_id,
    )


async def customer_account(ctx: Kontor, business: Business, customer: str, *, as_of: date | None) -> CustomerAccountOut:
    """The customer's account (debtor sub-ledger): DEBIT owes, CREDIT is owed, BALANCED settled."""
    sums = {
        r["currency"]: (int(r["debit"]), int(r["credit"]))
        for r in await _customer_sums(ctx, business, customer, as_of, None)
    }
    debit, credit = sums.pop(business.currency, (0, 0))
    main = _currency_balance(business.currency, debit, credit)
    return CustomerAccountOut(
        customer=customer,
        currency=business.currency,
        balance=main.balance,
        state=main.side,
        debit_total=main.debit_total,
        credit_total=main.credit_total,
        as_of=as_of,
        other_currencies=[_currency_balance(c, d, k) for c, (d, k) in sorted(sums.items())],
    )


async def _account_sums(
    ctx: Kontor, business: Business, *, from_date: date | None, to_date: date | None
) -> list[tuple[Account, str, int, int]]:
    rows = await ctx.reports_pool.fetch(
        "SELECT account_id, currency, sum(debit_minor) AS debit, sum(credit_minor) AS credit "
        "FROM balance_totals WHERE merchant_id = $1 AND business = $2 "
        "AND ($3::date IS NULL OR day >= $3) AND ($4::date IS NULL OR day <= $4) "
        "GROUP BY account_id, currency",
        business.merchant_id,
        business.code,
        from_date,
        to_date,
    )
    index = await accounts_with(ctx, business, ids=[r["account_id"] for r in rows])
    sums = [(index.by_id[r["account_id"]], r["currency"], int(r["debit"]), int(r["credit"])) for r in rows]
    return sorted(sums, key=lambda s: (s[0].number, s[1]))


async def trial_balance(ctx: Kontor, business: Business, *, as_of: date | None) -> TrialBalanceOut:
    """Every account with movements, its balance in the debit or credit column; the columns agree."""
    rows: list[TrialBalanceRow] = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for account, currency, debit, credit in await _account_sums(ctx, business, from_date=None, to_date=as_of):
        net = debit - credit
        column = totals[currency]
        column[0 if net > 0 else 1] += abs(net)
        rows.append(
            TrialBalanceRow(
                account=account.number,
                name=account.name,
                type=account.type,
                alt_number=account.alt_number,
                currency=currency,
                debit=format_amount(max(net, 0), currency),
                credit=format_amount(max(-net, 0), currency),
            )
        )
    totals.setdefault(business.currency, [0, 0])
    return TrialBalanceOut(
        business=business.code,
        as_of=as_of,
        rows=rows,
        totals=[
            CurrencyTotals(currency=c, debit=format_amount(d, c), credit=format_amount(k, c))
            for c, (d, k) in sorted(totals.items())
        ],
        balanced=all(d == k for d, k in totals.values()),
    )


def _signed(account: Account, debit: int, credit: int) -> int:
    """Balance in the account's normal direction (revenue and liabilities positive when credited)."""
    return credit - debit if account.type in CREDIT_NORMAL_TYPES else debit - credit


def _report_line(
    account: Account,
    amount: int,
    currency: str,
    *,
    portion: Literal["debit_balances", "credit_balances"] | None = None,
    customers: int | None = None,
) -> ReportLine:
    return ReportLine(
        account=account.number,
        name=account.name,
        alt_number=account.alt_number,
        amount=format_amount(amount, currency),
        portion=portion,
        customers=customers,
    )


async def income_statement(ctx: Kontor, business: Business, *, from_date: date, to_date: date) -> IncomeStatementOut:
    if from_date > to_date:
        raise Unprocessable("date_range_invalid", "`from` must not be after `to`")
    cur = business.currency
    revenue: list[ReportLine] = []
    expenses: list[ReportLine] = []
    total_revenue = total_expenses = 0
    for account, currency, debit, credit in await _account_sums(ctx, business, from_date=from_date, to_date=to_date):
        if currency != cur or account.type not in ("revenue", "expense"):
            continue
        amount = _signed(account, debit, credit)
        if account.type == "revenue":
            revenue.append(_report_line(account, amount, cur))
            total_revenue += amount
        else:
            expenses.append(_report_line(account, amount, cur))
            total_expenses += amount
    return IncomeStatementOut(
        business=business.code,
        currency=cur,
        from_date=from_date,
        to_date=to_date,
        revenue=revenue,
        expenses=expenses,
        total_revenue=format_amount(total_revenue, cur),
        total_expenses=format_amount(total_expenses, cur),
        net_income=format_amount(total_revenue - total_expenses, cur),
    )


async def balance_sheet(ctx: Kontor, business: Business, *, as_of: date) -> BalanceSheetOut:
    """Assets against liabilities and equity; unclosed revenue minus expenses shows as current earnings.

    Nothing is netted (HGB §246 (2)): an asset or liability account is shown on the side its balance is on — a
    debit balance among the assets, a credit balance among the liabilities, whatever the account's type (a
    suspense account holding more unexplained receipts than payments is a liability; a bank account in overdraft
    is one). An account keeping customer accounts (receivables) is split by customer: the customers' debit
    balances are receivables (assets), their credit balances — money received before the invoice, or more than
    was invoiced — are prepayments received, a liability (accounting.md; HGB §266 (3) C 3)."""
    cur = business.currency
    sections: dict[str, list[ReportLine]] = {"asset": [], "liability": [], "equity": []}
    totals: dict[str, int] = defaultdict(int)
    split = await _customer_balances(ctx, business, as_of)
    for account, currency, debit, credit in await _account_sums(ctx, business, from_date=None, to_date=as_of):
        if currency != cur:
            continue
        if account.type in ("revenue", "expense", "equity"):
            amount = _signed(account, debit, credit)
            totals[account.type] += amount
            if account.type == "equity":
                sections["equity"].append(_report_line(account, amount, cur))
            continue
        if account.customer_ledger:
            owed, owed_by, prepaid, prepaid_by = split.get(account.account_id, (0, 0, 0, 0))
            if owed or not prepaid:
                sections["asset"].append(_report_line(account, owed, cur, portion="debit_balances", customers=owed_by))
            if prepaid:
                name = "Customer credit balances (prepayments received)"
                line = _report_line(account, prepaid, cur, portion="credit_balances", customers=prepaid_by)
                sections["liability"].append(msgspec.structs.replace(line, name=name))
            totals["asset"] += owed
            totals["liability"] += prepaid
            continue
        net = debit - credit
        side = "asset" if net > 0 or (net == 0 and account.type == "asset") else "liability"
        sections[side].append(_report_line(account, abs(net), cur))
        totals[side] += abs(net)
    earnings = totals["revenue"] - totals["expense"]
    other_side = totals["liability"] + totals["equity"] + earnings
    return BalanceSheetOut(
        business=business.code,
        currency=cur,
        as_of=as_of,
        assets=sections["asset"],
        liabilities=sections["liability"],
        equity=sections["equity"],
        current_earnings=format_amount(earnings, cur),
        total_assets=format_amount(totals["asset"], cur),
        total_liabilities_and_equity=format_amount(other_side, cur),
        balanced=totals["asset"] == other_side,
    )


async def _customer_balances(ctx: Kontor, business: Business, as_of: date) -> dict[int, tuple[int, int, int, int]]:
    """Per account keeping customer accounts, in the business code's currency as of `as_of`: the sum and number
    of the customers' debit balances, and the sum and number of their credit balances (positive amounts)."""
    index = await account_index(ctx, business)
    ledgers = [a.account_id for a in index.by_id.values() if a.customer_ledger]
    if not ledgers:
        return {}
    rows = await ctx.reports_pool.fetch(
        "SELECT account_id, COALESCE(sum(net) FILTER (WHERE net > 0), 0) AS owed, count(*) FILTER (WHERE net > 0) "
        "AS owed_by, COALESCE(sum(-net) FILTER (WHERE net < 0), 0) AS prepaid, count(*) FILTER (WHERE net < 0) "
        "AS prepaid_by FROM (SELECT account_id, customer, sum(CASE side WHEN 'D' THEN amount_minor "
        "ELSE -amount_minor END) AS net FROM lines WHERE merchant_id = $1 AND business = $2 "
        "AND account_id = ANY($3::bigint[]) AND currency = $4 AND effective_date <= $5 "
        "GROUP BY account_id, customer) c GROUP BY account_id",
        business.merchant_id,
        business.code,
        ledgers,
        business.currency,
        as_of,
    )
    return {r["account_id"]: (int(r["owed"]), r["owed_by"], int(r["prepaid"]), r["prepaid_by"]) for r in rows}


GL_COLUMNS = (
    "opening_debit", "opening_credit", "debit", "credit", "closing_debit", "closing_credit",
)  # fmt: skip


async def gl_report(ctx: Kontor, business: Business, period: str) -> GLReportOut:
    """The month-end G/L report: per account (and currency) the opening balance, the period's debits and credits
    and the closing balance, with the account's country, tax code and the merchant's alternative number."""
    first = parse_period(period)
    last = month_end(first)
    opening = {(a.account_id, c): d - k for a, c, d, k in await _account_sums(ctx, business, from_date=None,
                                                                              to_date=first - timedelta(days=1))}  # fmt: skip
    moved = {(a.account_id, c): (a, d, k) for a, c, d, k in await _account_sums(ctx, business, from_date=first,
                                                                                to_date=last)}  # fmt: skip
    index = await account_index(ctx, business)
    keys = sorted(set(opening) | set(moved), key=lambda k: (index.by_id[k[0]].number, k[1]))
    rows: list[GLRow] = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for account_id, currency in keys:
        account = index.by_id[account_id]
        before = opening.get((account_id, currency), 0)
        _, debit, credit = moved.get((account_id, currency), (account, 0, 0))
        after = before + debit - credit
        figures = [max(before, 0), max(-before, 0), debit, credit, max(after, 0), max(-after, 0)]
        for i, value in enumerate(figures):
            totals[currency][i] += value
        amounts = {name: format_amount(v, currency) for name, v in zip(GL_COLUMNS, figures, strict=True)}
        rows.append(
            GLRow(
                account=account.number,
                alt_number=account.alt_number,
                name=account.name,
                type=account.type,
                country=business.country,
                tax_code="" if account.vat_rate is None else format(account.vat_rate.normalize(), "f"),
                currency=currency,
                **amounts,
            )
        )
    closed = await ctx.reports_pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM period_closes WHERE merchant_id = $1 AND business = $2 AND period >= $3)",
        business.merchant_id,
        business.code,
        first,
    )
    return GLReportOut(
        business=business.code,
        country=business.country,
        period=period,
        from_date=first,
        to_date=last,
        closed=bool(closed),
        rows=rows,
        totals=[
            GLTotals(currency=c, **{n: format_amount(v, c) for n, v in zip(GL_COLUMNS, t, strict=True)})
            for c, t in sorted(totals.items())
        ],
    )
