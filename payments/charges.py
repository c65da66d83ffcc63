"""The Amazon Pay side of an order: checkout completed, charges authorized and captured, the order wound down.

Each step asks Amazon first (never inside a database transaction), then records what Amazon answered in one
short transaction: the mirror row, the capture's booking (payments.bookings), the order's status
(payments.lifecycle). Every POST carries an idempotency key derived from the order, so a retry after a crash or a
lost answer is the same call at Amazon (developer.amazon.com/docs/amazon-pay-api-v2/idempotency.html):
`<business>-<order>-s` completes the checkout session, `-a<n>` authorizes again; an invoice's capture is
payments.captures (`-i<n>`, `-i<n>c`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from ledger.money import format_amount
from payments.amazon.client import AmazonPayError, Amount, Charge, ChargePermission, CheckoutSession, Credentials
from payments.bookings import record_charge
from payments.lifecycle import idempotency_key, intent_matches, payment_intent
from payments.refusals import ACCESS_REFUSALS, amazon_refused, gateway_unavailable
from payments.runtime import Payments
from payments.schemas import ChargeOut
from payments.settings import MerchantSettings
from payments.store import OrderRow, load_order, order_facts, refresh_status

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "charge_out",
    "check_session",
    "complete_checkout",
    "read_session",
    "reauthorize",
    "set_declined",
    "wind_down",
]

log = logging.getLogger("kontor.amazon_pay")
_FIELD = "payment_method.checkout_session_id"


async def read_session(rt: Payments, creds: Credentials, checkout_session_id: str) -> CheckoutSession:
    try:
        return await rt.gateway.get_checkout_session(creds, checkout_session_id)
    except AmazonPayError as exc:
        if exc.reason_code == "ResourceNotFound":
            raise Unprocessable(
                "checkout_session_unknown",
                f"Amazon Pay knows no checkout session {checkout_session_id} for this merchant account",
                [FieldError(_FIELD, "unknown at Amazon Pay")],
            ) from exc
        raise amazon_refused(exc, f"reading checkout session {checkout_session_id}") from exc


def check_session(session: CheckoutSession, settings: MerchantSettings, gross: int, currency: str) -> None:
    """An open session must be finished by the buyer and fit the order and the business code's payment execution."""
    if session.state != "Open":
        return
    if session.constraints:
        raise Conflict(
            "checkout_session_incomplete",
            f"the buyer has not finished Amazon Pay's checkout yet ({', '.join(session.constraints)})",
            [FieldError(_FIELD, "constraints: " + ", ".join(session.constraints))],
        )
    if not intent_matches(session.payment_intent, settings.payment_execution):
        raise Unprocessable(
            "payment_intent_mismatch",
            f"the checkout session's paymentIntent is {session.payment_intent}; this business code pays "
            f"{settings.payment_execution.replace('_', '-')}: set {payment_intent(settings.payment_execution)} "
            "(or Confirm) when updating the checkout session",
            [FieldError(_FIELD, f"paymentIntent {session.payment_intent}")],
        )
    expected = Amount(gross, currency)
    if session.charge_amount != expected:
        shown = "none" if session.charge_amount is None else (
            f"{format_amount(session.charge_amount.minor, session.charge_amount.currency)} {session.charge_amount.currency}"
        )  # fmt: skip
        raise Unprocessable(
            "checkout_amount_mismatch",
            f"the checkout session's chargeAmount is {shown}; the order's items total "
            f"{format_amount(gross, currency)} {currency}",
            [FieldError(_FIELD, "chargeAmount differs from the order total")],
        )


async def complete_checkout(
    ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, order: OrderRow
) -> None:
    """Complete the order's checkout session with its total and record the charge Amazon made (or make one)."""
    creds, sid = settings.credentials, order.checkout_session_id
    if sid is None:
        return  # a v1 order: nothing to complete
    session = await read_session(rt, creds, sid)
    if session.state == "Open":
        check_session(session, settings, order.gross_minor, business.currency)
        try:
            session = await rt.gateway.complete_checkout_session(
                creds,
                sid,
                Amount(order.gross_minor, business.currency),
                idempotency_key=idempotency_key(business.code, order.order_ref, "s"),
            )
        except AmazonPayError as exc:
            if not exc.reachable:
                raise gateway_unavailable(exc) from exc
            session = await read_session(rt, creds, sid)  # a declined payment cancels the session
            if session.state == "Open":
                raise amazon_refused(exc, f"completing checkout session {sid}") from exc
    if session.state != "Completed" or session.charge_permission_id is None:
        await set_declined(ctx, business, order.order_ref, session.reason_code or session.state)
        return
    charge = await _checkout_charge(rt, creds, business, settings, order, session)
    permission = await _permission(rt, creds, session.charge_permission_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE orders SET charge_permission_id = $4, charge_permission_state = $5, charge_permission_reason = $6 "
            "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
            business.merchant_id,
            business.code,
            order.order_ref,
            session.charge_permission_id,
            permission.state if permission else None,
            ",".join(permission.reasons) or None if permission else None,
        )
        if isinstance(charge, Charge):
            await record_charge(ctx, conn, business, order, charge, on=order.order_date)
        else:
            await _set_status(conn, business, order.order_ref, "declined", charge)


async def _permission(rt: Payments, creds: Credentials, charge_permission_id: str) -> ChargePermission | None:
    """The charge permission as Amazon has it now (None when it cannot be read: its IPN will tell)."""
    try:
        return await rt.gateway.get_charge_permission(creds, charge_permission_id)
    except AmazonPayError as exc:
        log.warning(
            "charge permission not read", extra={"charge_permission_id": charge_permission_id, "code": exc.reason_code}
        )
        return None


async def _checkout_charge(
    rt: Payments,
    creds: Credentials,
    business: Business,
    settings: MerchantSettings,
    order: OrderRow,
    session: CheckoutSession,
) -> Charge | str:
    """The charge of a completed session; a `Confirm` session gets one now. A decline returns its reasonCode."""
    try:
        if session.charge_id is not None:
            return await rt.gateway.get_charge(creds, session.charge_id)
        permission = session.charge_permission_id or ""
        return await _new_charge(rt, creds, business, order, permission, order.gross_minor, settings.one_step, "a1")
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        if exc.reason_code in ACCESS_REFUSALS:  # not a decline: the order stays pending until connected again
            raise amazon_refused(exc, f"the charge of checkout session {session.checkout_session_id}") from exc
        return exc.reason_code


async def _new_charge(
    rt: Payments,
    creds: Credentials,
    business: Business,
    order: OrderRow,
    charge_permission_id: str,
    amount: int,
    capture_now: bool,
    what: str,
    soft_descriptor: str | None = None,
) -> Charge:
    return await rt.gateway.create_charge(
        creds,
        charge_permission_id,
        Amount(amount, business.currency),
        capture_now=capture_now,
        can_handle_pending_authorization=False,
        idempotency_key=idempotency_key(business.code, order.order_ref, what),
        soft_descriptor=soft_descriptor,
        merchant_reference_id=order.order_ref,
    )


def charge_out(charge: Charge, business: Business, *, invoice_ref: str | None = None) -> ChargeOut:
    """What an invoice's answer says about its capture."""
    captured = charge.capture_amount.minor if charge.capture_amount and charge.state == "Captured" else 0
    return ChargeOut(
        charge_id=charge.charge_id,
        amount=format_amount(charge.charge_amount.minor, business.currency),
        captured=format_amount(captured, business.currency),
        state=charge.state,
        reason=charge.reason_code,
        expires_at=charge.expires_at,
        invoice_reference=invoice_ref,
    )


async def reauthorize(
    ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, order: OrderRow
) -> str:
    """Authorize the order again (its payment method was declined softly and the buyer updated it): a new charge
    for what is still to be paid, captured now for one-step orders. Returns the outcome."""
    if order.charge_permission_id is None:
        return "no charge permission"
    async with ctx.pool.acquire() as conn, conn.transaction():
        attempt = await conn.fetchval(
            "UPDATE orders SET authorization_attempts = authorization_attempts + 1 WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3 RETURNING authorization_attempts",
            business.merchant_id,
            business.code,
            order.order_ref,
        )
    try:
        charge = await _new_charge(
            rt, settings.credentials, business, order, order.charge_permission_id, order.gross_minor,
            settings.one_step, f"a{int(attempt) + 1}",
        )  # fmt: skip
    except AmazonPayError as exc:
        if not exc.reachable:
            raise
        await set_declined(ctx, business, order.order_ref, exc.reason_code)
        return f"authorization declined again: {exc.reason_code}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record_charge(ctx, conn, business, order, charge, on=ctx.today())
    return f"authorized again: charge {charge.charge_id} {charge.state}"


async def _set_status(conn: Connection, business: Business, order_ref: str, status: str, reason: str | None) -> None:
    await conn.execute(
        "UPDATE orders SET status = $4, status_reason = $5 WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
        status,
        reason,
    )


async def set_declined(ctx: Kontor, business: Business, order_ref: str, reason: str | None) -> None:
    """Amazon declined the payment (or the buyer canceled checkout) and nothing was captured."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _set_status(conn, business, order_ref, "declined", reason)
        await refresh_status(conn, business, order_ref)


async def wind_down(ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, order_ref: str) -> None:
    """When no item is left to invoice: cancel authorizations nothing will be captured from and close the charge
    permission, so Amazon releases the buyer's funds and no further charge is possible. A courtesy: failures are
    logged (Amazon expires both on its own after 30 and 180 days)."""
    async with ctx.pool.acquire() as conn:
        order = await load_order(conn, business, order_ref)
        facts = await order_facts(conn, business, order_ref)
        uncaptured = await conn.fetch(
            "SELECT charge_id FROM amazon_charges WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
            "AND state IN ('Authorized', 'AuthorizationInitiated')",
            business.merchant_id,
            business.code,
            order_ref,
        )
    if facts.items_open or order.charge_permission_id is None:
        return
    if not order.one_step and await _uncaptured_invoices(ctx, business, order_ref):
        log.warning("charge permission kept open: an invoice is not captured yet", extra={"order": order_ref})
        return
    creds = settings.credentials
    try:
        for row in uncaptured:
            charge = await rt.gateway.cancel_charge(creds, row["charge_id"], "nothing left to capture")
            async with ctx.pool.acquire() as conn, conn.transaction():
                await record_charge(ctx, conn, business, order, charge, on=ctx.today())
        if facts.charge_permission_state != "Closed":
            permission = await rt.gateway.close_charge_permission(creds, order.charge_permission_id, "order complete")
            await _permission_state(ctx, business, order_ref, permission.state, ",".join(permission.reasons) or None)
    except AmazonPayError as exc:
        log.warning("winding down at Amazon failed", extra={"order": order_ref, "code": exc.reason_code})


async def _uncaptured_invoices(ctx: Kontor, business: Business, order_ref: str) -> int:
    """What the order's invoices ask for beyond what Amazon captured or is capturing for it (and what was paid
    outside Amazon), in minor units, or 1 while a capture is requested at Amazon with its answer outstanding:
    while it is more than 0 the charge permission must stay open (Amazon could not collect it otherwise)."""
    found = await ctx.pool.fetchval(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM invoice_captures p WHERE p.merchant_id = $1 AND p.business = $2 "
        "  AND p.order_ref = $3 AND p.state = 'requested') THEN 1 ELSE "
        " (SELECT COALESCE(sum(gross_minor) FILTER (WHERE kind = 'invoice'), 0) "
        "   - COALESCE(sum(gross_minor) FILTER (WHERE kind = 'payment'), 0) FROM order_documents d "
        "   WHERE d.merchant_id = $1 AND d.business = $2 AND d.order_ref = $3) "
        " - (SELECT COALESCE(sum(CASE WHEN c.state = 'Captured' THEN c.captured_minor ELSE COALESCE((SELECT "
        "     p.amount_minor FROM invoice_captures p WHERE p.merchant_id = c.merchant_id AND p.charge_id = c.charge_id "
        "     AND p.state = 'booked'), c.amount_minor) END), 0) FROM amazon_charges c WHERE c.merchant_id = $1 "
        "   AND c.business = $2 AND c.order_ref = $3 AND c.state IN ('Captured', 'CaptureInitiated')) END",
        business.merchant_id,
        business.code,
        order_ref,
    )
    return max(0, int(found or 0))


async def _permission_state(ctx: Kontor, business: Business, order_ref: str, state: str, reason: str | None) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE orders SET charge_permission_state = $4, charge_permission_reason = $5 WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3",
            business.merchant_id,
            business.code,
            order_ref,
            state,
            reason,
        )
        await refresh_status(conn, business, order_ref)
