"""The simulator's sale side: Checkout Sessions, Charge Permissions and Charges, as Amazon Pay v2 runs them.

Pure functions over a `SimMerchant` (`sim_model.py`) and a `now`; they raise `SimError` with Amazon's status and
reasonCode, and queue an IPN (`merchant.notify`) for every state change of a charge or charge permission.

Why one module over 400 lines: the three state machines drive each other (completing a session creates the
permission and authorizes its first charge, a capture can close the permission, closing it cancels its open
charges), and each transition queues its IPN in `_set_charge`/`_set_permission`; split, they would reach into each
other's private transitions. What follows a sale (refunds, disputes, files) is `sim_postsale.py`.

State machines (developer.amazon.com/docs/amazon-pay-api-v2/*.html):
- Checkout Session: Open -> Completed | Canceled (BuyerCanceled, Declined, Expired after 24 h).
- Charge Permission: Chargeable <-> NonChargeable (PaymentMethodInvalid after a soft or hard decline, back when
  the buyer updates the payment method) -> Closed (MerchantClosed, AmazonClosed, Expired after 180 days).
- Charge: AuthorizationInitiated -> Authorized -> CaptureInitiated -> Captured; Canceled (MerchantCanceled,
  ChargePermissionCanceled, ExpiredUnused after 30 days); Declined (SoftDeclined, HardDeclined, AmazonRejected,
  ProcessingFailure, TransactionTimedOut).

Choices where Amazon is silent (the simulator's rules):
- Complete with a session that is Canceled answers 422 CheckoutSessionCanceled (the WooCommerce plugin reads
  that code and then the session's reasonCode); Completed answers 422 InvalidCheckoutSessionStatus (the stored
  answer is only replayed through the idempotency key); open constraints answer 422 InvalidCheckoutSessionStatus
  naming them; another amount answers 409 AmountMismatch.
- A buyer instrument `HardDeclined` declines at Complete for Authorize/AuthorizeWithCapture (session Canceled/
  Declined, 422 CheckoutSessionCanceled); with Confirm it declines the first Create Charge. `SoftDeclined`
  declines the first authorization: at Complete the charge is Declined/SoftDeclined and the session still
  Completes (the permission can be charged again once the buyer updates the payment method); on Create Charge
  it answers 422 SoftDeclined. Either decline makes the permission NonChargeable/PaymentMethodInvalid.
- A one-time permission closes (Closed/AmazonClosed) once its captures reach the order amount, as Amazon's
  charge-permission page says ("after the total order amount has been captured").
- Closing a Closed permission answers it unchanged (like v1 CloseOrderReference).
- Pending authorizations and late captures are processed by a control route or when the simulated clock moves.
"""

from __future__ import annotations

from datetime import datetime

from payments.amazon.sim_model import (
    AUTHORIZATION_TTL,
    CAPTURE_SYNC_WINDOW,
    CHARGES_PER_PERMISSION_MAX,
    PERMISSION_TTL,
    SESSION_TTL,
    Buyer,
    SettlementEvent,
    SimCharge,
    SimError,
    SimMerchant,
    SimPermission,
    SimSession,
    headroom,
)

__all__ = [
    "CONSTRAINTS",
    "PAYMENT_INTENTS",
    "SIMULATIONS",
    "cancel_charge",
    "capture_charge",
    "close_permission",
    "complete_session",
    "constraints",
    "create_charge",
    "find_charge",
    "find_permission",
    "find_session",
    "new_session",
    "process_charges",
    "sweep",
    "update_payment_method",
    "used_amount",
]

PAYMENT_INTENTS = ("Authorize", "AuthorizeWithCapture", "Confirm")
SIMULATIONS = ("HardDeclined", "SoftDeclined", "BuyerCanceled", "PendingThenAuthorized", "PendingThenDeclined")
CONSTRAINTS = {
    "BuyerNotAssociated": "There is no buyer associated with the Checkout Session.",
    "ChargeAmountNotSet": "chargeAmount is not set.",
    "CheckoutResultReturnUrlNotSet": "checkoutResultReturnUrl is not set.",
    "PaymentIntentNotSet": "paymentIntent is not set.",
}
_DECLINE_STATUS = {"ProcessingFailure": 500}  # other declines answer 422 (error-codes.csv)


def _not_found(kind: str, object_id: str) -> SimError:
    return SimError(404, "ResourceNotFound", f"{kind} {object_id} does not exist")


def new_session(merchant: SimMerchant, environment: str, now: datetime) -> SimSession:
    merchant.check_room(merchant.sessions)
    session = SimSession(merchant.new_session_id(), environment, now, now)
    merchant.sessions[session.checkout_session_id] = session
    return session


def constraints(session: SimSession) -> list[str]:
    if session.state != "Open":
        return []
    found = []
    if session.buyer is None:
        found.append("BuyerNotAssociated")
    if session.charge_amount is None:
        found.append("ChargeAmountNotSet")
    if session.result_url is None:
        found.append("CheckoutResultReturnUrlNotSet")
    if session.payment_intent is None:
        found.append("PaymentIntentNotSet")
    return found


def find_session(merchant: SimMerchant, environment: str, session_id: str, now: datetime) -> SimSession:
    session = merchant.sessions.get(session_id)
    if session is None or session.environment != environment:
        raise _not_found("Checkout Session", session_id)
    if session.state == "Open" and now >= session.created_at + SESSION_TTL:
        session.state, session.reason_code, session.updated_at = "Canceled", "Expired", now
    return session


def complete_session(
    merchant: SimMerchant, environment: str, session_id: str, amount: int, currency: str, now: datetime
) -> SimSession:
    session = find_session(merchant, environment, session_id, now)
    if session.state == "Canceled":
        raise SimError(422, "CheckoutSessionCanceled", f"the Checkout Session was canceled ({session.reason_code})")
    if session.state != "Open":
        raise SimError(422, "InvalidCheckoutSessionStatus", f"the Checkout Session is {session.state}, not Open")
    missing = constraints(session)
    if missing:
        raise SimError(422, "InvalidCheckoutSessionStatus", f"open constraints: {', '.join(missing)}")
    if (amount, currency) != (session.charge_amount, session.currency):
        raise SimError(409, "AmountMismatch", "chargeAmount differs from paymentDetails.chargeAmount")
    intent = session.payment_intent or "Confirm"
    if session.simulation == "HardDeclined" and intent != "Confirm":
        session.state, session.reason_code, session.updated_at = "Canceled", "Declined", now
        raise SimError(422, "CheckoutSessionCanceled", "the buyer's payment method was declined")
    permission = _new_permission(merchant, session, amount, currency, now)
    if intent != "Confirm":
        charge = _authorize(
            merchant,
            permission,
            now,
            amount,
            capture_now=intent == "AuthorizeWithCapture",
            can_pend=session.can_handle_pending,
            decline=None,
            labels=(session.soft_descriptor, session.merchant_reference_id),
        )
        session.charge_id = charge.charge_id
    session.state, session.updated_at = "Completed", now
    session.charge_permission_id = permission.charge_permission_id
    return session


def _new_permission(
    merchant: SimMerchant, session: SimSession, amount: int, currency: str, now: datetime
) -> SimPermission:
    merchant.check_room(merchant.permissions)
    order_amount = session.total_order_amount or amount
    permission = SimPermission(
        charge_permission_id=merchant.new_permission_id(session.environment),
        environment=session.environment,
        created_at=now,
        updated_at=now,
        expires_at=now + PERMISSION_TTL,
        currency=currency,
        order_amount=order_amount,
        amount_limit=order_amount + headroom(order_amount, currency),
        buyer=session.buyer or Buyer(),
        merchant_reference_id=session.merchant_reference_id,
        store_name=session.store_name,
        simulation=session.simulation,
    )
    merchant.permissions[permission.charge_permission_id] = permission
    return permission


def find_permission(merchant: SimMerchant, environment: str, permission_id: str, now: datetime) -> SimPermission:
    permission = merchant.permissions.get(permission_id)
    if permission is None or permission.environment != environment:
        raise _not_found("Charge Permission", permission_id)
    if permission.state != "Closed" and now >= permission.expires_at:
        _set_permission(merchant, permission, "Closed", ["Expired"], now)
    return permission


def _set_permission(
    merchant: SimMerchant, permission: SimPermission, state: str, reasons: list[str], now: datetime
) -> None:
    permission.state, permission.reasons, permission.updated_at = state, reasons, now
    merchant.notify("CHARGE_PERMISSION", permission.charge_permission_id, permission.charge_permission_id)


def used_amount(merchant: SimMerchant, permission: SimPermission) -> int:
    """What the permission's charges hold: authorized amounts, or capture amounts once capturing."""
    total = 0
    for charge_id in permission.charge_ids:
        charge = merchant.charges[charge_id]
        if charge.state in ("AuthorizationInitiated", "Authorized"):
            total += charge.amount
        elif charge.state in ("CaptureInitiated", "Captured"):
            total += charge.captured or 0
    return total


def _captured_amount(merchant: SimMerchant, permission: SimPermission) -> int:
    charges = (merchant.charges[charge_id] for charge_id in permission.charge_ids)
    return sum(c.captured or 0 for c in charges if c.state == "Captured")


def close_permission(
    merchant: SimMerchant, environment: str, permission_id: str, cancel_pending: bool, now: datetime
) -> SimPermission:
    permission = find_permission(merchant, environment, permission_id, now)
    if permission.state == "Closed":
        return permission
    if cancel_pending:
        for charge_id in permission.charge_ids:
            charge = merchant.charges[charge_id]
            if charge.state in ("AuthorizationInitiated", "Authorized"):
                _set_charge(merchant, charge, "Canceled", "ChargePermissionCanceled", now)
    _set_permission(merchant, permission, "Closed", ["MerchantClosed"], now)
    return permission


def update_payment_method(merchant: SimMerchant, permission_id: str, now: datetime) -> SimPermission:
    """The buyer picked another payment method on Amazon's page: NonChargeable -> Chargeable."""
    permission = merchant.permissions.get(permission_id)
    if permission is None:
        raise _not_found("Charge Permission", permission_id)
    if permission.state != "NonChargeable":
        raise SimError(422, "InvalidChargePermissionStatus", f"the Charge Permission is {permission.state}")
    permission.simulation = None
    _set_permission(merchant, permission, "Chargeable", [], now)
    return permission


def find_charge(merchant: SimMerchant, environment: str, charge_id: str, now: datetime) -> SimCharge:
    charge = merchant.charges.get(charge_id)
    if charge is None or charge.environment != environment:
        raise _not_found("Charge", charge_id)
    if charge.state == "Authorized" and charge.expires_at is not None and now >= charge.expires_at:
        _set_charge(merchant, charge, "Canceled", "ExpiredUnused", now)
    return charge


def _set_charge(merchant: SimMerchant, charge: SimCharge, state: str, reason: str | None, now: datetime) -> None:
    charge.state, charge.reason_code, charge.updated_at = state, reason, now
    merchant.notify("CHARGE", charge.charge_id, charge.charge_permission_id)


def create_charge(
    merchant: SimMerchant,
    environment: str,
    permission_id: str,
    amount: int,
    currency: str,
    *,
    capture_now: bool,
    can_pend: bool,
    labels: tuple[str | None, str | None],
    now: datetime,
) -> SimCharge:
    """Create Charge; `labels` = (softDescriptor, merchantMetadata.merchantReferenceId)."""
    permission = find_permission(merchant, environment, permission_id, now)
    if permission.state != "Chargeable":
        raise SimError(422, "InvalidChargePermissionStatus", f"the Charge Permission is {permission.state}")
    if currency != permission.currency:
        raise SimError(400, "CurrencyMismatch", f"the Charge Permission is in {permission.currency}")
    if len(permission.charge_ids) >= CHARGES_PER_PERMISSION_MAX:
        raise SimError(422, "TransactionCountExceeded", f"{CHARGES_PER_PERMISSION_MAX} charges were created")
    if used_amount(merchant, permission) + amount > permission.amount_limit:
        raise SimError(400, "TransactionAmountExceeded", "charges would exceed limits.amountLimit")
    decline = merchant.armed_declines.pop("CreateCharge", None)
    charge = _authorize(
        merchant, permission, now, amount, capture_now=capture_now, can_pend=can_pend, decline=decline, labels=labels
    )
    if charge.state == "Declined" and charge.reason_code is not None:
        status = _DECLINE_STATUS.get(charge.reason_code, 422)
        raise SimError(status, charge.reason_code, f"the authorization was declined ({charge.charge_id})")
    return charge


def _authorize(
    merchant: SimMerchant,
    permission: SimPermission,
    now: datetime,
    amount: int,
    *,
    capture_now: bool,
    can_pend: bool,
    decline: str | None,
    labels: tuple[str | None, str | None],
) -> SimCharge:
    """One authorization on the permission's instrument (its test simulation is used up by the first one)."""
    merchant.check_room(merchant.charges)
    simulation, permission.simulation = permission.simulation, None
    charge = SimCharge(
        charge_id=merchant.child_id(permission.charge_permission_id, "C"),
        charge_permission_id=permission.charge_permission_id,
        environment=permission.environment,
        amount=amount,
        currency=permission.currency,
        created_at=now,
        updated_at=now,
        state="Authorized",
        capture_now=capture_now,
        soft_descriptor=labels[0],
        merchant_reference_id=labels[1],
    )
    merchant.charges[charge.charge_id] = charge
    permission.charge_ids.append(charge.charge_id)
    reason = decline or (simulation if simulation in ("SoftDeclined", "HardDeclined") else None)
    if reason is None and simulation == "PendingThenDeclined" and not can_pend:
        reason = "HardDeclined"
    if reason is not None:
        _set_charge(merchant, charge, "Declined", reason, now)
        if reason in ("SoftDeclined", "HardDeclined"):
            _set_permission(merchant, permission, "NonChargeable", ["PaymentMethodInvalid"], now)
    elif simulation in ("PendingThenAuthorized", "PendingThenDeclined") and can_pend:
        charge.pending_outcome = "Declined" if simulation == "PendingThenDeclined" else "Authorized"
        _set_charge(merchant, charge, "AuthorizationInitiated", None, now)
    else:
        _authorized(merchant, charge, now)
    return charge


def _authorized(merchant: SimMerchant, charge: SimCharge, now: datetime) -> None:
    charge.authorized_at, charge.expires_at = now, now + AUTHORIZATION_TTL
    if charge.capture_now:
        _captured(merchant, charge, charge.amount, now)
    else:
        _set_charge(merchant, charge, "Authorized", None, now)


def _captured(merchant: SimMerchant, charge: SimCharge, amount: int, now: datetime) -> None:
    charge.captured = amount
    _set_charge(merchant, charge, "Captured", None, now)
    merchant.events.append(
        SettlementEvent(
            now, "Capture", charge.charge_id, charge.merchant_reference_id or "", charge.charge_permission_id, amount
        )
    )
    permission = merchant.permissions[charge.charge_permission_id]
    if permission.state != "Closed" and _captured_amount(merchant, permission) >= permission.order_amount:
        _set_permission(merchant, permission, "Closed", ["AmazonClosed"], now)


def capture_charge(
    merchant: SimMerchant, environment: str, charge_id: str, amount: int, currency: str, now: datetime
) -> SimCharge:
    charge = find_charge(merchant, environment, charge_id, now)
    if charge.state != "Authorized":
        raise SimError(422, "InvalidChargeStatus", f"the Charge is {charge.state}, not Authorized")
    if currency != charge.currency:
        raise SimError(400, "CurrencyMismatch", f"the Charge is in {charge.currency}")
    if amount > charge.amount:
        raise SimError(400, "TransactionAmountExceeded", "captureAmount exceeds chargeAmount")
    decline = merchant.armed_declines.pop("Capture", None)
    if decline is not None:
        _set_charge(merchant, charge, "Declined", decline, now)
        raise SimError(_DECLINE_STATUS.get(decline, 422), decline, f"the capture was declined ({charge_id})")
    authorized_at = charge.authorized_at or charge.created_at
    if now - authorized_at <= CAPTURE_SYNC_WINDOW:
        _captured(merchant, charge, amount, now)
    else:
        charge.captured = amount
        _set_charge(merchant, charge, "CaptureInitiated", None, now)
    return charge


def cancel_charge(merchant: SimMerchant, environment: str, charge_id: str, now: datetime) -> SimCharge:
    charge = find_charge(merchant, environment, charge_id, now)
    if charge.state not in ("AuthorizationInitiated", "Authorized"):
        raise SimError(422, "InvalidChargeStatus", f"the Charge is {charge.state}; only open ones can be canceled")
    _set_charge(merchant, charge, "Canceled", "MerchantCanceled", now)
    return charge


def process_charges(merchant: SimMerchant, now: datetime) -> list[SimCharge]:
    """Amazon finishes what was pending: AuthorizationInitiated and CaptureInitiated charges; -> those changed."""
    changed = []
    for charge in list(merchant.charges.values()):
        if charge.state == "AuthorizationInitiated":
            if charge.pending_outcome == "Declined":
                _set_charge(merchant, charge, "Declined", "HardDeclined", now)
                permission = merchant.permissions[charge.charge_permission_id]
                if permission.state == "Chargeable":
                    _set_permission(merchant, permission, "NonChargeable", ["PaymentMethodInvalid"], now)
            else:
                _authorized(merchant, charge, now)
            changed.append(charge)
        elif charge.state == "CaptureInitiated":
            _captured(merchant, charge, charge.captured or charge.amount, now)
            changed.append(charge)
    return changed


def sweep(merchant: SimMerchant, now: datetime) -> None:
    """Apply the lifetimes to every object (after the simulated clock moved)."""
    for session in list(merchant.sessions.values()):
        find_session(merchant, session.environment, session.checkout_session_id, now)
    for permission in list(merchant.permissions.values()):
        find_permission(merchant, permission.environment, permission.charge_permission_id, now)
    for charge in list(merchant.charges.values()):
        find_charge(merchant, charge.environment, charge.charge_id, now)
