"""The outcome of a dispute case: recorded by hand (`resolve_dispute`) or from Amazon's Dispute API
(`sync_dispute`), and closing the case (`close_dispute`): MerchantWon and NoFault reverse the chargeback
(Dr PSP / Cr AR), BuyerWon leaves the debt; an outcome by hand that Amazon's resolution contradicts becomes a
reconciliation exception. The chargeback and the case are `payments.disputes`'s.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import asyncpg

from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from ledger.money import format_amount
from payments.amazon.client import Dispute
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated
from payments.reconciliation import ExceptionDraft, park

if TYPE_CHECKING:
    from ledger.db import Connection
from payments.disputes import MERCHANT_KEEPS, DisputeOut, OutcomeIn, dispute_row, get_dispute, open_dispute_of

__all__ = ["close_dispute", "resolve_dispute", "sync_dispute"]


async def resolve_dispute(ctx: Kontor, business: Business, dispute_id: int, body: OutcomeIn) -> DisputeOut:
    """Won: the chargeback is reversed (Dr PSP / Cr AR); lost: the debt stays open for dunning or write-off."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await dispute_row(conn, business, dispute_id, lock=True)
        if row["state"] != "open":
            if row["state"] == body.outcome:
                return await get_dispute(ctx, business, dispute_id)  # the same outcome again changes nothing
            raise Conflict("dispute_resolved", f"dispute {dispute_id} was already {row['state']}")
        if body.resolved_on < row["opened_on"]:
            raise Unprocessable(
                "date_before_document",
                f"resolved_on {body.resolved_on.isoformat()} is before dispute {dispute_id} opened "
                f"({row['opened_on'].isoformat()})",
                [FieldError("resolved_on", f"must not be before {row['opened_on'].isoformat()}")],
            )
        await close_dispute(ctx, conn, business, row, body.outcome, body.resolved_on)
    return await get_dispute(ctx, business, dispute_id)


async def close_dispute(
    ctx: Kontor, conn: Connection, business: Business, row: asyncpg.Record, outcome: str, on: date
) -> int | None:
    """Record the outcome of an open dispute (locked by the caller); returns the reversal entry when won."""
    dispute_id = row["dispute_id"]
    entry_id = None
    if outcome == "won":
        roles = await accounts_by_role(ctx, business)
        entry_id = await book(
            ctx,
            conn,
            business,
            transfer_lines(roles("PSP"), roles("AR"), row["amount_minor"], business.currency, customer=row["customer"]),
            on=on,
            description=f"Chargeback {row['chargeback_id']} reversed: dispute {dispute_id} won",
            reference=row["order_ref"],
            metadata={"amazon_chargeback_id": row["chargeback_id"]},
            order_reference=row["order_ref"],
        )
        if row["charge_id"]:
            await conn.execute(
                "UPDATE amazon_charges SET chargebacks_minor = chargebacks_minor - $3 "
                "WHERE merchant_id = $1 AND charge_id = $2",
                business.merchant_id,
                row["charge_id"],
                row["amount_minor"],
            )
    await conn.execute(
        "UPDATE disputes SET state = $3, resolved_on = $4, reversal_entry_id = $5 "
        "WHERE merchant_id = $1 AND dispute_id = $2",
        business.merchant_id,
        dispute_id,
        outcome,
        on,
        entry_id,
    )
    await emit(
        conn,
        business,
        "dispute.resolved",
        {
            "dispute_id": dispute_id,
            "chargeback_id": row["chargeback_id"],
            "order_reference": row["order_ref"],
            "customer": row["customer"],
            "outcome": outcome,
            "amount": format_amount(row["amount_minor"], business.currency),
        },
    )
    await run_receivable_hooks(ctx, conn, business, row["customer"], on=on)
    await emit_balance_updated(conn, business, row["customer"], "dispute.resolved")
    return entry_id


async def sync_dispute(
    ctx: Kontor, conn: Connection, business: Business, chargeback_id: str, amazon: Dispute, *, on: date
) -> str:
    """Record Amazon's view of a dispute (state, reason, resolution, deadline); a resolution closes an open case:
    MerchantWon and NoFault as won (the chargeback is reversed: Amazon pays it back), BuyerWon as lost. A case
    closed by hand the other way is a reconciliation exception (`dispute_outcome_contradicted`). Returns the case's
    state."""
    row = await open_dispute_of(conn, business, chargeback_id)
    if row is None:
        return "unknown"
    deadline = amazon.deadline.date() if amazon.deadline is not None else None
    await conn.execute(
        "UPDATE disputes SET amazon_state = $3, amazon_reason = $4, resolution = $5, deadline = COALESCE($6, deadline) "
        "WHERE merchant_id = $1 AND dispute_id = $2",
        business.merchant_id,
        row["dispute_id"],
        amazon.state,
        amazon.reason_code,
        amazon.resolution,
        deadline,
    )
    if amazon.resolution is None or amazon.state not in ("Resolved", "Closed"):
        return str(row["state"])
    outcome = "won" if amazon.resolution in MERCHANT_KEEPS else "lost"
    if row["state"] == "open":
        await close_dispute(ctx, conn, business, row, outcome, on)
    elif row["state"] != outcome:
        await _contradicted(ctx, conn, business, row, outcome, amazon.resolution, on)
    return outcome


async def _contradicted(
    ctx: Kontor, conn: Connection, business: Business, row: asyncpg.Record, outcome: str, resolution: str, on: date
) -> None:
    """An outcome recorded by hand that Amazon's resolution contradicts: the case follows Amazon, and the money the
    hand-made outcome moved (or did not move) between PSP and the customer is parked in SUSPENSE against PSP as a
    reconciliation exception, so PSP equals what Amazon owes again; the accountant books it to the customer
    (resolve to the receivables account) or dismisses it."""
    amount = row["amount_minor"]
    await park(
        ctx,
        conn,
        business,
        source="dispute",
        source_ref=row["chargeback_id"],
        drafts=[
            ExceptionDraft(
                0,
                "dispute_outcome_contradicted",
                f"dispute {row['dispute_id']} was recorded {row['state']} by hand on {row['resolved_on']}; Amazon "
                f"resolved it {resolution}: {format_amount(amount, business.currency)} "
                + ("Amazon kept" if outcome == "lost" else "Amazon paid back")
                + f" (customer {row['customer']}, order {row['order_ref']})",
                amount if outcome == "won" else -amount,
            )
        ],
        on=on,
    )
    await conn.execute(
        "UPDATE disputes SET state = $3 WHERE merchant_id = $1 AND dispute_id = $2",
        business.merchant_id,
        row["dispute_id"],
        outcome,
    )
