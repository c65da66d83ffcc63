"""Finding things in a business code's books: customers, orders with their documents, bank statements with
their lines, receivables ageing, the VAT summary and the monthly figures the charts draw.

Everything reads on the reports pool and is bounded: list queries are keyset-paged (a cursor names the last
row shown) with a page limit, searches take a prefix of at most 64 characters, and the yearly summaries read
one year of lines of a handful of accounts through the register index. Dunning's own readers (`load_events`,
`open_items`, `candidates`) compute open items, so "oldest due" and the ageing agree with the customer's open
items and the dunning runs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from msgspec import Struct

from dunning.decide import current_cycle
from dunning.items import open_items
from dunning.store import load_events, load_states
from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.domain import DATE_MAX, DATE_MIN, Business
from ledger.errors import BadRequest
from ledger.money import currency_decimals, format_amount, parse_amount
from ledger.reports import side_of
from ledger.schemas import BalanceSide, Page
from ledger.tenancy import account_index
from payments.bank import StatementRef
from payments.statement_checks import BalanceCheck

__all__ = [
    "AGEING_BUCKETS",
    "CUSTOMER_SORTS",
    "AgeingOut",
    "BankStatementOut",
    "CustomerFilter",
    "CustomerOut",
    "OrderSummaryOut",
    "ageing",
    "amazon_pay_months",
    "bank_statement",
    "bank_statements",
    "customer_names",
    "find_customers",
    "find_orders",
    "monthly_sales",
    "vat_summary",
]

SEARCH_MAX = 64
ORDER_STATUSES = (
    "pending", "authorization_pending", "authorized", "authorization_expired", "captured", "invoiced", "refunded",
    "declined", "cancelled", "closed",
)  # fmt: skip
AGEING_BUCKETS = ("not_due", "days_0_30", "days_31_60", "days_61_90", "days_over_90")
CREDIT_NOTE_KINDS = ("cancellation", "return", "goodwill")


# --- cursors -------------------------------------------------------------------------------------------------
def encode_cursor(*values: Any) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, date) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The values of a cursor this module issued, as `types` (str, int, date); 400 `cursor_invalid` else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError(cursor)
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is date:
                day = date.fromisoformat(value)
                if not DATE_MIN <= day <= DATE_MAX:
                    raise ValueError(cursor)
                out.append(day)
            elif not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(cursor)
            elif isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError(cursor)  # beyond the bigint it is compared with
            elif isinstance(value, str) and (len(value) > 200 or "\x00" in value):
                raise ValueError(cursor)  # no text column holds it
            else:
                out.append(value)
        return out
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor_invalid", "the cursor is not one this service issued") from None


def _prefix_pattern(q: str | None) -> str | None:
    """A case-insensitive LIKE prefix pattern for `q` (its wildcards escaped); None for no search."""
    if q is None or not q.strip():
        return None
    text = q.strip().lower()
    if len(text) > SEARCH_MAX:
        raise BadRequest("query_parameter_invalid", f"q is at most {SEARCH_MAX} characters")
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- customers -----------------------------------------------------------------------------------------------
class CustomerOut(Struct, kw_only=True):
    customer: str
    name: str | None  # from the bill-to address of the customer's latest order
    currency: str
    balance: str  # absolute; `side` says who owes whom (DEBIT: the customer owes)
    side: BalanceSide
    oldest_due: date | None  # the oldest due date of what is open
    dunning_level: int


def name_of(bill_to: dict[str, Any] | None) -> str | None:
    """ "Company (First Last)", "First Last" or "Company" from a bill-to address; None when it names nobody."""
    if not bill_to:
        return None
    person = " ".join(p for p in (bill_to.get("first_name"), bill_to.get("last_name")) if p) or None
    company = bill_to.get("company") or None
    if company and person:
        return f"{company} ({person})"
    return company or person


async def customer_names(conn: Any, business: Business, customers: list[str]) -> dict[str, str]:
    """The name on each customer's latest order (customers without orders have none)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (customer) customer, bill_to FROM orders WHERE merchant_id = $1 AND business = $2 "
        "AND customer = ANY($3::text[]) ORDER BY customer, order_date DESC, created_at DESC",
        business.merchant_id,
        business.code,
        customers,
    )
    names = {r["customer"]: name_of(r["bill_to"]) for r in rows}
    return {k: v for k, v in names.items() if v}


CUSTOMER_SORTS = ("customer", "balance", "oldest_due", "dunning_level")
CUSTOMER_SCAN_MAX = 20_000  # customers a sort or filter by oldest due or dunning level reads at most


class CustomerFilter(Struct, kw_only=True):
    """Which customers `find_customers` lists, in which order.

    sort: customer (number order, the default), balance (who owes most first, customers in credit last),
    oldest_due (the longest overdue first; customers with nothing open last), dunning_level (highest first);
    ties in number order. side: only customers whose balance is DEBIT (owe), CREDIT (are owed) or BALANCED.
    overdue: only customers with something open due before the as-of day. min_level: only customers at this
    dunning level or higher."""

    q: str | None = None
    sort: str = "customer"
    side: BalanceSide | None = None
    overdue: bool = False
    min_level: int = 0

    @property
    def scans(self) -> bool:
        """Whether the list is computed over every matching customer (not read page by page in number order)."""
        return self.sort != "customer" or self.overdue or self.min_level > 0


async def find_customers(
    ctx: Kontor,
    business: Business,
    *,
    q: str | None,
    cursor: str | None,
    limit: int,
    as_of: date,
    where: CustomerFilter | None = None,
) -> Page[CustomerOut]:
    """Customers with a booked account as of `as_of` (lines dated up to that day), in number order unless
    `where.sort` says otherwise; `q` matches a prefix of the customer number or of the bill-to's first name, last
    name, "first last" or company, case-insensitively. A customer who owes nothing has no dunning level (a level
    is the state of a claim that is open). Sorting or filtering by oldest due or dunning level reads every
    matching customer (400 `query_parameter_invalid` beyond CUSTOMER_SCAN_MAX: narrow it with `q`); 400
    `cursor_invalid` for a cursor of another order."""
    where = where or CustomerFilter()
    if where.sort not in CUSTOMER_SORTS:
        raise BadRequest("query_parameter_invalid", f"sort is one of {', '.join(CUSTOMER_SORTS)}")
    pattern = _prefix_pattern(q)
    scan = where.scans
    after = "" if scan or not cursor else decode_cursor(cursor, str)[0]
    ar = (await accounts_by_role(ctx, business))("AR").account_id
    side = {"DEBIT": "> 0", "CREDIT": "< 0", "BALANCED": "= 0"}.get(where.side or "")
    having = f"HAVING COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) - COALESCE(sum(amount_minor) " \
             f"FILTER (WHERE side = 'C'), 0) {side} " if side else ""  # fmt: skip
    async with ctx.reports_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT customer, COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) "
            "- COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0) AS net FROM lines "
            "WHERE merchant_id = $1 AND business = $2 AND customer IS NOT NULL AND customer > $3 AND currency = $4 "
            "AND effective_date <= $7 "
            "AND ($5::text IS NULL OR lower(customer) LIKE $5 OR customer IN (SELECT o.customer FROM orders o "
            "  WHERE o.merchant_id = $1 AND o.business = $2 AND ("
            "    lower(o.bill_to->>'last_name') LIKE $5 OR lower(o.bill_to->>'first_name') LIKE $5 "
            "    OR lower(o.bill_to->>'company') LIKE $5 "
            "    OR lower(concat_ws(' ', o.bill_to->>'first_name', o.bill_to->>'last_name')) LIKE $5))) "
            f"GROUP BY customer {having}ORDER BY customer LIMIT $6",
            business.merchant_id,
            business.code,
            after,
            business.currency,
            pattern,
            CUSTOMER_SCAN_MAX + 1 if scan else limit + 1,
            as_of,
        )
        if scan and len(rows) > CUSTOMER_SCAN_MAX:
            raise BadRequest(
                "query_parameter_invalid",
                f"more than {CUSTOMER_SCAN_MAX} customers match: narrow the list with q to sort or filter it so",
            )
        more = not scan and len(rows) > limit
        rows = rows if scan else rows[:limit]
        items: list[CustomerOut] = []
        for start in range(0, len(rows), 500):
            part = rows[start : start + 500]
            items += await _customers_out(conn, business, ar, part, as_of)
    if not scan:
        return Page(items=items, next_cursor=encode_cursor(items[-1].customer) if more and items else None)
    items = [
        c
        for c in items
        if c.dunning_level >= where.min_level
        and (not where.overdue or (c.oldest_due is not None and c.oldest_due < as_of))
    ]
    key = _customer_order(where.sort, business.currency)
    items.sort(key=key)
    if cursor:
        kind = str if where.sort == "oldest_due" else int
        sort, value, customer = decode_cursor(cursor, str, kind, str)
        if sort != where.sort:
            raise BadRequest("cursor_invalid", "the cursor belongs to another sort order")
        items = [c for c in items if key(c) > (value, customer)]
    page = items[:limit]
    last = key(page[-1]) if page else None
    return Page(
        items=page,
        next_cursor=encode_cursor(where.sort, *last) if last is not None and len(items) > limit else None,
    )


def _customer_order(sort: str, currency: str) -> Any:
    """The sort key of a customer row: (value, customer number), the value a JSON-safe int or ISO date."""

    def key(c: CustomerOut) -> tuple[Any, str]:
        if sort == "balance":
            minor = parse_amount(c.balance, currency, allow_zero=True)
            return (-minor if c.side == "DEBIT" else minor, c.customer)
        if sort == "oldest_due":
            return ((c.oldest_due or date.max).isoformat(), c.customer)
        if sort == "dunning_level":
            return (-c.dunning_level, c.customer)
        return ("", c.customer)

    return key


async def _customers_out(
    conn: Any, business: Business, ar: int, rows: list[asyncpg.Record], as_of: date
) -> list[CustomerOut]:
    customers = [r["customer"] for r in rows]
    names = await customer_names(conn, business, customers)
    events = await load_events(conn, business, ar, customers, as_of)
    states = await load_states(conn, business, customers)
    cur = business.currency
    items: list[CustomerOut] = []
    for r in rows:
        c = r["customer"]
        open_ = open_items(events.get(c, []))
        due = [b.due for b in open_.principal.values() if b.open > 0]
        owes = open_.total > 0
        items.append(
            CustomerOut(
                customer=c,
                name=names.get(c),
                currency=cur,
                balance=format_amount(abs(int(r["net"])), cur),
                side=side_of(int(r["net"])),
                oldest_due=min(due) if due else None,
                dunning_level=current_cycle(states[c], open_).level if c in states and owes else 0,
            )
        )
    return items


# --- orders --------------------------------------------------------------------------------------------------
class DocumentSummary(Struct, kw_only=True):
    kind: str  # invoice; cancellation, return, goodwill (credit notes); payment
    reference: str
    document_date: date
    gross_amount: str
    entry_id: int | None


class ChargeSummary(Struct, kw_only=True):
    charge_id: str
    amount: str
    captured: str
    state: str
    invoice_reference: str | None


class RefundSummary(Struct, kw_only=True):
    reference: str
    refund_id: str | None
    amount: str
    state: str


class OrderSummaryOut(Struct, kw_only=True):
    order_reference: str
    customer: str
    name: str | None
    order_date: date
    status: str
    currency: str
    gross_amount: str
    documents: list[DocumentSummary]
    charges: list[ChargeSummary]
    refunds: list[RefundSummary]


async def find_orders(
    ctx: Kontor,
    business: Business,
    *,
    customer: str | None,
    from_date: date | None,
    to_date: date | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[OrderSummaryOut]:
    """Orders, newest order date first, with their documents, Amazon Pay charges and refunds."""
    if status is not None and status not in ORDER_STATUSES:
        raise BadRequest("query_parameter_invalid", f"status is one of {', '.join(ORDER_STATUSES)}")
    last_date, last_ref = decode_cursor(cursor, date, str) if cursor else (None, None)
    key = (business.merchant_id, business.code)
    async with ctx.reports_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT order_ref, customer, order_date, status, gross_minor, bill_to FROM orders "
            "WHERE merchant_id = $1 AND business = $2 AND ($3::text IS NULL OR customer = $3) "
            "AND ($4::date IS NULL OR order_date >= $4) AND ($5::date IS NULL OR order_date <= $5) "
            "AND ($6::text IS NULL OR status = $6) AND ($7::date IS NULL OR (order_date, order_ref) < ($7, $8)) "
            "ORDER BY order_date DESC, order_ref DESC LIMIT $9",
            *key,
            customer,
            from_date,
            to_date,
            status,
            last_date,
            last_ref,
            limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        refs = [r["order_ref"] for r in rows]
        documents = await conn.fetch(
            "SELECT order_ref, kind, ref, document_date, gross_minor, entry_id FROM order_documents "
            "WHERE merchant_id = $1 AND business = $2 AND order_ref = ANY($3::text[]) "
            "ORDER BY document_date, created_at, ref",
            *key,
            refs,
        )
        charges = await conn.fetch(
            "SELECT order_ref, charge_id, amount_minor, captured_minor, state, invoice_ref FROM amazon_charges "
            "WHERE merchant_id = $1 AND business = $2 AND order_ref = ANY($3::text[]) ORDER BY created_at, charge_id",
            *key,
            refs,
        )
        refunds = await conn.fetch(
            "SELECT order_ref, reference_id, refund_id, amount_minor, state FROM amazon_refunds "
            "WHERE merchant_id = $1 AND business = $2 AND order_ref = ANY($3::text[]) "
            "ORDER BY created_at, reference_id",
            *key,
            refs,
        )
    cur = business.currency
    docs: dict[str, list[DocumentSummary]] = defaultdict(list)
    for d in documents:
        docs[d["order_ref"]].append(
            DocumentSummary(
                kind=d["kind"],
                reference=d["ref"],
                document_date=d["document_date"],
                gross_amount=format_amount(d["gross_minor"], cur),
                entry_id=d["entry_id"],
            )
        )
    paid: dict[str, list[ChargeSummary]] = defaultdict(list)
    for c in charges:
        paid[c["order_ref"]].append(
            ChargeSummary(
                charge_id=c["charge_id"],
                amount=format_amount(c["amount_minor"], cur),
                captured=format_amount(c["captured_minor"] or 0, cur),
                state=c["state"],
                invoice_reference=c["invoice_ref"],
            )
        )
    back: dict[str, list[RefundSummary]] = defaultdict(list)
    for f in refunds:
        back[f["order_ref"]].append(
            RefundSummary(
                reference=f["reference_id"],
                refund_id=f["refund_id"],
                amount=format_amount(f["amount_minor"], cur),
                state=f["state"],
            )
        )
    items = [
        OrderSummaryOut(
            order_reference=r["order_ref"],
            customer=r["customer"],
            name=name_of(r["bill_to"]),
            order_date=r["order_date"],
            status=r["status"],
            currency=cur,
            gross_amount=format_amount(r["gross_minor"], cur),
            documents=docs[r["order_ref"]],
            charges=paid[r["order_ref"]],
            refunds=back[r["order_ref"]],
        )
        for r in rows
    ]
    last = items[-1] if items else None
    next_cursor = encode_cursor(last.order_date, last.order_reference) if more and last else None
    return Page(items=items, next_cursor=next_cursor)


# --- bank statements -----------------------------------------------------------------------------------------
class StatementLineOut(Struct, kw_only=True):
    entry: int  # the entry's position in the statement (1-based)
    detail: int | None  # the payment's position in a batch entry that was split into its payments
    booking_date: date
    amount: str  # signed: + credit to the account, - debit
    outcome: str  # payout_cleared, payment, exception, pending
    match: str | None  # what it matched: a payout, an invoice or customer reference
    entry_id: int | None  # the journal entry that booked it
    counterparty_name: str | None = None  # the debtor of money in, the creditor of money out
    counterparty_iban: str | None = None
    remittance: str | None = None
    reference: str | None = None  # the bank's reference of the entry
    note: str | None = None  # a payment: what is still due, or what became the customer's credit
    exception_id: int | None = None  # the exception an unmatched line opened


class StatementException(Struct, kw_only=True):
    exception_id: int
    line: int
    kind: str
    amount: str
    state: str


class BankStatementOut(Struct, kw_only=True):
    account: str  # IBAN or other account id ("" for statements imported before accounts were kept)
    statement_id: str
    statement_date: date
    imported_at: datetime
    currency: str
    line_count: int
    credits: str
    debits: str
    lines: list[StatementLineOut]
    exceptions: list[StatementException]
    # as the bank sent them (payments.bank; None for statements imported before they were kept)
    sequence: int | None = None
    opening_balance: str | None = None  # signed: < 0 overdrawn
    closing_balance: str | None = None
    checks: list[BalanceCheck] = []  # opening = previous closing, opening + lines = closing, closing = ledger


def _statement_lines(summary: dict[str, Any], account: str, statement_id: str) -> list[StatementLineOut]:
    out = []
    for line in summary.get("lines", []):
        if line.get("statement_id") != statement_id or line.get("account", "") not in (account, ""):
            continue
        out.append(
            StatementLineOut(
                entry=int(line["entry"]),
                detail=line.get("detail"),
                booking_date=date.fromisoformat(line["booking_date"]),
                amount=str(line["amount"]),
                outcome=str(line["outcome"]),
                match=line.get("match"),
                entry_id=line.get("entry_id"),
                counterparty_name=line.get("counterparty_name"),
                counterparty_iban=line.get("counterparty_iban"),
                remittance=line.get("remittance"),
                reference=line.get("reference"),
                note=line.get("note"),
                exception_id=line.get("exception_id"),
            )
        )
    return out


def _statement_ref(summary: dict[str, Any], account: str, statement_id: str, on: date) -> StatementRef | None:
    """What the import recorded of the statement: its sequence number, balances and balance checks."""
    for ref in summary.get("statements", []):
        if (ref.get("account"), ref.get("statement_id"), ref.get("statement_date")) == (
            account, statement_id, on.isoformat()
        ):  # fmt: skip
            return msgspec.convert(ref, StatementRef)
    return None


async def _statements_out(ctx: Kontor, business: Business, rows: list[asyncpg.Record]) -> list[BankStatementOut]:
    refs = [f"{r['account']}/{r['statement_id']}/{r['statement_on'].isoformat()}" for r in rows]
    found = await ctx.reports_pool.fetch(
        "SELECT exception_id, source_ref, line_no, kind, amount_minor, state FROM reconciliation_exceptions "
        "WHERE merchant_id = $1 AND business = $2 AND source = 'bank' AND source_ref = ANY($3::text[]) "
        "ORDER BY exception_id",
        business.merchant_id,
        business.code,
        refs,
    )
    by_ref: dict[str, list[StatementException]] = defaultdict(list)
    cur = business.currency
    for e in found:
        by_ref[e["source_ref"]].append(
            StatementException(
                exception_id=e["exception_id"],
                line=e["line_no"],
                kind=e["kind"],
                amount=format_amount(e["amount_minor"], cur),
                state=e["state"],
            )
        )
    out = []
    for r, source_ref in zip(rows, refs, strict=True):
        lines = _statement_lines(r["summary"], r["account"], r["statement_id"])
        ref = _statement_ref(r["summary"], r["account"], r["statement_id"], r["statement_on"])
        amounts = [Decimal(line.amount) for line in lines]
        out.append(
            BankStatementOut(
                account=r["account"],
                statement_id=r["statement_id"],
                statement_date=r["statement_on"],
                imported_at=r["imported_at"],
                currency=cur,
                line_count=len(lines),
                credits=format_amount(int(sum(a for a in amounts if a > 0) * 10 ** currency_decimals(cur)), cur),
                debits=format_amount(int(-sum(a for a in amounts if a < 0) * 10 ** currency_decimals(cur)), cur),
                lines=lines,
                exceptions=by_ref[source_ref],
                sequence=ref.sequence if ref else None,
                opening_balance=ref.opening_balance if ref else None,
                closing_balance=ref.closing_balance if ref else None,
                checks=ref.checks if ref else [],
            )
        )
    return out


async def bank_statements(
    ctx: Kontor,
    business: Business,
    *,
    account: str | None,
    from_date: date | None,
    to_date: date | None,
    cursor: str | None,
    limit: int,
) -> Page[BankStatementOut]:
    """Imported bank statements, latest statement date first, each with its lines and what they matched."""
    last = decode_cursor(cursor, date, str, str) if cursor else [None, None, None]
    rows = await ctx.reports_pool.fetch(
        "SELECT account, statement_id, statement_on, imported_at, summary FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND ($3::text IS NULL OR account = $3) "
        "AND ($4::date IS NULL OR statement_on >= $4) AND ($5::date IS NULL OR statement_on <= $5) "
        "AND ($6::date IS NULL OR (statement_on, account, statement_id) < ($6, $7, $8)) "
        "ORDER BY statement_on DESC, account DESC, statement_id DESC LIMIT $9",
        business.merchant_id,
        business.code,
        account,
        from_date,
        to_date,
        *last,
        limit + 1,
    )
    more = len(rows) > limit
    items = await _statements_out(ctx, business, list(rows[:limit]))
    tail = items[-1] if items else None
    next_cursor = encode_cursor(tail.statement_date, tail.account, tail.statement_id) if more and tail else None
    return Page(items=items, next_cursor=next_cursor)


async def bank_statement(
    ctx: Kontor, business: Business, statement_on: date, statement_id: str, account: str | None
) -> list[BankStatementOut]:
    """The statements of that date and id (one per account, or the one of `account`)."""
    rows = await ctx.reports_pool.fetch(
        "SELECT account, statement_id, statement_on, imported_at, summary FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND statement_on = $3 AND statement_id = $4 "
        "AND ($5::text IS NULL OR account = $5) ORDER BY account LIMIT 20",
        business.merchant_id,
        business.code,
        statement_on,
        statement_id,
        account,
    )
    return await _statements_out(ctx, business, list(rows))


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
