"""The bookings money movements cause, each booked exactly once whichever path reports it first.

A capture can be reported by Kontor's own call, by an IPN and by a settlement row; a refund by an IPN,
by polling and by a settlement row. Each path calls the same function, which locks the mirror row,
books only if no entry is linked yet, links the entry, and writes the notifications: all in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from ledger import journal
from ledger.context import Kontor
from ledger.domain import Business, EntryDraft, LineDraft, check_balanced
from ledger.money import format_amount
from ledger.tenancy import account_index
from payments.amazon.client import CaptureDetails, RefundDetails
from payments.domain import Roles, transfer_lines
from payments.notify import emit, emit_balance
from payments.store import OrderRow

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["book", "record_capture", "record_refund", "roles_of"]


async def roles_of(ctx: Kontor, business: Business) -> Roles:
    return Roles((await account_index(ctx, business)).by_role)


async def book(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    lines: Sequence[LineDraft],
    *,
    on: date,
    description: str,
    reference: str,
    metadata: dict[str, str],
) -> int:
    """Post one entry inside the caller's transaction; returns its id."""
    draft = EntryDraft(
        effective_date=on, description=description[:500], lines=tuple(lines), reference=reference, metadata=metadata
    )
    check_balanced(draft.lines)
    posted = await journal.post_entries(ctx, business, [draft], idem_key=None, request_sha256=bytes(32), conn=conn)
    return posted.entries[0].id


async def record_capture(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    order: OrderRow,
    details: CaptureDetails,
    *,
    authorization_id: str | None,
    on: date,
) -> None:
    """Mirror a capture; when it is Completed and not yet booked: Dr PSP / Cr AR (customer)."""
    await conn.execute(
        "INSERT INTO amazon_captures (merchant_id, business, order_ref, capture_id, authorization_id, reference_id, "
        "amount_minor, state, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (merchant_id, capture_id) DO NOTHING",
        business.merchant_id,
        business.code,
        order.order_ref,
        details.capture_id,
        authorization_id,
        details.reference_id,
        details.amount_minor,
        details.state,
        details.reason,
    )
    row = await conn.fetchrow(
        "SELECT entry_id FROM amazon_captures WHERE merchant_id = $1 AND capture_id = $2 FOR UPDATE",
        business.merchant_id,
        details.capture_id,
    )
    assert row is not None
    state = "Completed" if details.state == "Closed" else details.state  # Closed: refunded out, once Completed
    await conn.execute(
        "UPDATE amazon_captures SET state = $3, reason = $4, authorization_id = COALESCE(authorization_id, $5) "
        "WHERE merchant_id = $1 AND capture_id = $2",
        business.merchant_id,
        details.capture_id,
        details.state,
        details.reason,
        authorization_id,
    )
    if state != "Completed" or row["entry_id"] is not None:
        return
    roles = await roles_of(ctx, business)
    entry_id = await book(
        ctx,
        conn,
        business,
        transfer_lines(roles("PSP"), roles("AR"), details.amount_minor, business.currency, customer=order.customer),
        on=on,
        description=f"Amazon Pay capture {details.capture_id}, order {order.order_ref}",
        reference=order.order_ref,
        metadata={"amazon_capture_id": details.capture_id},
    )
    await conn.execute(
        "UPDATE amazon_captures SET entry_id = $3 WHERE merchant_id = $1 AND capture_id = $2",
        business.merchant_id,
        details.capture_id,
        entry_id,
    )
    await emit(
        conn,
        business,
        "payment.received",
        {
            "customer": order.customer,
            "order_reference": order.order_ref,
            "amount": format_amount(details.amount_minor, business.currency),
            "currency": business.currency,
            "method": "AMAZON_PAY",
            "amazon_capture_id": details.capture_id,
            "entry_id": entry_id,
        },
    )
    await emit_balance(ctx, conn, business, order.customer, "payment.received", on=on)


async def record_refund(
    ctx: Kontor, conn: Connection, business: Business, details: RefundDetails, *, on: date
) -> str | None:
    """Apply a refund's state from Amazon: Completed books Dr AR / Cr PSP once; Declined frees the room.

    Returns the order reference, or None for a refund Kontor never requested (left to reconciliation).
    """
    row = await conn.fetchrow(
        "SELECT r.reference_id, r.order_ref, r.capture_id, r.amount_minor, r.state, r.entry_id, r.source_kind, "
        "r.source_ref, o.customer FROM amazon_refunds r JOIN orders o USING (merchant_id, business, order_ref) "
        "WHERE r.merchant_id = $1 AND r.business = $2 AND (r.refund_id = $3 OR r.reference_id = $4) "
        "FOR UPDATE OF r",
        business.merchant_id,
        business.code,
        details.refund_id,
        details.reference_id,
    )
    if row is None:
        return None
    if row["state"] in ("Completed", "Declined"):
        return str(row["order_ref"])  # final: a repeated report changes nothing
    await conn.execute(
        "UPDATE amazon_refunds SET refund_id = $3, state = $4, reason = $5 WHERE merchant_id = $1 AND reference_id = $2",
        business.merchant_id,
        row["reference_id"],
        details.refund_id,
        details.state,
        details.reason,
    )
    payload = {
        "customer": row["customer"],
        "order_reference": row["order_ref"],
        "refund_reference": row["reference_id"],
        "amazon_refund_id": details.refund_id,
        "amount": format_amount(row["amount_minor"], business.currency),
        "currency": business.currency,
        "source": row["source_kind"],
        "source_reference": row["source_ref"],
    }
    if details.state == "Declined":
        await conn.execute(
            "UPDATE amazon_captures SET refunds_minor = refunds_minor - $3 WHERE merchant_id = $1 AND capture_id = $2",
            business.merchant_id,
            row["capture_id"],
            row["amount_minor"],
        )
        await emit(conn, business, "refund.declined", {**payload, "reason": details.reason})
    elif details.state == "Completed":
        roles = await roles_of(ctx, business)
        entry_id = await book(
            ctx,
            conn,
            business,
            transfer_lines(roles("AR"), roles("PSP"), row["amount_minor"], business.currency, customer=row["customer"]),
            on=on,
            description=f"Amazon Pay refund {details.refund_id}, order {row['order_ref']}",
            reference=str(row["order_ref"]),
            metadata={"amazon_refund_id": details.refund_id},
        )
        await conn.execute(
            "UPDATE amazon_refunds SET entry_id = $3 WHERE merchant_id = $1 AND reference_id = $2",
            business.merchant_id,
            row["reference_id"],
            entry_id,
        )
        await emit(conn, business, "refund.completed", {**payload, "entry_id": entry_id})
        await emit_balance(ctx, conn, business, row["customer"], "refund.completed", on=on)
    return str(row["order_ref"])
