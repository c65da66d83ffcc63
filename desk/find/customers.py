"""Finding customers: by name or id prefix, sorted by id, balance, oldest due date or dunning level, and
filtered by overdue or dunning level (`CustomerFilter`); the names on their bill-to addresses.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
from msgspec import Struct

from desk.find.cursors import decode_cursor, encode_cursor
from dunning.decide import current_cycle
from dunning.items import open_items
from dunning.store import load_events, load_states
from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest
from ledger.money import format_amount, parse_amount
from ledger.reports import side_of
from ledger.schemas import BalanceSide, Page

__all__ = [
    "CUSTOMER_SCAN_MAX",
    "CUSTOMER_SORTS",
    "SEARCH_MAX",
    "CustomerFilter",
    "CustomerOut",
    "customer_names",
    "find_customers",
    "name_of",
    "prefix_pattern",
]


SEARCH_MAX = 64


def prefix_pattern(q: str | None) -> str | None:
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
    pattern = prefix_pattern(q)
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
