"""The bookings money movements cause, each booked exactly once whichever path reports it first.

A capture (a charge reaching Captured) can be reported by Kontor's own call, by an IPN and by a settlement row;
a refund by Kontor's call, an IPN, polling and a settlement row. Each path calls the same function, which locks the mirror row,
books only if no entry is linked yet, links the entry, and writes the notifications: all in the
caller's transaction.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Unprocessable
from ledger.money import format_amount
from payments.amazon.client import Amount, Charge, Refund
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated
from payments.store import OrderRow, lock_order, refresh_status

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["record_charge", "record_refund"]


# Amazon's charge states in the order they are reached; Captured, Canceled and Declined are final
_CHARGE_RANK = {
    "AuthorizationInitiated": 0,
    "Authorized": 1,
    "CaptureInitiated": 2,
    "Captured": 3,
    "Canceled": 3,
    "Declined": 3,
}


def _in_currency(amount: Amount | None, business: Business, what: str) -> int:
    if amount is None:
        return 0
    if amount.currency != business.currency:
        raise Unprocessable(
            "amazon_pay_currency_mismatch",
            f"Amazon reports the {what} in {amount.currency}; business code {business.code} books {business.currency}",
        )
    return amount.minor


async def record_charge(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    order: OrderRow,
    charge: Charge,
    *,
    on: date,
    idempotency_key: str | None = None,
    invoice_ref: str | None = None,
) -> bool:
    """Mirror a charge as Amazon reports it (states only move forward); when it is Captured and not yet booked:
    Dr PSP / Cr AR (customer) with the captured amount. The order's status follows. Returns True when it was
    booked now."""
    amount = _in_currency(charge.charge_amount, business, "charge")
    captured = _in_currency(charge.capture_amount, business, "capture") if charge.state == "Captured" else 0
    await lock_order(conn, business, order.order_ref)
    await conn.execute(
        "INSERT INTO amazon_charges (merchant_id, business, order_ref, charge_id, charge_permission_id, "
        "idempotency_key, invoice_ref, amount_minor, state, reason, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (merchant_id, charge_id) DO NOTHING",
        business.merchant_id,
        business.code,
        order.order_ref,
        charge.charge_id,
        charge.charge_permission_id,
        idempotency_key,
        invoice_ref,
        amount,
        charge.state,
        charge.reason_code,
        charge.expires_at,
    )
    row = await conn.fetchrow(
        "SELECT state, entry_id FROM amazon_charges WHERE merchant_id = $1 AND charge_id = $2 FOR UPDATE",
        business.merchant_id,
        charge.charge_id,
    )
    if row is None:
        raise RuntimeError("the charge row vanished inside its transaction")
    if _CHARGE_RANK.get(charge.state, -1) >= _CHARGE_RANK.get(row["state"], -1) and row["state"] != charge.state:
        await conn.execute(
            "UPDATE amazon_charges SET state = $3, reason = $4, captured_minor = $5, "
            "expires_at = COALESCE($6, expires_at), invoice_ref = COALESCE(invoice_ref, $7) "
            "WHERE merchant_id = $1 AND charge_id = $2",
            business.merchant_id,
            charge.charge_id,
            charge.state,
            charge.reason_code,
            captured,
            charge.expires_at,
            invoice_ref,
        )
    if invoice_ref is not None:  # also when an IPN recorded the capture before Amazon's answer reached Kontor
        await conn.execute(
            "UPDATE amazon_charges SET invoice_ref = $3 WHERE merchant_id = $1 AND charge_id = $2 AND invoice_ref IS NULL",
            business.merchant_id,
            charge.charge_id,
            invoice_ref,
        )
    book_now = charge.state == "Captured" and row["entry_id"] is None and captured > 0
    if book_now:
        await _book_capture(ctx, conn, business, order, charge.charge_id, captured, on=on)
    await refresh_status(conn, business, order.order_ref)
    return book_now


async def _book_capture(
    ctx: Kontor, conn: Connection, business: Business, order: OrderRow, charge_id: str, captured: int, *, on: date
) -> None:
    roles = await accounts_by_role(ctx, business)
    entry_id = await book(
        ctx,
        conn,
        business,
        transfer_lines(roles("PSP"), roles("AR"), captured, business.currency, customer=order.customer),
        on=on,
        description=f"Amazon Pay capture {charge_id}, order {order.order_ref}",
        reference=order.order_ref,
        metadata={"amazon_charge_id": charge_id},
        order_reference=order.order_ref,
    )
    await conn.execute(
        "UPDATE amazon_charges SET entry_id = $3, captured_minor = $4 WHERE merchant_id = $1 AND charge_id = $2",
        business.merchant_id,
        charge_id,
        entry_id,
        captured,
    )
    await emit(
        conn,
        business,
        "payment.received",
        {
            "customer": order.customer,
            "order_reference": order.order_ref,
            "amount": format_amount(captured, business.currency),
            "currency": business.currency,
            "method": "AMAZON_PAY",
            "amazon_charge_id": charge_id,
            "entry_id": entry_id,
        },
    )
    await run_receivable_hooks(ctx, conn, business, order.customer, on=on, designation=order.order_ref)
    await emit_balance_updated(conn, business, order.customer, "payment.received")


async def record_refund(
    ctx: Kontor, conn: Connection, business: Business, details: Refund, *, on: date, reference_id: str | None = None
) -> str | None:
    """Apply a refund's state from Amazon: Refunded books Dr AR / Cr PSP once; Declined frees the room.

    The refund is found by Amazon's id, or by Kontor's reference when the caller just requested it. Returns the
    order reference, or None for a refund Kontor does not know (yet: its request may still be on its way).
    """
    order_ref = await conn.fetchval(
        "SELECT order_ref FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 AND (refund_id = $3 "
        "OR reference_id = $4)",
        business.merchant_id,
        business.code,
        details.refund_id,
        reference_id,
    )
    if order_ref is None:
        return None
    await lock_order(conn, business, order_ref)
    row = await conn.fetchrow(
        "SELECT r.reference_id, r.order_ref, r.charge_id, r.amount_minor, r.state, r.entry_id, r.source_kind, "
        "r.source_ref, o.customer FROM amazon_refunds r JOIN orders o USING (merchant_id, business, order_ref) "
        "WHERE r.merchant_id = $1 AND r.business = $2 AND (r.refund_id = $3 OR r.reference_id = $4) "
        "FOR UPDATE OF r",
        business.merchant_id,
        business.code,
        details.refund_id,
        reference_id,
    )
    if row is None:
        return None
    if row["state"] in ("Refunded", "Declined"):
        return str(row["order_ref"])  # final: a repeated report changes nothing
    await conn.execute(
        "UPDATE amazon_refunds SET refund_id = NULLIF($3, ''), state = $4, reason = $5 WHERE merchant_id = $1 "
        "AND reference_id = $2",
        business.merchant_id,
        row["reference_id"],
        details.refund_id,
        details.state,
        details.reason_code,
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
            "UPDATE amazon_charges SET refunds_minor = refunds_minor - $3 WHERE merchant_id = $1 AND charge_id = $2",
            business.merchant_id,
            row["charge_id"],
            row["amount_minor"],
        )
        await emit(conn, business, "refund.declined", {**payload, "reason": details.reason_code})
    elif details.state == "Refunded":
        roles = await accounts_by_role(ctx, business)
        entry_id = await book(
            ctx,
            conn,
            business,
            transfer_lines(roles("AR"), roles("PSP"), row["amount_minor"], business.currency, customer=row["customer"]),
            on=on,
            description=f"Amazon Pay refund {details.refund_id}, order {row['order_ref']}",
            reference=str(row["order_ref"]),
            metadata={"amazon_refund_id": details.refund_id},
            order_reference=str(row["order_ref"]),
        )
        await conn.execute(
            "UPDATE amazon_refunds SET entry_id = $3 WHERE merchant_id = $1 AND reference_id = $2",
            business.merchant_id,
            row["reference_id"],
            entry_id,
        )
        await emit(conn, business, "refund.completed", {**payload, "entry_id": entry_id})
        await run_receivable_hooks(ctx, conn, business, row["customer"], on=on)
        await emit_balance_updated(conn, business, row["customer"], "refund.completed")
        await refresh_status(conn, business, str(row["order_ref"]))
    return str(row["order_ref"])
