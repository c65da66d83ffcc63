"""Reading and writing the order records: orders, items, documents, the Amazon Pay mirror. SQL only.

Every function takes a connection inside the caller's transaction and the business code (merchant and
code), and every query filters by both: nothing here reads another merchant's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg

from ledger.domain import Business
from ledger.errors import NotFound
from payments.domain import CaptureRoom, Item, OrderMoney

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "ItemRow",
    "OrderRow",
    "capture_rooms",
    "insert_document",
    "load_items",
    "load_order",
    "open_by_rate",
    "order_money",
    "stored_document",
]


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_ref: str
    customer: str
    order_date: date
    amazon_order_reference_id: str
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
        amazon_order_reference_id=row["amazon_order_reference_id"],
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
        "SELECT order_ref, customer, order_date, amazon_order_reference_id, payment_execution, status, status_reason, "
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
        "  (SELECT COALESCE(sum(amount_minor) FILTER (WHERE entry_id IS NOT NULL), 0) - COALESCE(sum(chargebacks_minor), 0) "
        "     FROM amazon_captures c WHERE c.merchant_id = $1 AND c.business = $2 AND c.order_ref = $3)::bigint AS captured, "
        "  (SELECT COALESCE(sum(amount_minor) FILTER (WHERE state <> 'Declined'), 0) FROM amazon_refunds r "
        "    WHERE r.merchant_id = $1 AND r.business = $2 AND r.order_ref = $3)::bigint AS refunded",
        business.merchant_id,
        business.code,
        order.order_ref,
    )
    assert row is not None
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
    rows = await conn.fetch(
        "SELECT kind, details -> 'by_rate' AS by_rate FROM order_documents "
        "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 AND kind IN ('invoice', 'return', 'goodwill')",
        business.merchant_id,
        business.code,
        order_ref,
    )
    totals: dict[Decimal, int] = {}
    for r in rows:
        sign = 1 if r["kind"] == "invoice" else -1
        for rate, gross in (r["by_rate"] or {}).items():
            totals[Decimal(rate)] = totals.get(Decimal(rate), 0) + sign * int(gross)
    return totals


async def capture_rooms(conn: Connection, business: Business, order_ref: str) -> list[CaptureRoom]:
    rows = await conn.fetch(
        "SELECT capture_id, amount_minor, refunds_minor, refund_count, chargebacks_minor FROM amazon_captures "
        "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 AND entry_id IS NOT NULL ORDER BY capture_id "
        "FOR UPDATE",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return [
        CaptureRoom(r["capture_id"], r["amount_minor"], r["refunds_minor"], r["refund_count"], r["chargebacks_minor"])
        for r in rows
    ]


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
