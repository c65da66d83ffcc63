"""Finding orders with their documents (invoices, credit notes), charges and refunds, keyset-paged."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from msgspec import Struct

from desk.find.cursors import decode_cursor, encode_cursor
from desk.find.customers import (
    name_of,
)
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest
from ledger.money import format_amount
from ledger.schemas import Page

__all__ = ["ORDER_STATUSES", "ChargeSummary", "DocumentSummary", "OrderSummaryOut", "RefundSummary", "find_orders"]


ORDER_STATUSES = (
    "pending", "authorization_pending", "authorized", "authorization_expired", "captured", "invoiced", "refunded",
    "declined", "cancelled", "closed",
)  # fmt: skip


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
