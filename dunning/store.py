"""What dunning reads and keeps per customer: receivable lines sorted into events, the dunning state (the
customer's row in dunning_accounts, read and written only here), pauses, disputes.

Lines are classified by the entry that booked them: an invoice (due on its due date), a chargeback (due
the day it was charged back), a credit note, return or goodwill of an order, dunning's own fees,
interest, write-offs and recoveries (entry metadata `dunning`), and otherwise by side: a credit is a
payment, a debit a claim.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import TYPE_CHECKING, Any

from dunning.decide import Decision, RunContext, State
from dunning.items import Event, OpenItems, open_items
from ledger.books import accounts_by_role
from ledger.domain import Business

if TYPE_CHECKING:
    from ledger.context import Kontor
    from ledger.db import Connection

__all__ = [
    "advance_states",
    "ar_account",
    "candidates",
    "customer_items",
    "load_context",
    "load_events",
    "load_states",
    "paused_orders",
    "reset_dunning",
    "set_collection_status",
]

_CREDIT_NOTES = ("return", "goodwill", "cancellation")


def _kind(meta: dict[str, str], amount: int) -> str:
    dunning = meta.get("dunning")
    if dunning in ("charges", "write_off", "recovery"):
        return dunning
    if amount < 0:
        return "credit_note" if any(k in meta for k in _CREDIT_NOTES) else "payment"
    return "claim"


def _event(row: Any) -> Event:
    meta = row["metadata"] or {}
    amount, on = row["amount"], row["effective_date"]
    kind = _kind(meta, amount)
    if kind == "charges":  # fees and interest of a notice, split in the metadata
        return Event(on, row["entry_id"], amount, kind, fee=int(meta["fee"]))
    if kind in ("write_off", "recovery"):
        return Event(on, row["entry_id"], amount, kind)
    if kind == "claim":  # an invoice is due on its due date; a chargeback or other claim at once
        due = date.fromisoformat(row["due"]) if "invoice" in meta and row["due"] else on
        return Event(on, row["entry_id"], amount, kind, row["reference"], due)
    return Event(on, row["entry_id"], amount, kind, row["reference"])


async def ar_account(ctx: Kontor, business: Business) -> int:
    """The account id of the business code's receivables (role AR), whose lines dunning reads."""
    return (await accounts_by_role(ctx, business))("AR").account_id


async def load_events(
    conn: Connection, business: Business, ar_account: int, customers: list[str], through: date
) -> dict[str, list[Event]]:
    rows = await conn.fetch(
        "SELECT l.customer, l.effective_date, l.entry_id, "
        "  CASE l.side WHEN 'D' THEN l.amount_minor ELSE -l.amount_minor END AS amount, "
        "  COALESCE(e.order_reference, e.reference) AS reference, e.metadata, d.details->>'due_date' AS due "
        "FROM lines l JOIN entries e ON e.merchant_id = l.merchant_id AND e.business = l.business "
        "  AND e.entry_id = l.entry_id "
        "LEFT JOIN order_documents d ON d.merchant_id = e.merchant_id AND d.business = e.business "
        "  AND d.kind = 'invoice' AND d.ref = e.metadata->>'invoice' "
        "WHERE l.merchant_id = $1 AND l.business = $2 AND l.customer = ANY($3::text[]) AND l.account_id = $4 "
        "AND l.currency = $5 AND l.effective_date <= $6 "
        "ORDER BY l.customer, l.effective_date, l.entry_id, l.line_no",
        business.merchant_id,
        business.code,
        customers,
        ar_account,
        business.currency,
        through,
    )
    events: dict[str, list[Event]] = defaultdict(list)
    for row in rows:
        events[row["customer"]].append(_event(row))
    return events


async def customer_items(conn: Connection, business: Business, ar: int, customer: str, through: date) -> OpenItems:
    """One customer's open items from its receivable lines booked up to `through`."""
    return open_items((await load_events(conn, business, ar, [customer], through)).get(customer, []))


async def candidates(conn: Connection, business: Business, ar_account: int, through: date) -> list[str]:
    """Customers who owe something, or who are in a dunning cycle or collection (to be reset or skipped)."""
    rows = await conn.fetch(
        "SELECT customer FROM lines WHERE merchant_id = $1 AND business = $2 AND account_id = $3 AND currency = $4 "
        "AND effective_date <= $5 AND customer IS NOT NULL GROUP BY customer "
        "HAVING sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END) > 0 "
        "UNION SELECT customer FROM dunning_accounts WHERE merchant_id = $1 AND business = $2 "
        "AND (level > 0 OR collection_status IS NOT NULL) ORDER BY 1",
        business.merchant_id,
        business.code,
        ar_account,
        business.currency,
        through,
    )
    return [r["customer"] for r in rows]


async def load_states(
    conn: Connection, business: Business, customers: list[str], *, lock: bool = False
) -> dict[str, State]:
    """The customers' dunning states (customers without a row are left out); `lock`: the rows are locked for the
    transaction (FOR UPDATE), so concurrent bookings of the same customers' dunning wait."""
    rows = await conn.fetch(
        "SELECT customer, level, last_notice_on, cycle_started_on, default_on, interest_minor, flat_fee_booked, "
        "collection_status, paused_until, pause_reason FROM dunning_accounts WHERE merchant_id = $1 "
        "AND business = $2 AND customer = ANY($3::text[])" + (" FOR UPDATE" if lock else ""),
        business.merchant_id,
        business.code,
        customers,
    )
    return {r["customer"]: State(**{k: v for k, v in r.items() if k != "customer"}) for r in rows}


async def reset_dunning(conn: Connection, business: Business, customer: str) -> None:
    """The customer's dunning cycle and collection status are over: level 0, nothing booked carried over."""
    await conn.execute(
        "UPDATE dunning_accounts SET level = 0, last_notice_on = NULL, cycle_started_on = NULL, default_on = NULL, "
        "interest_minor = 0, flat_fee_booked = false, collection_status = NULL, collection_since = NULL, "
        "updated_at = now() WHERE merchant_id = $1 AND business = $2 AND customer = $3",
        business.merchant_id,
        business.code,
        customer,
    )


async def advance_states(conn: Connection, business: Business, issued: list[Decision], on: date) -> None:
    """The customers' states after the notices `issued` on `on`: their level, cycle, default date, the interest
    and flat fee booked."""
    await conn.executemany(
        "INSERT INTO dunning_accounts (merchant_id, business, customer, level, last_notice_on, cycle_started_on, "
        "default_on, interest_minor, flat_fee_booked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (merchant_id, business, customer) DO UPDATE SET level = excluded.level, "
        "last_notice_on = excluded.last_notice_on, cycle_started_on = excluded.cycle_started_on, "
        # a level-1 notice starts a new cycle: nothing booked in an earlier cycle carries over
        "default_on = excluded.default_on, interest_minor = excluded.interest_minor + CASE WHEN excluded.level = 1 "
        "THEN 0 ELSE dunning_accounts.interest_minor END, flat_fee_booked = excluded.flat_fee_booked OR "
        "(excluded.level > 1 AND dunning_accounts.flat_fee_booked), updated_at = now()",
        [
            (
                business.merchant_id,
                business.code,
                d.customer,
                d.level,
                on,
                d.cycle_started_on,
                d.default_on,
                d.interest_increment,
                d.flat_fee > 0,
            )
            for d in issued
        ],
    )


async def set_collection_status(
    conn: Connection, business: Business, customers: list[str], status: int, *, since: date | None = None
) -> None:
    """The customers' collection status (`dunning.accounts`); `since`: the day it started (hand-over), else kept."""
    await conn.execute(
        "UPDATE dunning_accounts SET collection_status = $4, collection_since = COALESCE($5, collection_since), "
        "updated_at = now() WHERE merchant_id = $1 AND business = $2 AND customer = ANY($3::text[])",
        business.merchant_id,
        business.code,
        customers,
        status,
        since,
    )


async def paused_orders(conn: Connection, business: Business, customers: list[str], on: date) -> dict[str, set[str]]:
    """Customer -> its orders whose dunning is paused on `on`."""
    rows = await conn.fetch(
        "SELECT o.customer, p.order_ref FROM dunning_item_pauses p JOIN orders o USING (merchant_id, business, order_ref) "
        "WHERE p.merchant_id = $1 AND p.business = $2 AND o.customer = ANY($3::text[]) AND p.until >= $4",
        business.merchant_id,
        business.code,
        customers,
        on,
    )
    by_customer: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        by_customer[row["customer"]].add(row["order_ref"])
    return dict(by_customer)


async def load_context(conn: Connection, business: Business, customers: list[str], on: date) -> RunContext:
    """What a run knows of the customers besides their lines and state (`dunning.decide.RunContext`)."""
    paused = await paused_orders(conn, business, customers, on)
    disputed = await conn.fetch(
        "SELECT DISTINCT customer FROM disputes WHERE merchant_id = $1 AND business = $2 AND state = 'open' "
        "AND customer = ANY($3::text[])",
        business.merchant_id,
        business.code,
        customers,
    )
    companies = await conn.fetch(
        "SELECT DISTINCT customer FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = ANY($3::text[]) "
        "AND coalesce(bill_to->>'company', '') <> ''",
        business.merchant_id,
        business.code,
        customers,
    )
    return RunContext(
        paused_orders=paused,
        disputed={r["customer"] for r in disputed},
        business_customers={r["customer"] for r in companies},
    )
