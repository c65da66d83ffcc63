"""Refunds through Amazon Pay: planned within Amazon's limits, recorded first, requested after commit.

A refund follows a credit (return, goodwill) or a cancellation of prepaid items. Inside the caller's
transaction it is planned over the order's captures (refusing beyond Amazon's limits before anything is
booked) and recorded as `Requested` with a deterministic reference id; after commit Kontor asks Amazon.
Amazon answers Pending; the refund is booked when it completes (IPN, polling or settlement, see
bookings.record_refund). If the request itself was lost, the retry job asks again with the same
reference id, which Amazon treats as the same refund: a refund is never lost, never doubled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ledger.context import Kontor
from ledger.domain import Business
from payments.amazon.client import AmazonPayError, AmazonPayGateway, Credentials, RefundDetails
from payments.bookings import record_refund
from payments.domain import plan_refund
from payments.store import capture_rooms

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["plan_refunds", "poll_pending_refunds", "send_requested_refunds"]

log = logging.getLogger("kontor.refunds")


async def plan_refunds(
    conn: Connection, business: Business, order_ref: str, amount: int, *, source_kind: str, source_ref: str
) -> list[dict[str, Any]]:
    """Record the refunds of `amount` for an order (state Requested); raises 422 beyond Amazon's limits."""
    if amount <= 0:
        return []
    plan = plan_refund(amount, await capture_rooms(conn, business, order_ref), business.currency)
    count = await conn.fetchval(
        "SELECT count(*) FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
    )
    rows = []
    for n, (capture_id, part) in enumerate(plan, start=int(count) + 1):
        reference_id = f"{order_ref}-r{n}"
        await conn.execute(
            "INSERT INTO amazon_refunds (merchant_id, business, order_ref, reference_id, capture_id, amount_minor, "
            "state, source_kind, source_ref) VALUES ($1, $2, $3, $4, $5, $6, 'Requested', $7, $8)",
            business.merchant_id,
            business.code,
            order_ref,
            reference_id,
            capture_id,
            part,
            source_kind,
            source_ref,
        )
        await conn.execute(
            "UPDATE amazon_captures SET refunds_minor = refunds_minor + $3, refund_count = refund_count + 1 "
            "WHERE merchant_id = $1 AND capture_id = $2",
            business.merchant_id,
            capture_id,
            part,
        )
        rows.append(
            {
                "reference": reference_id,
                "refund_id": None,
                "amount_minor": part,
                "state": "Requested",
                "reason": None,
                "capture_id": capture_id,
            }
        )
    return rows


async def send_requested_refunds(
    ctx: Kontor, gateway: AmazonPayGateway, business: Business, creds: Credentials, order_ref: str | None = None
) -> int:
    """Ask Amazon for every Requested refund (of one order, or of the business code); returns how many went."""
    rows = await ctx.pool.fetch(
        "SELECT reference_id, capture_id, amount_minor, source_kind, source_ref FROM amazon_refunds "
        "WHERE merchant_id = $1 AND business = $2 AND state = 'Requested' AND ($3::text IS NULL OR order_ref = $3) "
        "ORDER BY created_at, reference_id",
        business.merchant_id,
        business.code,
        order_ref,
    )
    sent = 0
    for row in rows:
        try:
            details = await gateway.refund(
                creds,
                row["capture_id"],
                row["reference_id"],
                row["amount_minor"],
                business.currency,
                note=f"{row['source_kind']} {row['source_ref']}",
            )
        except AmazonPayError as exc:
            if not exc.reachable:
                log.warning(
                    "refund request deferred: Amazon Pay unreachable", extra={"reference_id": row["reference_id"]}
                )
                continue
            details = RefundDetails(
                refund_id="",
                reference_id=row["reference_id"],
                amount_minor=row["amount_minor"],
                state="Declined",
                reason=exc.code,
                refund_type="SellerInitiated",
            )
        async with ctx.pool.acquire() as conn, conn.transaction():
            await _apply(ctx, conn, business, details)
        sent += 1
    return sent


async def _apply(ctx: Kontor, conn: Connection, business: Business, details: RefundDetails) -> None:
    if details.state == "Pending":
        await conn.execute(
            "UPDATE amazon_refunds SET refund_id = $3, state = 'Pending' WHERE merchant_id = $1 AND reference_id = $2 "
            "AND state = 'Requested'",
            business.merchant_id,
            details.reference_id,
            details.refund_id,
        )
        return
    await record_refund(ctx, conn, business, details, on=ctx.today())


async def poll_pending_refunds(ctx: Kontor, gateway: AmazonPayGateway, business: Business, creds: Credentials) -> int:
    """Re-read Pending refunds at Amazon (the IPN may never come); returns how many reached a final state."""
    rows = await ctx.pool.fetch(
        "SELECT refund_id FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 AND state = 'Pending'",
        business.merchant_id,
        business.code,
    )
    final = 0
    for row in rows:
        try:
            details = await gateway.get_refund_details(creds, row["refund_id"], business.currency)
        except AmazonPayError as exc:
            log.warning("refund poll failed", extra={"refund_id": row["refund_id"], "code": exc.code})
            continue
        if details.state in ("Completed", "Declined"):
            async with ctx.pool.acquire() as conn, conn.transaction():
                await record_refund(ctx, conn, business, details, on=ctx.today())
            final += 1
    return final
