"""Two-step invoices: the capture is recorded before Amazon is asked, so that a retry is the same call.

An invoice of a two-step order is booked only once Amazon accepted its capture (`Captured`, or `CaptureInitiated`
for a capture more than 7 days after the authorization). Before calling Amazon, Kontor records the capture it is
about to request (`invoice_captures`): the invoice's sequence number within the order, the attempt, the items
(reserved while the capture is requested), the amount, the request, and how it captures — the open authorization
(`POST /v2/charges/{id}/capture`, idempotency key `<business>-<order>-i<n>`) or a new charge on the charge
permission with immediate capture (`POST /v2/charges`, key `-i<n>c`, merchantReferenceId = the invoice
reference). Keys are developer.amazon.com/docs/amazon-pay-api-v2/idempotency.html keys: at most 32 characters.

- The same request again (Amazon's answer was lost, or Amazon was out of reach) repeats exactly that call with
  exactly that key, which Amazon answers with the first result: nothing is captured twice, and the charge Amazon
  names is linked to the invoice.
- An IPN that reports the capture before the answer arrives finds the recorded capture by its charge id (or, for a
  new charge, by its merchantReferenceId) and books the invoice then (payments.invoices.book_planned_invoice).
- Amazon refusing the capture (a decline, its credentials, a state) books nothing: the capture is marked refused
  and the items are free again; the same request again is a new attempt with a new key (`-i<n>r<k>`, `-i<n>c<k>`,
  at most `ATTEMPTS_MAX` attempts), since Amazon replays a refused key's refusal for 24 hours.
- When the authorization to capture is no longer capturable (expired, canceled, declined), the attempt captures
  from a new charge instead (Amazon's re-authorization).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ledger.context import Kontor
from ledger.domain import Business
from payments.amazon.client import AmazonPayError, Amount, Charge
from payments.bookings import record_charge
from payments.lifecycle import idempotency_key
from payments.runtime import Payments
from payments.settings import MerchantSettings
from payments.store import OrderRow

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "ATTEMPTS_MAX",
    "CapturePlan",
    "insert_plan",
    "load_plan",
    "next_sequence",
    "open_authorization",
    "plan_of_charge",
    "request_capture",
    "reserved_items",
    "set_plan",
]

ATTEMPTS_MAX = 9  # the key's suffix stays within Amazon's 32 characters: <4>-<20>-i999r9
_COLUMNS = (
    "order_ref, invoice_ref, sequence, attempt, items, amount_minor, body, request_sha256, charge_id, new_charge, "
    "state, reason"
)


@dataclass(frozen=True, slots=True)
class CapturePlan:
    order_ref: str
    invoice_ref: str
    sequence: int  # the order's n-th invoice
    attempt: int
    items: tuple[int, ...]
    amount: int  # minor units
    body: dict[str, Any]  # the invoice request (InvoiceCreate as JSON)
    request_sha256: bytes
    charge_id: str | None  # the authorization captured, or the new charge once Amazon named it
    new_charge: bool
    state: str  # requested | booked | refused
    reason: str | None

    def key_suffix(self) -> str:
        """`i<n>` / `i<n>c` for the first attempt, `i<n>r<k>` / `i<n>c<k>` for the k-th."""
        if self.new_charge:
            return f"i{self.sequence}c" + (str(self.attempt) if self.attempt > 1 else "")
        return f"i{self.sequence}" + (f"r{self.attempt}" if self.attempt > 1 else "")


def _plan(row: asyncpg.Record) -> CapturePlan:
    return CapturePlan(
        order_ref=row["order_ref"],
        invoice_ref=row["invoice_ref"],
        sequence=row["sequence"],
        attempt=row["attempt"],
        items=tuple(row["items"]),
        amount=row["amount_minor"],
        body=row["body"],
        request_sha256=bytes(row["request_sha256"]),
        charge_id=row["charge_id"],
        new_charge=row["new_charge"],
        state=row["state"],
        reason=row["reason"],
    )


async def load_plan(
    conn: Connection, business: Business, invoice_ref: str, *, lock: bool = False
) -> CapturePlan | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM invoice_captures WHERE merchant_id = $1 AND business = $2 AND invoice_ref = $3"
        + (" FOR UPDATE" if lock else ""),
        business.merchant_id,
        business.code,
        invoice_ref,
    )
    return None if row is None else _plan(row)


async def plan_of_charge(conn: Connection, business: Business, order_ref: str, charge: Charge) -> CapturePlan | None:
    """The requested capture a charge Amazon reports belongs to: the authorization it captures, or the new charge
    created for it (named by the charge id once known, else by its merchantReferenceId = the invoice reference)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM invoice_captures WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
        "AND state = 'requested' AND (charge_id = $4 OR (new_charge AND charge_id IS NULL AND invoice_ref = $5)) "
        "ORDER BY sequence LIMIT 1 FOR UPDATE",
        business.merchant_id,
        business.code,
        order_ref,
        charge.charge_id,
        charge.merchant_reference_id,
    )
    return None if row is None else _plan(row)


async def reserved_items(conn: Connection, business: Business, order_ref: str) -> dict[int, str]:
    """Items whose invoice's capture is requested at Amazon: item -> invoice reference."""
    rows = await conn.fetch(
        "SELECT invoice_ref, items FROM invoice_captures WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
        "AND state = 'requested'",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return {item: r["invoice_ref"] for r in rows for item in r["items"]}


async def next_sequence(conn: Connection, business: Business, order_ref: str) -> int:
    """The next invoice's number within the order: after every capture recorded and every invoice booked."""
    found = await conn.fetchval(
        "SELECT GREATEST("
        "  (SELECT max(sequence) FROM invoice_captures WHERE merchant_id = $1 AND business = $2 AND order_ref = $3),"
        "  (SELECT max((details ->> 'sequence')::int) FROM order_documents WHERE merchant_id = $1 AND business = $2 "
        "     AND order_ref = $3 AND kind = 'invoice'),"
        "  (SELECT count(*)::int FROM order_documents WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
        "     AND kind = 'invoice'))",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return int(found or 0) + 1


async def open_authorization(
    conn: Connection, business: Business, order_ref: str, amount: int, now: datetime
) -> str | None:
    """An authorization of the order that can capture `amount` and no other invoice captures or captured."""
    found = await conn.fetchval(
        "SELECT c.charge_id FROM amazon_charges c WHERE c.merchant_id = $1 AND c.business = $2 AND c.order_ref = $3 "
        "AND c.state = 'Authorized' AND c.amount_minor >= $4 AND (c.expires_at IS NULL OR c.expires_at > $5) "
        "AND c.invoice_ref IS NULL AND NOT EXISTS (SELECT 1 FROM invoice_captures p WHERE p.merchant_id = c.merchant_id "
        "  AND p.charge_id = c.charge_id AND p.state = 'requested') "
        "ORDER BY c.created_at, c.charge_id LIMIT 1",
        business.merchant_id,
        business.code,
        order_ref,
        amount,
        now,
    )
    return None if found is None else str(found)


async def insert_plan(conn: Connection, business: Business, plan: CapturePlan) -> None:
    await conn.execute(
        "INSERT INTO invoice_captures (merchant_id, business, order_ref, invoice_ref, sequence, attempt, items, "
        "amount_minor, body, request_sha256, charge_id, new_charge, state) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'requested')",
        business.merchant_id,
        business.code,
        plan.order_ref,
        plan.invoice_ref,
        plan.sequence,
        plan.attempt,
        list(plan.items),
        plan.amount,
        plan.body,
        plan.request_sha256,
        plan.charge_id,
        plan.new_charge,
    )


async def set_plan(conn: Connection | asyncpg.Pool, business: Business, plan: CapturePlan) -> None:
    """Store the plan's attempt, path, charge, state and reason."""
    await conn.execute(
        "UPDATE invoice_captures SET attempt = $4, charge_id = $5, new_charge = $6, state = $7, reason = $8 "
        "WHERE merchant_id = $1 AND business = $2 AND invoice_ref = $3",
        business.merchant_id,
        business.code,
        plan.invoice_ref,
        plan.attempt,
        plan.charge_id,
        plan.new_charge,
        plan.state,
        plan.reason,
    )


async def request_capture(
    ctx: Kontor,
    rt: Payments,
    business: Business,
    settings: MerchantSettings,
    order: OrderRow,
    plan: CapturePlan,
    soft_descriptor: str | None,
) -> tuple[CapturePlan, Charge]:
    """Ask Amazon for the plan's capture (never inside a database transaction); returns the plan as it was sent
    (a stale authorization switches it to a new charge) and Amazon's charge. Raises AmazonPayError."""
    creds = settings.credentials
    if not plan.new_charge and plan.charge_id is not None:
        try:
            charge = await rt.gateway.capture_charge(
                creds,
                plan.charge_id,
                Amount(plan.amount, business.currency),
                idempotency_key=idempotency_key(business.code, order.order_ref, plan.key_suffix()),
                soft_descriptor=soft_descriptor,
            )
            return plan, charge
        except AmazonPayError as exc:
            if exc.reason_code != "InvalidChargeStatus":
                raise
        stale = await rt.gateway.get_charge(creds, plan.charge_id)
        async with ctx.pool.acquire() as conn, conn.transaction():
            await record_charge(ctx, conn, business, order, stale, on=ctx.today())
        captured = stale.capture_amount.minor if stale.capture_amount else 0
        if stale.state in ("Captured", "CaptureInitiated") and captured == plan.amount:
            return plan, stale  # captured with this key before the key expired at Amazon (24 hours)
        plan = replace(plan, new_charge=True, charge_id=None)  # expired, canceled or declined: a new charge
        await set_plan(ctx.pool, business, plan)
    if order.charge_permission_id is None:
        raise AmazonPayError(409, "InvalidChargePermissionStatus", f"order {order.order_ref} has no charge permission")
    charge = await rt.gateway.create_charge(
        creds,
        order.charge_permission_id,
        Amount(plan.amount, business.currency),
        capture_now=True,
        can_handle_pending_authorization=False,
        idempotency_key=idempotency_key(business.code, order.order_ref, plan.key_suffix()),
        soft_descriptor=soft_descriptor,
        merchant_reference_id=plan.invoice_ref,
    )
    return plan, charge
