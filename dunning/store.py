"""What dunning reads: customers' receivable lines sorted into events, their dunning state, pauses, disputes.

Lines are classified by the entry that booked them: an invoice (due on its due date), a chargeback (due
the day it was charged back), a credit note, return or goodwill of an order, dunning's own fees,
interest, write-offs and recoveries (entry metadata `dunning`), and otherwise by side: a credit is a
payment, a debit a claim.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from dunning.items import Event, OpenItems, settled_since
from ledger.domain import Business

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["RunContext", "State", "candidates", "current_cycle", "load_context", "load_events", "load_states"]

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


@dataclass
class State:
    """A customer's row in dunning_accounts (defaults when there is none)."""

    level: int = 0
    last_notice_on: date | None = None
    cycle_started_on: date | None = None
    default_on: date | None = None
    interest_minor: int = 0
    flat_fee_booked: bool = False
    collection_status: int | None = None
    paused_until: date | None = None
    pause_reason: str | None = None

    def paused(self, on: date) -> bool:
        return self.paused_until is not None and self.paused_until >= on


def current_cycle(state: State, items: OpenItems) -> State:
    """The customer's dunning state as it applies to the claims open now.

    A cycle ends when the customer has paid everything its notices asked for, whether or not a run saw the
    account balanced: a claim overdue later starts again at level 1, the free payment reminder, with no
    default date, interest or flat fee carried over (peer ledgers reset dunning counters the same way)."""
    if state.level and settled_since(items, state.last_notice_on):
        return replace(
            state,
            level=0,
            last_notice_on=None,
            cycle_started_on=None,
            default_on=None,
            interest_minor=0,
            flat_fee_booked=False,
        )
    return state


async def load_states(conn: Connection, business: Business, customers: list[str]) -> dict[str, State]:
    rows = await conn.fetch(
        "SELECT customer, level, last_notice_on, cycle_started_on, default_on, interest_minor, flat_fee_booked, "
        "collection_status, paused_until, pause_reason FROM dunning_accounts WHERE merchant_id = $1 "
        "AND business = $2 AND customer = ANY($3::text[])",
        business.merchant_id,
        business.code,
        customers,
    )
    return {r["customer"]: State(**{k: v for k, v in r.items() if k != "customer"}) for r in rows}


@dataclass
class RunContext:
    paused_orders: dict[str, set[str]]  # customer -> orders paused on the day
    disputed: set[str]  # customers with an open dispute
    business_customers: set[str]  # customers billed as a company (B2B interest and flat fee)


async def load_context(conn: Connection, business: Business, customers: list[str], on: date) -> RunContext:
    paused = await conn.fetch(
        "SELECT o.customer, p.order_ref FROM dunning_item_pauses p JOIN orders o USING (merchant_id, business, order_ref) "
        "WHERE p.merchant_id = $1 AND p.business = $2 AND o.customer = ANY($3::text[]) AND p.until >= $4",
        business.merchant_id,
        business.code,
        customers,
        on,
    )
    by_customer: dict[str, set[str]] = defaultdict(set)
    for row in paused:
        by_customer[row["customer"]].add(row["order_ref"])
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
        paused_orders=dict(by_customer),
        disputed={r["customer"] for r in disputed},
        business_customers={r["customer"] for r in companies},
    )
