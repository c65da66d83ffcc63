"""Chargebacks and dispute cases.

A chargeback (or an A-to-z claim) takes money back from the merchant: Dr AR (customer) / Cr PSP, so the
claim on the customer revives; no VAT entry (the agreed price did not change). It counts against the
charge's refund limit. It is booked once, whichever reports it first (the CHARGEBACK IPN, read through
Amazon's Dispute API, or the settlement row), and opens a dispute case with Amazon's response deadline (else 11
days). Evidence goes to Amazon with a contest (payments.contest). Amazon's resolution decides: MerchantWon
reverses the chargeback (Dr PSP / Cr AR), as NoFault does (Amazon bears it); BuyerWon leaves the debt for dunning
or write-off. An outcome recorded by hand that Amazon's resolution contradicts becomes a reconciliation exception.
Recording the outcome is `payments.dispute_outcomes`'s; this module books the chargeback and keeps the case.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import asyncpg
from msgspec import Meta, Struct

from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import NotFound
from ledger.money import format_amount
from ledger.schemas import DatedBody, LedgerDate
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated
from payments.store import lock_order

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "MERCHANT_KEEPS",
    "DisputeOut",
    "EvidenceIn",
    "OutcomeIn",
    "dispute_row",
    "get_dispute",
    "list_disputes",
    "open_dispute_of",
    "record_chargeback",
]

EVIDENCE_DAYS = 11
# Amazon's resolutions that leave the money with the merchant: MerchantWon, and NoFault (Amazon bears the loss and
# credits the amount back, as the simulator does; payments/amazon/sim_postsale.py)
MERCHANT_KEEPS = frozenset({"MerchantWon", "NoFault"})
_EVIDENCE = "kind, content, file_name, file_bytes, file_id"


EvidenceType = Literal[
    "ProductDescription",
    "Receipt",
    "CancellationPolicy",
    "CustomerSignature",
    "TrackingNumber",
    "CarrierName",
    "DeviceId",
    "DeviceName",
    "DownloadDateTime",
    "Other",
]


class EvidenceFileIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9 ._()-]{1,100}$")]
    content_type: Literal["application/pdf", "image/png", "image/jpeg"]
    data: Annotated[str, Meta(min_length=4, max_length=7_000_000, description="base64, at most 5 MiB decoded")]


class EvidenceItemIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: EvidenceType  # Amazon's evidenceType
    text: Annotated[str, Meta(min_length=1, max_length=10000)] | None = None
    file: EvidenceFileIn | None = None


class EvidenceIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Evidence for Amazon: each item a text, a file (PDF, PNG, JPEG) or both; sent with one contest."""

    evidences: Annotated[list[EvidenceItemIn], Meta(min_length=1, max_length=10)]


class OutcomeIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An outcome recorded by hand (e.g. from Seller Central): on or after the day the dispute opened."""

    outcome: Literal["won", "lost"]
    resolved_on: LedgerDate


class EvidenceOut(Struct, kw_only=True):
    type: str
    text: str | None
    file_name: str | None
    file_bytes: int | None
    file_id: str | None  # Amazon's


class DisputeOut(Struct, kw_only=True):
    dispute_id: int
    chargeback_id: str  # Amazon's dispute id
    order_reference: str
    customer: str
    amount: str
    reason: str | None
    opened_on: date
    deadline: date
    state: str  # open, won, lost
    resolved_on: date | None
    amazon_state: str | None  # UnderReview, ActionRequired, Resolved, Closed
    amazon_reason: str | None
    resolution: str | None  # BuyerWon, MerchantWon, NoFault
    contested_at: datetime | None
    evidence: list[EvidenceOut]


async def record_chargeback(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    *,
    chargeback_id: str,
    charge_permission_id: str,
    charge_id: str | None,
    amount: int,
    reason: str | None,
    on: date,
    kind: str = "chargeback",
    settlement_id: str | None = None,
    deadline: date | None = None,
) -> bool:
    """Book a chargeback once and open its dispute (deadline: Amazon's, else 11 days); returns False when it was
    booked before."""
    known = await conn.fetchrow(
        "SELECT settlement_id FROM chargebacks WHERE merchant_id = $1 AND chargeback_id = $2 FOR UPDATE",
        business.merchant_id,
        chargeback_id,
    )
    if known is not None:
        if settlement_id and known["settlement_id"] is None:
            await conn.execute(
                "UPDATE chargebacks SET settlement_id = $3 WHERE merchant_id = $1 AND chargeback_id = $2",
                business.merchant_id,
                chargeback_id,
                settlement_id,
            )
        return False
    order = await conn.fetchrow(
        "SELECT order_ref, customer FROM orders WHERE merchant_id = $1 AND business = $2 AND charge_permission_id = $3",
        business.merchant_id,
        business.code,
        charge_permission_id,
    )
    if order is None:
        raise NotFound("order_not_found", f"no order has Amazon Pay charge permission {charge_permission_id}")
    await lock_order(conn, business, order["order_ref"])  # before its charge rows, as every path does (no deadlock)
    capture = await conn.fetchrow(
        "SELECT charge_id FROM amazon_charges WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
        "AND entry_id IS NOT NULL AND ($4::text IS NULL OR charge_id = $4) ORDER BY created_at LIMIT 1 FOR UPDATE",
        business.merchant_id,
        business.code,
        order["order_ref"],
        charge_id,
    )
    roles = await accounts_by_role(ctx, business)
    entry_id = await book(
        ctx,
        conn,
        business,
        transfer_lines(roles("AR"), roles("PSP"), amount, business.currency, customer=order["customer"]),
        on=on,
        description=f"Amazon Pay {kind} {chargeback_id}, order {order['order_ref']}",
        reference=order["order_ref"],
        metadata={"amazon_chargeback_id": chargeback_id},
        order_reference=order["order_ref"],
    )
    capture_id = capture["charge_id"] if capture else None
    await conn.execute(
        "INSERT INTO chargebacks (merchant_id, business, chargeback_id, order_ref, charge_id, kind, amount_minor, "
        "reason, received_on, entry_id, settlement_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        business.merchant_id,
        business.code,
        chargeback_id,
        order["order_ref"],
        capture_id,
        kind,
        amount,
        reason,
        on,
        entry_id,
        settlement_id,
    )
    if capture_id:
        await conn.execute(
            "UPDATE amazon_charges SET chargebacks_minor = chargebacks_minor + $3 WHERE merchant_id = $1 AND charge_id = $2",
            business.merchant_id,
            capture_id,
            amount,
        )
    dispute_id = await conn.fetchval(
        "INSERT INTO disputes (merchant_id, business, chargeback_id, order_ref, customer, amount_minor, reason, "
        "opened_on, deadline, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open') RETURNING dispute_id",
        business.merchant_id,
        business.code,
        chargeback_id,
        order["order_ref"],
        order["customer"],
        amount,
        reason,
        on,
        deadline or on + timedelta(days=EVIDENCE_DAYS),
    )
    await emit(
        conn,
        business,
        "chargeback.received",
        {
            "customer": order["customer"],
            "order_reference": order["order_ref"],
            "chargeback_id": chargeback_id,
            "type": kind,
            "amount": format_amount(amount, business.currency),
            "currency": business.currency,
            "reason": reason,
            "dispute_id": dispute_id,
            "evidence_deadline": (deadline or on + timedelta(days=EVIDENCE_DAYS)).isoformat(),
            "entry_id": entry_id,
        },
    )
    await run_receivable_hooks(ctx, conn, business, order["customer"], on=on)
    await emit_balance_updated(conn, business, order["customer"], "chargeback.received")
    return True


async def dispute_row(conn: Connection, business: Business, dispute_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT d.*, c.charge_id FROM disputes d JOIN chargebacks c USING (merchant_id, chargeback_id) "
        "WHERE d.merchant_id = $1 AND d.business = $2 AND d.dispute_id = $3" + (" FOR UPDATE OF d" if lock else ""),
        business.merchant_id,
        business.code,
        dispute_id,
    )
    if row is None:
        raise NotFound("dispute_not_found", f"dispute {dispute_id} not found")
    return row


def _out(business: Business, row: asyncpg.Record, evidence: list[asyncpg.Record]) -> DisputeOut:
    return DisputeOut(
        dispute_id=row["dispute_id"],
        chargeback_id=row["chargeback_id"],
        order_reference=row["order_ref"],
        customer=row["customer"],
        amount=format_amount(row["amount_minor"], business.currency),
        reason=row["reason"],
        opened_on=row["opened_on"],
        deadline=row["deadline"],
        state=row["state"],
        resolved_on=row["resolved_on"],
        amazon_state=row["amazon_state"],
        amazon_reason=row["amazon_reason"],
        resolution=row["resolution"],
        contested_at=row["contested_at"],
        evidence=[
            EvidenceOut(
                type=e["kind"],
                text=e["content"],
                file_name=e["file_name"],
                file_bytes=e["file_bytes"],
                file_id=e["file_id"],
            )
            for e in evidence
        ],
    )


async def list_disputes(ctx: Kontor, business: Business, state: str | None) -> list[DisputeOut]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT d.*, NULL::text AS charge_id FROM disputes d WHERE merchant_id = $1 AND business = $2 "
            "AND ($3::text IS NULL OR state = $3) ORDER BY dispute_id",
            business.merchant_id,
            business.code,
            state,
        )
        evidence = await conn.fetch(
            f"SELECT dispute_id, {_EVIDENCE} FROM dispute_evidence WHERE merchant_id = $1 "
            "AND dispute_id = ANY($2::bigint[]) ORDER BY evidence_id",
            business.merchant_id,
            [r["dispute_id"] for r in rows],
        )
    return [_out(business, r, [e for e in evidence if e["dispute_id"] == r["dispute_id"]]) for r in rows]


async def get_dispute(ctx: Kontor, business: Business, dispute_id: int) -> DisputeOut:
    async with ctx.pool.acquire() as conn:
        row = await dispute_row(conn, business, dispute_id)
        evidence = await conn.fetch(
            f"SELECT {_EVIDENCE} FROM dispute_evidence WHERE merchant_id = $1 AND dispute_id = $2 ORDER BY evidence_id",
            business.merchant_id,
            dispute_id,
        )
    return _out(business, row, list(evidence))


async def open_dispute_of(conn: Connection, business: Business, chargeback_id: str) -> asyncpg.Record | None:
    """The dispute of a chargeback (whatever its state), locked, with its capture (None for an unknown chargeback)."""
    row = await conn.fetchval(
        "SELECT dispute_id FROM disputes WHERE merchant_id = $1 AND business = $2 AND chargeback_id = $3",
        business.merchant_id,
        business.code,
        chargeback_id,
    )
    return None if row is None else await dispute_row(conn, business, row, lock=True)
