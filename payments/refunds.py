"""Refunds through Amazon Pay: planned within Amazon's limits, recorded first, requested after commit.

A refund follows a credit (return, goodwill) or a cancellation of prepaid items. Inside the caller's
transaction it is planned over the order's captured charges (refusing beyond Amazon's limits before anything
is booked) and recorded as `Requested` with a deterministic reference (`<order>-r<n>`); after commit Kontor asks
Amazon (`POST /v2/refunds` with the idempotency key `<business>-<reference>`). Amazon answers RefundInitiated;
the refund is booked when it is Refunded (IPN, polling or settlement, see bookings.record_refund). If the
request itself was lost, the retry job asks again with the same key, which Amazon answers with the same refund:
a refund is never lost, never doubled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ledger.context import Kontor
from ledger.domain import Business
from payments.amazon.client import AmazonPayError, Amount, Credentials, Refund
from payments.bookings import record_refund
from payments.domain import plan_refund
from payments.refusals import ACCESS_REFUSALS
from payments.runtime import Payments
from payments.store import charge_rooms

if TYPE_CHECKING:
    import asyncpg

    from ledger.db import Connection

__all__ = ["plan_refunds", "poll_pending_refunds", "send_requested_refunds"]

log = logging.getLogger("kontor.refunds")


async def plan_refunds(
    conn: Connection, business: Business, order_ref: str, amount: int, *, source_kind: str, source_ref: str
) -> list[dict[str, Any]]:
    """Record the refunds of `amount` for an order (state Requested); raises 422 beyond Amazon's limits."""
    if amount <= 0:
        return []
    plan = plan_refund(amount, await charge_rooms(conn, business, order_ref), business.currency)
    count = await conn.fetchval(
        "SELECT count(*) FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
    )
    rows = []
    for n, (charge_id, part) in enumerate(plan, start=int(count) + 1):
        reference_id = f"{order_ref}-r{n}"
        await conn.execute(
            "INSERT INTO amazon_refunds (merchant_id, business, order_ref, reference_id, charge_id, amount_minor, "
            "state, source_kind, source_ref) VALUES ($1, $2, $3, $4, $5, $6, 'Requested', $7, $8)",
            business.merchant_id,
            business.code,
            order_ref,
            reference_id,
            charge_id,
            part,
            source_kind,
            source_ref,
        )
        await conn.execute(
            "UPDATE amazon_charges SET refunds_minor = refunds_minor + $3, refund_count = refund_count + 1 "
            "WHERE merchant_id = $1 AND charge_id = $2",
            business.merchant_id,
            charge_id,
            part,
        )
        rows.append(
            {
                "reference": reference_id,
                "refund_id": None,
                "amount_minor": part,
                "state": "Requested",
                "reason": None,
                "charge_id": charge_id,
            }
        )
    return rows


async def send_requested_refunds(
    ctx: Kontor, rt: Payments, business: Business, creds: Credentials, order_ref: str | None = None
) -> int:
    """Ask Amazon for every Requested refund (of one order, or of the business code); returns how many went."""
    rows = await ctx.pool.fetch(
        "SELECT reference_id, charge_id, amount_minor FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 "
        "AND state = 'Requested' AND ($3::text IS NULL OR order_ref = $3) ORDER BY created_at, reference_id "
        "LIMIT 1000",
        business.merchant_id,
        business.code,
        order_ref,
    )
    sent = 0
    for row in rows:
        try:
            sent += await _send(ctx, rt, business, creds, row)
        except Exception:  # one refund that cannot be sent never holds up the others: it stays Requested
            log.exception("refund request failed", extra={"reference": row["reference_id"]})
    return sent


async def _send(ctx: Kontor, rt: Payments, business: Business, creds: Credentials, row: asyncpg.Record) -> int:
    """Ask Amazon for one Requested refund and record the answer; 0 when Amazon could not be asked."""
    try:
        refund = await rt.gateway.create_refund(
            creds,
            row["charge_id"],
            Amount(row["amount_minor"], business.currency),
            idempotency_key=refund_key(business.code, row["reference_id"]),
        )
    except AmazonPayError as exc:
        if not exc.reachable or exc.reason_code in ACCESS_REFUSALS:  # not a decline: asked again later
            log.warning(
                "refund request deferred: Amazon Pay unreachable or refusing the credentials",
                extra={"reference": row["reference_id"], "code": exc.reason_code},
            )
            return 0
        refund = Refund(
            refund_id="",
            charge_id=row["charge_id"],
            state="Declined",
            reason_code=exc.reason_code,
            refund_amount=Amount(row["amount_minor"], business.currency),
            created_at=None,
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _apply(ctx, conn, business, refund, row["reference_id"])
    return 1


def refund_key(business: int, reference_id: str) -> str:
    """`<business>-<order>-r<n>`: at most 4 + 1 + 20 + 5 characters, within Amazon's 32."""
    return f"{business}-{reference_id}"


async def _apply(ctx: Kontor, conn: Connection, business: Business, refund: Refund, reference_id: str) -> None:
    if refund.state == "RefundInitiated":
        await conn.execute(
            "UPDATE amazon_refunds SET refund_id = $3, state = 'RefundInitiated' WHERE merchant_id = $1 "
            "AND reference_id = $2 AND state = 'Requested'",
            business.merchant_id,
            reference_id,
            refund.refund_id,
        )
        return
    await record_refund(ctx, conn, business, refund, on=ctx.today(), reference_id=reference_id)


async def poll_pending_refunds(ctx: Kontor, rt: Payments, business: Business, creds: Credentials) -> int:
    """Re-read refunds Amazon is still working on (the IPN may never come); returns how many reached a final state."""
    rows = await ctx.pool.fetch(
        "SELECT refund_id, reference_id FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 "
        "AND state = 'RefundInitiated' LIMIT 1000",
        business.merchant_id,
        business.code,
    )
    final = 0
    for row in rows:
        try:
            refund = await rt.gateway.get_refund(creds, row["refund_id"])
            if refund.state in ("Refunded", "Declined"):
                async with ctx.pool.acquire() as conn, conn.transaction():
                    await record_refund(ctx, conn, business, refund, on=ctx.today(), reference_id=row["reference_id"])
                final += 1
        except AmazonPayError as exc:
            log.warning("refund poll failed", extra={"refund_id": row["refund_id"], "code": exc.reason_code})
        except Exception:  # one refund that cannot be recorded never holds up the others: read again next run
            log.exception("refund poll failed", extra={"refund_id": row["refund_id"]})
    return final
