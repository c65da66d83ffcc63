"""Applying a v2 IPN: read the object it names at Amazon, then book what Amazon says in one short transaction.

One handler per ObjectType (developer.amazon.com/docs/amazon-pay-checkout/set-up-instant-payment-notifications.html):
- CHARGE: the charge's state is mirrored; Captured books Dr PSP / Cr AR once; the order's status follows.
- REFUND: Refunded books Dr AR / Cr PSP once, Declined frees the refund's room (a refund Kontor has not recorded
  yet — its request still on the way — is retried later).
- CHARGE_PERMISSION: Amazon's state of it is recorded on the order; Chargeable again after a soft decline makes
  Kontor authorize the order again (the buyer updated the payment method).
- CHARGEBACK: the dispute is read through the Dispute API (GET /v2/disputes/{ObjectId}); the chargeback is booked
  once (Dr AR / Cr PSP, the claim revives) with a dispute case and Amazon's deadline; a resolution closes it.
The message is marked processed in the same transaction as the booking, and only while the worker still holds
its claim (payments.ipn: the claim's attempt number is the token; a worker whose lease ran out and whose message
another worker claimed since gets `ClaimLost`, and its booking rolls back). `Ignored` records the message as
ignored with its reason (it can never be applied); `Later` retries it with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import msgspec

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import KontorError
from ledger.tenancy import get_business
from payments.amazon.client import Charge
from payments.bookings import record_charge, record_refund
from payments.captures import plan_of_charge
from payments.charges import reauthorize
from payments.dispute_outcomes import sync_dispute
from payments.disputes import record_chargeback
from payments.invoices import book_planned_invoice
from payments.runtime import Payments
from payments.settings import MerchantSettings, load_settings, mark_proven
from payments.settings_claims import owner_of
from payments.store import OrderRow, load_order, refresh_status

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["ClaimLost", "Ignored", "IpnMessage", "Later", "Notification", "ObjectType", "apply_notification"]


class Ignored(Exception):
    """The message can never be applied; the text says why."""


class Later(Exception):
    """The message cannot be applied yet (retried with backoff); the text says why."""


class ClaimLost(Exception):
    """Another worker claimed the message after this one's lease ran out: this one's booking is rolled back."""


UNKNOWN_ORDER_ATTEMPTS_MAX = 6  # an IPN may overtake Kontor's own record of the order (about 5 minutes of retries)


ObjectType = Literal["CHARGE", "REFUND", "CHARGE_PERMISSION", "CHARGEBACK"]
OBJECT_TYPES: frozenset[str] = frozenset(get_args(ObjectType))


class IpnMessage(msgspec.Struct, frozen=True):
    """The inner message of a v2 IPN (the SNS envelope's Message), as Amazon names its fields."""

    MerchantID: str = ""
    ObjectType: str = ""
    ObjectId: str = ""
    ChargePermissionId: str = ""
    NotificationId: str = ""
    NotificationType: str = ""
    NotificationVersion: str = ""


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One stored IPN as its handler sees it: the message's ids, and the claim it is applied under."""

    merchant_id: int
    notification_id: str
    object_type: ObjectType
    object_id: str
    charge_permission_id: str
    attempt: int  # the claim's attempt number (1, 2, ...): also the token that proves the claim is still this one's


class Handler(Protocol):
    async def __call__(
        self, ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, note: Notification
    ) -> str: ...


def parse_message(raw: str) -> IpnMessage:
    """The inner message of a stored SNS envelope; Ignored when it is not one."""
    try:
        envelope = msgspec.json.decode(raw)
        return msgspec.json.decode(envelope["Message"], type=IpnMessage)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
        raise Ignored(f"not an Amazon Pay v2 message: {exc}") from None


async def apply_notification(
    ctx: Kontor, rt: Payments, merchant_id: int, notification_id: str, kind: str, raw: str, attempt: int
) -> str:
    """Apply one stored message (`raw`: the SNS envelope) under the claim numbered `attempt`; returns the outcome
    (stored with it). Raises Ignored, Later or ClaimLost."""
    if kind.startswith("v1:"):
        raise Ignored(
            f"a Checkout v1 notification ({kind[3:]}): Amazon ended Checkout v1 on 2026-03-31; "
            "v1 orders are reported through v2 notifications now"
        )
    message = parse_message(raw)
    object_type = message.ObjectType or kind
    if object_type not in OBJECT_TYPES:
        raise Ignored(f"ObjectType {object_type!r} is not one Kontor applies")
    if not message.ObjectId:
        raise Ignored("the message names no ObjectId")
    owner = await owner_of(ctx, message.MerchantID)
    if owner is None or owner[0] != merchant_id:
        raise Ignored("the Amazon merchant account is no longer connected to this merchant")
    business = await get_business(ctx, merchant_id, owner[1])
    try:
        settings = await load_settings(ctx, rt, business)
    except KontorError as exc:
        raise Ignored(exc.detail) from exc
    note = Notification(
        merchant_id=merchant_id,
        notification_id=notification_id,
        object_type=object_type,  # type: ignore[arg-type]  # checked against OBJECT_TYPES above
        object_id=message.ObjectId,
        charge_permission_id=message.ChargePermissionId,
        attempt=attempt,
    )
    outcome = await _HANDLERS[note.object_type](ctx, rt, business, settings, note)
    # Amazon named the account and the business code's credentials read its object: they act for that account
    await mark_proven(ctx, business, message.MerchantID)
    return outcome


async def _order(ctx: Kontor, business: Business, charge_permission_id: str, note: Notification) -> OrderRow:
    """The order of a charge permission. An IPN can overtake Kontor's own record of a checkout it is completing:
    an unknown charge permission is tried again a few times before the message is ignored."""
    order_ref = await ctx.pool.fetchval(
        "SELECT order_ref FROM orders WHERE merchant_id = $1 AND business = $2 AND charge_permission_id = $3",
        business.merchant_id,
        business.code,
        charge_permission_id,
    )
    if order_ref is None:
        why = f"no order has charge permission {charge_permission_id}"
        raise Ignored(why) if note.attempt >= UNKNOWN_ORDER_ATTEMPTS_MAX else Later(why)
    async with ctx.pool.acquire() as conn:
        return await load_order(conn, business, order_ref)


async def _done(conn: Connection, note: Notification, outcome: str) -> str:
    """Mark the message processed inside the booking's transaction, if the claim is still this worker's; else
    ClaimLost (the caller's transaction, and with it the booking, rolls back)."""
    marked = await conn.fetchval(
        "UPDATE ipn_messages SET state = 'processed', outcome = $3, processed_at = now(), claimed_until = NULL "
        "WHERE merchant_id = $1 AND notification_id = $2 AND state = 'pending' AND attempts = $4 RETURNING true",
        note.merchant_id,
        note.notification_id,
        outcome[:1000],
        note.attempt,
    )
    if not marked:
        raise ClaimLost(f"notification {note.notification_id} was claimed again after attempt {note.attempt}")
    return outcome


async def _charge(ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, note: Notification) -> str:
    charge = await rt.gateway.get_charge(settings.credentials, note.object_id)
    order = await _order(ctx, business, charge.charge_permission_id, note)
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            booked = await record_charge(ctx, conn, business, order, charge, on=ctx.today())
            invoiced = await _planned_invoice(ctx, conn, business, order, charge)
        except KontorError as exc:
            raise Ignored(exc.detail) from exc
        outcome = f"charge {charge.state}" + (", capture booked" if booked else "") + invoiced
        return await _done(conn, note, outcome)


async def _planned_invoice(ctx: Kontor, conn: Connection, business: Business, order: OrderRow, charge: Charge) -> str:
    """A capture Kontor requested for an invoice and Amazon accepted, reported before Amazon's answer reached Kontor
    (or the answer was lost): the invoice is booked now, linked to the charge (payments.captures)."""
    if charge.state not in ("Captured", "CaptureInitiated"):
        return ""
    plan = await plan_of_charge(conn, business, order.order_ref, charge)
    if plan is None:
        return ""
    await book_planned_invoice(ctx, conn, business, order, plan, charge)
    return f", invoice {plan.invoice_ref} booked"


async def _refund(ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, note: Notification) -> str:
    refund = await rt.gateway.get_refund(settings.credentials, note.object_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        order_ref = await record_refund(ctx, conn, business, refund, on=ctx.today())
        if order_ref is None:
            raise Later(f"refund {refund.refund_id} is not recorded by Kontor (yet)")
        return await _done(conn, note, f"refund {refund.state}")


async def _charge_permission(
    ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, note: Notification
) -> str:
    permission = await rt.gateway.get_charge_permission(settings.credentials, note.object_id)
    order = await _order(ctx, business, permission.charge_permission_id, note)
    reasons = ",".join(permission.reasons) or None
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE orders SET charge_permission_state = $4, charge_permission_reason = $5 WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3",
            business.merchant_id,
            business.code,
            order.order_ref,
            permission.state,
            reasons,
        )
        status, reason = await refresh_status(conn, business, order.order_ref)
        outcome = await _done(conn, note, f"charge permission {permission.state}")
    if permission.state == "Chargeable" and status == "declined" and reason == "SoftDeclined":
        outcome += "; " + await reauthorize(ctx, rt, business, settings, order)
    return outcome


async def _chargeback(
    ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, note: Notification
) -> str:
    dispute = await rt.gateway.get_dispute(settings.credentials, note.object_id)
    if dispute.amount.minor <= 0:
        raise Ignored(f"dispute {dispute.dispute_id} is for an amount of {dispute.amount.minor} (nothing to book)")
    if dispute.amount.currency != business.currency:
        raise Ignored(f"dispute {dispute.dispute_id} is in {dispute.amount.currency}, the books in {business.currency}")
    permission = (
        note.charge_permission_id
        or (await rt.gateway.get_charge(settings.credentials, dispute.charge_id)).charge_permission_id
    )
    await _order(ctx, business, permission, note)  # Ignored when no order has it
    on = ctx.today()
    async with ctx.pool.acquire() as conn, conn.transaction():
        booked = await record_chargeback(
            ctx,
            conn,
            business,
            chargeback_id=dispute.dispute_id,
            charge_permission_id=permission,
            charge_id=dispute.charge_id,
            amount=dispute.amount.minor,
            reason=dispute.filing_reason,
            on=on,
            deadline=dispute.deadline.date() if dispute.deadline else None,
        )
        state = await sync_dispute(ctx, conn, business, dispute.dispute_id, dispute, on=on)
        return await _done(
            conn, note, f"chargeback {'booked' if booked else 'known'}, dispute {dispute.state}: {state}"
        )


_HANDLERS: Mapping[ObjectType, Handler] = {
    "CHARGE": _charge,
    "REFUND": _refund,
    "CHARGE_PERMISSION": _charge_permission,
    "CHARGEBACK": _chargeback,
}
