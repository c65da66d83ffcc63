"""The yearly figures: receivables ageing by bucket, the VAT summary per rate, and the monthly sales and
Amazon Pay figures the charts draw.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from msgspec import Struct

from desk.find.customers import (
    customer_names,
)
from dunning.items import open_items
from dunning.store import load_events
from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.domain import Business
from ledger.tenancy import account_index

__all__ = [
    "AGEING_BUCKETS",
    "CREDIT_NOTE_KINDS",
    "AgeingOut",
    "AgeingRow",
    "AmazonPayMonth",
    "MonthFigures",
    "VatRow",
    "ageing",
    "amazon_pay_months",
    "monthly_sales",
    "vat_summary",
]


AGEING_BUCKETS = ("not_due", "days_0_30", "days_31_60", "days_61_90", "days_over_90")
CREDIT_NOTE_KINDS = ("cancellation", "return", "goodwill")


# --- receivables ageing --------------------------------------------------------------------------------------
class AgeingRow(Struct, kw_only=True):
    customer: str
    name: str | None
    not_due: int
    days_0_30: int
    days_31_60: int
    days_61_90: int
    days_over_90: int
    charges: int  # dunning fees and interest (due at once)
    credit: int  # paid beyond what is owed
    oldest_due: date | None

    @property
    def total(self) -> int:
        return (
            self.not_due + self.days_0_30 + self.days_31_60 + self.days_61_90 + self.days_over_90 + self.charges
            - self.credit
        )  # fmt: skip


class AgeingOut(Struct, kw_only=True):
    as_of: date
    currency: str
    rows: list[AgeingRow]  # customers who owe something, the longest overdue first
    totals: dict[str, int]  # per bucket, "charges", "credit" and "total", in minor units
    customers: int


def _bucket(days: int) -> str:
    if days < 0:
        return "not_due"
    if days <= 30:
        return "days_0_30"
    if days <= 60:
        return "days_31_60"
    return "days_61_90" if days <= 90 else "days_over_90"


async def _ageing_customers(conn: Any, business: Business, ar: int, as_of: date) -> list[str]:
    """Who the ageing lists: customers whose receivable is not balanced on `as_of` (they owe, or are in credit),
    and those dunning follows (in a cycle or with the collection agency: `dunning.store.candidates`)."""
    rows = await conn.fetch(
        "SELECT customer FROM lines WHERE merchant_id = $1 AND business = $2 AND account_id = $3 AND currency = $4 "
        "AND effective_date <= $5 AND customer IS NOT NULL GROUP BY customer "
        "HAVING sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END) <> 0 "
        "UNION SELECT customer FROM dunning_accounts WHERE merchant_id = $1 AND business = $2 "
        "AND (level > 0 OR collection_status IS NOT NULL) ORDER BY 1",
        business.merchant_id,
        business.code,
        ar,
        business.currency,
        as_of,
    )
    return [r["customer"] for r in rows]


async def ageing(ctx: Kontor, business: Business, as_of: date, *, chunk: int = 500) -> AgeingOut:
    """Open receivables by days past their due date (0-30, 31-60, 61-90, over 90; not yet due) per customer,
    as of a day: each open principal item in its bucket, fees and interest apart, credit subtracted. Customers in
    credit (paid beyond what they owe, e.g. a one-step order captured before its invoice) are listed with their
    credit, so the totals' credit is the balance sheet's customer credit balances."""
    ar = (await accounts_by_role(ctx, business))("AR").account_id
    rows: list[AgeingRow] = []
    async with ctx.reports_pool.acquire() as conn:
        listed = await _ageing_customers(conn, business, ar, as_of)
        for start in range(0, len(listed), chunk):
            part = listed[start : start + chunk]
            events = await load_events(conn, business, ar, part, as_of)
            names = await customer_names(conn, business, part)
            for customer in part:
                items = open_items(events.get(customer, []))
                sums = dict.fromkeys(AGEING_BUCKETS, 0)
                due = []
                for b in items.principal.values():
                    if b.open > 0:
                        sums[_bucket((as_of - b.due).days)] += b.open
                        due.append(b.due)
                row = AgeingRow(
                    customer=customer,
                    name=names.get(customer),
                    charges=items.costs + items.interest,
                    credit=items.credit,
                    oldest_due=min(due) if due else None,
                    **sums,
                )
                if row.total or row.credit:
                    rows.append(row)
    rows.sort(key=lambda r: (r.oldest_due or date.max, r.customer))
    totals = {k: sum(getattr(r, k) for r in rows) for k in (*AGEING_BUCKETS, "charges", "credit")}
    totals["total"] = sum(r.total for r in rows)
    return AgeingOut(as_of=as_of, currency=business.currency, rows=rows, totals=totals, customers=len(rows))


# --- VAT and monthly figures ---------------------------------------------------------------------------------
class VatRow(Struct, kw_only=True):
    month: date  # the first day of the month
    rate: Decimal
    sales: int  # net revenue booked at this rate (REV_r credits less debits)
    sales_tax: int  # output VAT of sales, prepayments and recoveries (VAT_r, entries without RED_r or LOSS_r)
    reductions: int  # credit notes, returns, goodwill: net (RED_r debits less credits)
    reductions_tax: int
    bad_debts: int  # §17 UStG corrections of written-off receivables: net (LOSS_r)
    bad_debts_tax: int

    @property
    def base(self) -> int:
        return self.sales - self.reductions - self.bad_debts

    @property
    def tax(self) -> int:
        return self.sales_tax - self.reductions_tax - self.bad_debts_tax


_VAT_FIELDS = ("sales", "sales_tax", "reductions", "reductions_tax", "bad_debts", "bad_debts_tax")


async def _rated_accounts(ctx: Kontor, business: Business) -> dict[int, tuple[str, Decimal]]:
    index = await account_index(ctx, business)
    out = {}
    for role, account in index.by_role.items():
        prefix = role.split("_", 1)[0]
        if prefix in ("REV", "VAT", "RED", "LOSS") and "_" in role and account.vat_rate is not None:
            out[account.account_id] = (prefix, account.vat_rate)
    return out


async def vat_summary(ctx: Kontor, business: Business, from_date: date, to_date: date) -> list[VatRow]:
    """Per month and VAT rate: the taxable amounts and the VAT booked, with credit notes and §17 bad-debt
    corrections apart (what the VAT return needs). A credit note (an entry of a cancellation, return or
    goodwill, or one with a sales-deduction RED_r line) is a reduction, whether it books against revenue or
    sales deductions; an entry with a LOSS_r line is a bad-debt correction; every other entry counts as sales."""
    accounts = await _rated_accounts(ctx, business)
    rows = await ctx.reports_pool.fetch(
        "WITH l AS (SELECT date_trunc('month', effective_date)::date AS month, entry_id, account_id, "
        "  CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END AS dr FROM lines "
        "  WHERE merchant_id = $1 AND business = $2 AND account_id = ANY($3::bigint[]) AND currency = $4 "
        "  AND effective_date BETWEEN $5 AND $6), "
        "k AS (SELECT l.entry_id, bool_or(l.account_id = ANY($7::bigint[])) OR bool_or(e.metadata ?| $9::text[]) "
        "  AS red, bool_or(l.account_id = ANY($8::bigint[])) AS loss FROM l JOIN entries e "
        "  ON e.merchant_id = $1 AND e.business = $2 AND e.entry_id = l.entry_id GROUP BY l.entry_id) "
        "SELECT l.month, l.account_id, k.red, k.loss, sum(l.dr) AS dr FROM l JOIN k USING (entry_id) "
        "GROUP BY l.month, l.account_id, k.red, k.loss",
        business.merchant_id,
        business.code,
        list(accounts),
        business.currency,
        from_date,
        to_date,
        [a for a, (p, _) in accounts.items() if p == "RED"],
        [a for a, (p, _) in accounts.items() if p == "LOSS"],
        list(CREDIT_NOTE_KINDS),
    )
    table: dict[tuple[date, Decimal], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        prefix, rate = accounts[r["account_id"]]
        dr = int(r["dr"])
        cell = table[(r["month"], rate)]
        if prefix in ("REV", "RED") and r["red"]:
            cell["reductions"] += dr
        elif prefix == "REV":
            cell["sales"] -= dr
        elif prefix == "LOSS":
            cell["bad_debts"] += dr
        elif r["loss"]:
            cell["bad_debts_tax"] += dr
        elif r["red"]:
            cell["reductions_tax"] += dr
        else:
            cell["sales_tax"] -= dr
    return [
        VatRow(month=month, rate=rate, **{k: values[k] for k in _VAT_FIELDS})
        for (month, rate), values in sorted(table.items(), key=lambda kv: (kv[0][0], -kv[0][1]))
    ]


class MonthFigures(Struct, kw_only=True):
    month: date
    revenue: int  # net revenue (all rates)
    cancellations: int  # net sales deductions booked by cancellations
    returns: int
    goodwill: int
    other_reductions: int


async def monthly_sales(ctx: Kontor, business: Business, from_date: date, to_date: date) -> list[MonthFigures]:
    """Per month: revenue (of invoices and other entries) and the reductions by the credit note that booked them
    (cancellation, return, goodwill) or, for other sales-deduction lines, as other reductions."""
    accounts = await _rated_accounts(ctx, business)
    wanted = [a for a, (p, _) in accounts.items() if p in ("REV", "RED")]
    rows = await ctx.reports_pool.fetch(
        "SELECT date_trunc('month', l.effective_date)::date AS month, l.account_id, "
        "  CASE WHEN e.metadata ? 'cancellation' THEN 'cancellations' WHEN e.metadata ? 'return' THEN 'returns' "
        "  WHEN e.metadata ? 'goodwill' THEN 'goodwill' ELSE 'other_reductions' END AS kind, "
        "  sum(CASE l.side WHEN 'D' THEN l.amount_minor ELSE -l.amount_minor END) AS dr "
        "FROM lines l JOIN entries e ON e.merchant_id = l.merchant_id AND e.business = l.business "
        "  AND e.entry_id = l.entry_id "
        "WHERE l.merchant_id = $1 AND l.business = $2 AND l.account_id = ANY($3::bigint[]) AND l.currency = $4 "
        "AND l.effective_date BETWEEN $5 AND $6 GROUP BY 1, 2, 3",
        business.merchant_id,
        business.code,
        wanted,
        business.currency,
        from_date,
        to_date,
    )
    months: dict[date, dict[str, int]] = {m: defaultdict(int) for m in _months(from_date, to_date)}
    for r in rows:
        prefix, _ = accounts[r["account_id"]]
        figures = months.setdefault(r["month"], defaultdict(int))
        if prefix == "REV" and r["kind"] == "other_reductions":  # revenue of invoices and other entries
            figures["revenue"] -= int(r["dr"])
        else:  # credit notes, whether booked against revenue or sales deductions
            figures[r["kind"]] += int(r["dr"])
    return [
        MonthFigures(
            month=m,
            revenue=f["revenue"],
            cancellations=f["cancellations"],
            returns=f["returns"],
            goodwill=f["goodwill"],
            other_reductions=f["other_reductions"],
        )
        for m, f in sorted(months.items())
    ]


class AmazonPayMonth(Struct, kw_only=True):
    month: date
    clearing: int  # Amazon Pay clearing (PSP) balance at the month's end: what Amazon owes
    reserve: int  # Amazon Pay reserve (PSP_RESERVE) balance at the month's end
    payouts: int  # paid out to the bank in the month (settlement transfers)


async def amazon_pay_months(ctx: Kontor, business: Business, from_date: date, to_date: date) -> list[AmazonPayMonth]:
    """Month-end balances of the Amazon Pay clearing and reserve accounts, and the payouts of each month."""
    roles = await accounts_by_role(ctx, business)
    psp, reserve = roles("PSP").account_id, roles("PSP_RESERVE").account_id
    key = (business.merchant_id, business.code)
    balances = await ctx.reports_pool.fetch(
        "SELECT account_id, GREATEST(date_trunc('month', day)::date, $5::date) AS month, "
        "sum(debit_minor - credit_minor) AS net FROM balance_totals "
        "WHERE merchant_id = $1 AND business = $2 AND account_id = ANY($3::bigint[]) AND currency = $4 "
        "AND day <= $6 GROUP BY 1, 2",
        *key,
        [psp, reserve],
        business.currency,
        from_date,
        to_date,
    )
    payouts = await ctx.reports_pool.fetch(
        "SELECT date_trunc('month', posted_on)::date AS month, sum(amount_minor) AS paid FROM payouts "
        "WHERE merchant_id = $1 AND business = $2 AND posted_on BETWEEN $3 AND $4 GROUP BY 1",
        *key,
        from_date,
        to_date,
    )
    paid = {r["month"]: int(r["paid"]) for r in payouts}
    moves: dict[tuple[int, date], int] = {(r["account_id"], r["month"]): int(r["net"]) for r in balances}
    out, running = [], {psp: 0, reserve: 0}
    for month in _months(from_date, to_date):
        for account in running:
            running[account] += moves.get((account, month), 0)
        out.append(AmazonPayMonth(month=month, clearing=running[psp], reserve=running[reserve],
                                  payouts=paid.get(month, 0)))  # fmt: skip
    return out


def _months(from_date: date, to_date: date) -> list[date]:
    months, m = [], from_date.replace(day=1)
    while m <= to_date:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months
