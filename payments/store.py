"""Reading and writing the order records: orders, items, documents, the Amazon Pay mirror. SQL only.

Every function takes a connection inside the caller's transaction and the business code (merchant and
code), and every query filters by both: nothing here reads another merchant's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg

from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, present
from ledger.money import vat_from_gross
from payments.domain import ChargeRoom, Item, OrderMoney, RateTotals
from payments.lifecycle import ChargeFact, OrderFacts, order_status

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "ItemRow",
    "OrderRow",
    "charge_rooms",
    "check_period_open",
    "insert_document",
    "load_items",
    "load_order",
    "lock_order",
    "open_by_rate",
    "order_facts",
    "order_money",
    "rate_totals",
    "refresh_status",
    "stored_document",
]


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_ref: str
    customer: str
    order_date: date
    checkout_session_id: str | None
    charge_permission_id: str | None
    payment_execution: str
    status: str
    status_reason: str | None
    gross_minor: int
    request_sha256: bytes

    @property
    def one_step(self) -> bool:
        return self.payment_execution == "one_step"


@dataclass(frozen=True, slots=True)
class ItemRow:
    item: Item
    state: str
    invoice_ref: str | None
    returned_qty: int


def _order(row: asyncpg.Record) -> OrderRow:
    return OrderRow(
        order_ref=row["order_ref"],
        customer=row["customer"],
        order_date=row["order_date"],
        checkout_session_id=row["checkout_session_id"],
        charge_permission_id=row["charge_permission_id"],
        payment_execution=row["payment_execution"],
        status=row["status"],
        status_reason=row["status_reason"],
        gross_minor=row["gross_minor"],
        request_sha256=row["request_sha256"],
    )


async def load_order(
    conn: Connection, business: Business, order_ref: str, *, customer: str | None = None, lock: bool = False
) -> OrderRow:
    """The order, or 404 (also when it belongs to another customer of the merchant)."""
    row = await conn.fetchrow(
        "SELECT order_ref, customer, order_date, checkout_session_id, charge_permission_id, payment_execution, status, "
        "status_reason, "
        "gross_minor, request_sha256 FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3"
        + (" FOR UPDATE" if lock else ""),
        business.merchant_id,
        business.code,
        order_ref,
    )
    if row is None or (customer is not None and row["customer"] != customer):
        raise NotFound(
            "order_not_found", f"order {order_ref} not found" + (f" for customer {customer}" if customer else "")
        )
    return _order(row)


async def lock_order(conn: Connection, business: Business, order_ref: str) -> None:
    """Take the order's row lock: everything that changes an order's money or status (documents, charges, refunds)
    takes it first, before the rows of its charges and refunds, so they queue in one order (no deadlock) and the
    status each computes sees what the one before it committed (no lost update)."""
    await conn.execute(
        "SELECT 1 FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 FOR UPDATE",
        business.merchant_id,
        business.code,
        order_ref,
    )


async def load_items(conn: Connection, business: Business, order_ref: str) -> dict[int, ItemRow]:
    rows = await conn.fetch(
        "SELECT item_ref, position_type, description, quantity, gross_unit_minor, vat_rate, state, invoice_ref, "
        "returned_qty FROM order_items WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 ORDER BY item_ref",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return {
        r["item_ref"]: ItemRow(
            Item(
                r["item_ref"], r["position_type"], r["description"], r["quantity"], r["gross_unit_minor"], r["vat_rate"]
            ),
            r["state"],
            r["invoice_ref"],
            r["returned_qty"],
        )
        for r in rows
    }


async def order_money(conn: Connection, business: Business, order: OrderRow, items: dict[int, ItemRow]) -> OrderMoney:
    row = await conn.fetchrow(
        "SELECT "
        "  (SELECT COALESCE(sum(gross_minor) FILTER (WHERE kind = 'invoice'), 0) FROM order_documents d "
        "    WHERE d.merchant_id = $1 AND d.business = $2 AND d.order_ref = $3)::bigint AS invoiced, "
        "  (SELECT COALESCE(sum(gross_minor) FILTER (WHERE kind IN ('return', 'goodwill')), 0) FROM order_documents d "
        "    WHERE d.merchant_id = $1 AND d.business = $2 AND d.order_ref = $3)::bigint AS credited, "
        "  (SELECT COALESCE(sum(gross_minor) FILTER (WHERE kind = 'payment'), 0) FROM order_documents d "
        "    WHERE d.merchant_id = $1 AND d.business = $2 AND d.order_ref = $3)::bigint AS payments, "
        "  (SELECT COALESCE(sum(captured_minor) FILTER (WHERE entry_id IS NOT NULL), 0) - COALESCE(sum(chargebacks_minor), 0) "
        "     FROM amazon_charges c WHERE c.merchant_id = $1 AND c.business = $2 AND c.order_ref = $3)::bigint AS captured, "
        "  (SELECT COALESCE(sum(amount_minor) FILTER (WHERE state <> 'Declined'), 0) FROM amazon_refunds r "
        "    WHERE r.merchant_id = $1 AND r.business = $2 AND r.order_ref = $3)::bigint AS refunded",
        business.merchant_id,
        business.code,
        order.order_ref,
    )
    row = present(row, "an aggregate SELECT gives one row")
    prepaid_open = sum(r.item.gross() for r in items.values() if r.state == "open") if order.one_step else 0
    return OrderMoney(
        invoiced=row["invoiced"],
        credited=row["credited"],
        paid=row["captured"] + row["payments"],
        refunded=row["refunded"],
        prepaid_open=prepaid_open,
    )


async def open_by_rate(conn: Connection, business: Business, order_ref: str) -> dict[Decimal, int]:
    """Invoiced minus credited gross per VAT rate (documents record their split in details.by_rate)."""
    totals = await rate_totals(conn, business, order_ref)
    return {rate: t.invoiced_gross - t.credited_gross for rate, t in totals.items()}


async def rate_totals(conn: Connection, business: Business, order_ref: str) -> dict[Decimal, RateTotals]:
    """Gross and VAT invoiced and credited per VAT rate. A document's VAT is what it booked: details.tax_by_rate
    where recorded, else extracted from its gross (half-up), which is what documents booked before it was recorded."""
    rows = await conn.fetch(
        "SELECT kind, details -> 'by_rate' AS by_rate, details -> 'tax_by_rate' AS tax_by_rate FROM order_documents "
        "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 AND kind IN ('invoice', 'return', 'goodwill')",
        business.merchant_id,
        business.code,
        order_ref,
    )
    totals: dict[Decimal, RateTotals] = {}
    for r in rows:
        taxes = r["tax_by_rate"] or {}
        for text, gross in (r["by_rate"] or {}).items():
            rate = Decimal(text)
            tax = int(taxes[text]) if text in taxes else vat_from_gross(int(gross), rate)
            t = totals.get(rate, RateTotals())
            if r["kind"] == "invoice":
                t = replace(t, invoiced_gross=t.invoiced_gross + int(gross), invoiced_tax=t.invoiced_tax + tax)
            else:
                t = replace(t, credited_gross=t.credited_gross + int(gross), credited_tax=t.credited_tax + tax)
            totals[rate] = t
    return totals


async def charge_rooms(conn: Connection, business: Business, order_ref: str) -> list[ChargeRoom]:
    """The order's captured charges with what was taken back from them, locked (refunds are planned on them)."""
    rows = await conn.fetch(
        "SELECT charge_id, captured_minor, refunds_minor, refund_count, chargebacks_minor FROM amazon_charges "
        "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 AND entry_id IS NOT NULL ORDER BY charge_id "
        "FOR UPDATE",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return [
        ChargeRoom(r["charge_id"], r["captured_minor"], r["refunds_minor"], r["refund_count"], r["chargebacks_minor"])
        for r in rows
    ]


async def order_facts(conn: Connection, business: Business, order_ref: str) -> OrderFacts:
    """What the order's status is computed from (payments.lifecycle.order_status)."""
    key = (business.merchant_id, business.code, order_ref)
    row = await conn.fetchrow(
        "SELECT o.status, o.status_reason, o.charge_permission_state, o.charge_permission_reason, "
        "  count(*) FILTER (WHERE i.state = 'open') AS items_open, "
        "  count(*) FILTER (WHERE i.state = 'invoiced') AS items_invoiced, "
        "  (SELECT COALESCE(sum(amount_minor), 0) FROM amazon_refunds r WHERE r.merchant_id = o.merchant_id "
        "    AND r.business = o.business AND r.order_ref = o.order_ref AND r.state = 'Refunded')::bigint AS refunded "
        "FROM orders o LEFT JOIN order_items i USING (merchant_id, business, order_ref) "
        "WHERE o.merchant_id = $1 AND o.business = $2 AND o.order_ref = $3 GROUP BY o.merchant_id, o.business, "
        "o.order_ref",
        *key,
    )
    charges = await conn.fetch(
        "SELECT state, reason, captured_minor FROM amazon_charges WHERE merchant_id = $1 AND business = $2 "
        "AND order_ref = $3 ORDER BY created_at, charge_id",
        *key,
    )
    if row is None:
        raise NotFound("order_not_found", f"order {order_ref} not found")
    declined = row["status_reason"] if row["status"] == "declined" and not charges else None
    return OrderFacts(
        items_open=row["items_open"],
        items_invoiced=row["items_invoiced"],
        charges=[ChargeFact(c["state"], c["reason"], c["captured_minor"]) for c in charges],
        refunded=row["refunded"],
        declined_at_checkout=declined,
        charge_permission_state=row["charge_permission_state"],
        charge_permission_reason=row["charge_permission_reason"],
    )


async def stored_document(conn: Connection, business: Business, kind: str, ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT order_ref, request_sha256, response FROM order_documents "
        "WHERE merchant_id = $1 AND business = $2 AND kind = $3 AND ref = $4",
        business.merchant_id,
        business.code,
        kind,
        ref,
    )


async def insert_document(
    conn: Connection,
    business: Business,
    *,
    order_ref: str,
    kind: str,
    ref: str,
    document_date: date,
    gross: int,
    entry_id: int | None,
    details: dict[str, Any],
    response: dict[str, Any],
    request_sha256: bytes,
) -> None:
    await conn.execute(
        "INSERT INTO order_documents (merchant_id, business, order_ref, kind, ref, document_date, gross_minor, "
        "entry_id, details, response, request_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        business.merchant_id,
        business.code,
        order_ref,
        kind,
        ref,
        document_date,
        gross,
        entry_id,
        details,
        response,
        request_sha256,
    )


async def refresh_status(conn: Connection, business: Business, order_ref: str) -> tuple[str, str | None]:
    """Compute the order's status from its facts (payments.lifecycle) and store it when it changed."""
    status, reason = order_status(await order_facts(conn, business, order_ref))
    await conn.execute(
        "UPDATE orders SET status = $4, status_reason = $5 WHERE merchant_id = $1 AND business = $2 "
        "AND order_ref = $3 AND (status, COALESCE(status_reason, '')) <> ($4, COALESCE($5, ''))",
        business.merchant_id,
        business.code,
        order_ref,
        status,
        reason,
    )
    return status, reason


async def check_period_open(conn: Connection | asyncpg.Pool, business: Business, on: date, field: str) -> None:
    """409 `period_closed` naming `field` when `on` lies in a closed month: checked before Amazon is asked for
    anything the booking of that day depends on (a capture that could then not be booked)."""
    closed = await conn.fetchval(
        "SELECT closed_through FROM businesses WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if closed is not None and on <= closed:
        raise Conflict(
            "period_closed",
            f"{field} {on.isoformat()} lies in a closed period: business {business.code} is closed through "
            f"{closed.isoformat()}; date it in an open period",
            [FieldError(field, f"after {closed.isoformat()}")],
        )
