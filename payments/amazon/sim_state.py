"""The Amazon Pay simulator's model: order references, authorizations, captures, refunds, chargebacks.

Follows the v1 state machines of reference/amazon-pay.md §3 and the limits of §1: authorizations up to
the order total plus min(15 %, 75); one capture closes its authorization (MaxCapturesProcessed), at
most the authorized amount, within the validity (30 days, 2 in sandbox); refunds are Pending until
processed, at most 10 per capture and within captured + min(15 %, 75) with chargebacks counted.
Reference ids are idempotency keys: the same id with the same parameters returns the same object, with
other parameters DuplicateReferenceId. Declines are triggered as in Amazon's sandbox, by a note
`{"SandboxSimulation": {"State": "Declined", "ReasonCode": "..."}}`, or armed for the next call.
Every money movement becomes a settlement event for the next settlement report.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "CAPTURE_FEE_FIXED_MINOR",
    "CAPTURE_FEE_PERMILLE",
    "CHARGEBACK_FEE_MINOR",
    "RESERVE_PERCENT",
    "Seller",
    "SettlementEvent",
    "SimAuthorization",
    "SimCapture",
    "SimError",
    "SimOrder",
    "SimRefund",
]


# the simulator's settlement terms (per seller where registered otherwise)
CAPTURE_FEE_PERMILLE = 19  # 1.9 %, half-up
CAPTURE_FEE_FIXED_MINOR = 35
CHARGEBACK_FEE_MINOR = 1500
RESERVE_PERCENT = 5


class SimError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def headroom_extra(amount: int, decimals: int) -> int:
    """Amazon's allowance above an amount: min(15 %, 75 currency units)."""
    return min(amount * 15 // 100, 75 * (1, 10, 100, 1_000, 10_000)[decimals])


def simulated_decline(note: str | None) -> str | None:
    """The ReasonCode of a sandbox simulation note asking for a decline, if any."""
    if not note or "SandboxSimulation" not in note:
        return None
    try:
        simulation = json.loads(note)["SandboxSimulation"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(simulation.get("ReasonCode", "AmazonRejected")) if simulation.get("State") == "Declined" else None


@dataclass
class SimOrder:
    order_reference_id: str
    amount: int = 0
    currency: str = "EUR"
    seller_order_id: str = ""
    state: str = "Draft"
    reason: str | None = None
    authorization_ids: list[str] = field(default_factory=list)


@dataclass
class SimAuthorization:
    authorization_id: str
    order_reference_id: str
    reference_id: str
    amount: int
    currency: str
    capture_now: bool
    state: str
    reason: str | None
    created_at: datetime
    expires_at: datetime
    captured: int = 0
    capture_ids: list[str] = field(default_factory=list)


@dataclass
class SimCapture:
    capture_id: str
    authorization_id: str
    order_reference_id: str
    reference_id: str
    amount: int
    currency: str
    state: str
    reason: str | None
    created_at: datetime
    refunded: int = 0  # completed refunds
    pending_refunds: int = 0
    chargebacks: int = 0
    refund_ids: list[str] = field(default_factory=list)


@dataclass
class SimRefund:
    refund_id: str
    capture_id: str
    order_reference_id: str
    reference_id: str
    amount: int
    currency: str
    state: str
    reason: str | None
    created_at: datetime
    decline_reason: str | None = None
    refund_type: str = "SellerInitiated"


@dataclass(frozen=True)
class SettlementEvent:
    posted_at: datetime
    type: str  # Capture | Refund | Chargeback
    transaction_id: str
    seller_reference_id: str
    order_reference_id: str
    amount: int  # signed, from the merchant's view


@dataclass
class Seller:
    """One merchant's Amazon Pay account in the simulator."""

    seller_id: str
    mws_auth_token: str
    decimals: int = 2
    sandbox_validity: bool = False
    orders: dict[str, SimOrder] = field(default_factory=dict)
    authorizations: dict[str, SimAuthorization] = field(default_factory=dict)
    captures: dict[str, SimCapture] = field(default_factory=dict)
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    by_reference: dict[str, tuple[str, tuple[object, ...]]] = field(default_factory=dict)
    armed_declines: dict[str, str] = field(default_factory=dict)  # operation -> reason code
    chargebacks: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (capture id, amount)
    events: list[SettlementEvent] = field(default_factory=list)

    # --- helpers --------------------------------------------------------------------------------------
    def _reference(self, reference_id: str, params: tuple[object, ...]) -> str | None:
        known = self.by_reference.get(reference_id)
        if known is None:
            return None
        if known[1] != params:
            raise SimError("DuplicateReferenceId", f"reference id {reference_id} was used with other parameters")
        return known[0]

    def _decline(self, operation: str, note: str | None) -> str | None:
        return simulated_decline(note) or self.armed_declines.pop(operation, None)

    def order(self, order_reference_id: str) -> SimOrder:
        order = self.orders.get(order_reference_id)
        if order is None:
            raise SimError("InvalidOrderReferenceId", f"unknown order reference {order_reference_id}")
        return order

    def authorization(self, authorization_id: str, now: datetime) -> SimAuthorization:
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise SimError("InvalidAuthorizationId", f"unknown authorization {authorization_id}")
        if auth.state == "Open" and now >= auth.expires_at:
            auth.state, auth.reason = "Closed", "ExpiredUnused"
        return auth

    def capture(self, capture_id: str) -> SimCapture:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise SimError("InvalidCaptureId", f"unknown capture {capture_id}")
        return capture

    # --- order reference ------------------------------------------------------------------------------
    def set_details(self, order_reference_id: str, amount: int, currency: str, seller_order_id: str) -> SimOrder:
        order = self.orders.setdefault(order_reference_id, SimOrder(order_reference_id))
        if order.state != "Draft":
            raise SimError("InvalidOrderReferenceStatus", f"order reference is {order.state}, not Draft")
        order.amount, order.currency, order.seller_order_id = amount, currency, seller_order_id
        return order

    def confirm(self, order_reference_id: str) -> SimOrder:
        order = self.order(order_reference_id)
        if order.state == "Draft":
            if not order.amount:
                raise SimError("InvalidOrderReferenceStatus", "set the order total before confirming")
            order.state = "Open"
        elif order.state not in ("Open",):
            raise SimError("InvalidOrderReferenceStatus", f"order reference is {order.state}")
        return order

    def set_order_state(self, order_reference_id: str, state: str, reason: str | None) -> SimOrder:
        """What Amazon does on its own: suspend (payment method declined), close, cancel, reopen."""
        if state not in ("Open", "Suspended", "Closed", "Canceled"):
            raise SimError("InvalidParameterValue", f"unknown order reference state {state}")
        order = self.order(order_reference_id)
        if order.state in ("Closed", "Canceled"):
            raise SimError("InvalidOrderReferenceStatus", f"order reference is {order.state}")
        order.state, order.reason = state, reason
        return order

    def close_order(self, order_reference_id: str) -> SimOrder:
        order = self.order(order_reference_id)
        if order.state in ("Open", "Suspended"):
            order.state, order.reason = "Closed", "SellerClosed"
        return order

    # --- authorize and capture ------------------------------------------------------------------------
    def authorize(
        self,
        order_reference_id: str,
        reference_id: str,
        amount: int,
        currency: str,
        capture_now: bool,
        note: str | None,
        now: datetime,
    ) -> SimAuthorization:
        params = ("authorize", order_reference_id, amount, currency, capture_now)
        known = self._reference(reference_id, params)
        if known is not None:
            return self.authorizations[known]
        order = self.order(order_reference_id)
        if order.state != "Open":
            raise SimError("InvalidOrderReferenceStatus", f"order reference is {order.state}, not Open")
        # what is charged or still chargeable: a closed authorization counts with what it captured
        auths = [self.authorizations[a] for a in order.authorization_ids]
        authorized = sum(a.captured if a.state == "Closed" else a.amount for a in auths if a.state != "Declined")
        if authorized + amount > order.amount + headroom_extra(order.amount, self.decimals):
            raise SimError("TransactionAmountExceeded", "authorizations exceed the order total plus min(15 %, 75)")
        auth_id = f"{order_reference_id}-A{len(self.authorizations) + 1:06d}"
        validity = timedelta(days=2 if self.sandbox_validity else 30)
        auth = SimAuthorization(
            auth_id, order_reference_id, reference_id, amount, currency, capture_now, "Open", None, now, now + validity
        )
        declined = self._decline("Authorize", note)
        if declined:
            auth.state, auth.reason = "Declined", declined
            if declined == "InvalidPaymentMethod":
                order.state, order.reason = "Suspended", declined
        self.authorizations[auth_id] = auth
        self.by_reference[reference_id] = (auth_id, params)
        order.authorization_ids.append(auth_id)
        if capture_now and auth.state == "Open":
            self._complete_capture(auth, f"{reference_id}-c", amount, now)
        return auth

    def capture_funds(
        self, authorization_id: str, reference_id: str, amount: int, currency: str, note: str | None, now: datetime
    ) -> SimCapture:
        params = ("capture", authorization_id, amount, currency)
        known = self._reference(reference_id, params)
        if known is not None:
            return self.captures[known]
        auth = self.authorization(authorization_id, now)
        if auth.state != "Open":
            raise SimError("InvalidAuthorizationStatus", f"authorization is {auth.state} ({auth.reason})")
        if amount > auth.amount:
            raise SimError("TransactionAmountExceeded", "capture exceeds the authorized amount")
        declined = self._decline("Capture", note)
        if declined:
            capture = SimCapture(
                f"{auth.order_reference_id}-C{len(self.captures) + 1:06d}",
                authorization_id,
                auth.order_reference_id,
                reference_id,
                amount,
                currency,
                "Declined",
                declined,
                now,
            )
            self.captures[capture.capture_id] = capture
            self.by_reference[reference_id] = (capture.capture_id, params)
            return capture
        capture = self._complete_capture(auth, reference_id, amount, now)
        self.by_reference[reference_id] = (capture.capture_id, params)
        return capture

    def _complete_capture(self, auth: SimAuthorization, reference_id: str, amount: int, now: datetime) -> SimCapture:
        capture = SimCapture(
            f"{auth.order_reference_id}-C{len(self.captures) + 1:06d}",
            auth.authorization_id,
            auth.order_reference_id,
            reference_id,
            amount,
            auth.currency,
            "Completed",
            None,
            now,
        )
        self.captures[capture.capture_id] = capture
        auth.captured, auth.state, auth.reason = amount, "Closed", "MaxCapturesProcessed"
        auth.capture_ids.append(capture.capture_id)
        self.events.append(
            SettlementEvent(now, "Capture", capture.capture_id, reference_id, auth.order_reference_id, amount)
        )
        return capture

    def close_authorization(self, authorization_id: str, now: datetime) -> SimAuthorization:
        auth = self.authorization(authorization_id, now)
        if auth.state in ("Open", "Pending"):
            auth.state, auth.reason = "Closed", "SellerClosed"
        return auth

    # --- refunds and chargebacks ----------------------------------------------------------------------
    def refund(
        self, capture_id: str, reference_id: str, amount: int, currency: str, note: str | None, now: datetime
    ) -> SimRefund:
        params = ("refund", capture_id, amount, currency)
        known = self._reference(reference_id, params)
        if known is not None:
            return self.refunds[known]
        capture = self.capture(capture_id)
        if capture.state not in ("Completed", "Closed"):
            raise SimError("InvalidCaptureStatus", f"capture is {capture.state}")
        if len(capture.refund_ids) >= 10:
            raise SimError("InvalidCaptureStatus", "10 refunds were processed for this capture (MaxRefundsProcessed)")
        used = capture.refunded + capture.pending_refunds + capture.chargebacks
        if used + amount > capture.amount + headroom_extra(capture.amount, self.decimals):
            raise SimError(
                "TransactionAmountExceeded", "refunds and chargebacks exceed the captured amount plus min(15 %, 75)"
            )
        refund = SimRefund(
            f"{capture.order_reference_id}-R{len(self.refunds) + 1:06d}",
            capture_id,
            capture.order_reference_id,
            reference_id,
            amount,
            currency,
            "Pending",
            None,
            now,
            decline_reason=self._decline("Refund", note),
        )
        self.refunds[refund.refund_id] = refund
        self.by_reference[reference_id] = (refund.refund_id, params)
        capture.refund_ids.append(refund.refund_id)
        capture.pending_refunds += amount
        return refund

    def process_refunds(self, now: datetime) -> list[SimRefund]:
        """Move every Pending refund to Completed (or Declined, when simulated); returns those changed."""
        changed = []
        for refund in self.refunds.values():
            if refund.state != "Pending":
                continue
            capture = self.captures[refund.capture_id]
            capture.pending_refunds -= refund.amount
            if refund.decline_reason:
                refund.state, refund.reason = "Declined", refund.decline_reason
            else:
                refund.state = "Completed"
                capture.refunded += refund.amount
                self.events.append(
                    SettlementEvent(
                        now, "Refund", refund.refund_id, refund.reference_id, refund.order_reference_id, -refund.amount
                    )
                )
            changed.append(refund)
        return changed

    def chargeback(self, capture_id: str, amount: int, now: datetime) -> tuple[str, SimCapture]:
        capture = self.capture(capture_id)
        used = capture.refunded + capture.pending_refunds + capture.chargebacks
        if capture.state not in ("Completed", "Closed") or used + amount > capture.amount + headroom_extra(
            capture.amount, self.decimals
        ):
            raise SimError("InvalidChargeback", "chargeback exceeds what can be taken back from this capture")
        capture.chargebacks += amount
        chargeback_id = "C" + secrets.token_hex(6).upper()
        self.chargebacks[chargeback_id] = (capture.capture_id, amount)
        self.events.append(
            SettlementEvent(now, "Chargeback", chargeback_id, capture.reference_id, capture.order_reference_id, -amount)
        )
        return chargeback_id, capture

    def reverse_chargeback(self, chargeback_id: str, now: datetime) -> int:
        """The merchant won the representment: the amount comes back (a positive Chargeback row)."""
        if chargeback_id not in self.chargebacks:
            raise SimError("InvalidChargeback", f"unknown chargeback {chargeback_id}")
        capture_id, amount = self.chargebacks.pop(chargeback_id)
        capture = self.captures[capture_id]
        capture.chargebacks -= amount
        self.events.append(
            SettlementEvent(now, "Chargeback", chargeback_id, capture.reference_id, capture.order_reference_id, amount)
        )
        return amount
