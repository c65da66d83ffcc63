"""The pure rules of an order's life at Amazon Pay: its status, the payment intent, and idempotency keys.

- **Status.** One word a payment service or an accountant can act on, computed from the order's facts (items,
  charges, refunds, the charge permission) by `order_status`, never set by hand. Precedence, first match wins:
  `declined` (the authorization was declined, nothing captured), `cancelled` (every item cancelled), `refunded`
  (all that was captured went back), `invoiced` (every item not cancelled is invoiced), `captured` (money taken,
  items still to ship; Amazon closes a one-step order's charge permission once it is charged in full), `closed`
  (Amazon's charge permission is closed and nothing was captured: Amazon will not charge this order),
  `authorized`, `authorization_pending` (Amazon is still deciding: AuthorizationInitiated),
  `authorization_expired` (30 days passed unused; the next invoice authorizes again), `pending` (not yet at
  Amazon: the same request again continues).
- **Payment intent.** One-step orders are authorized and captured at checkout (`AuthorizeWithCapture`), two-step
  orders authorized (`Authorize`) and captured per shipment. A checkout session completed with `Confirm` gets its
  charge from Kontor afterwards.
- **Idempotency keys** for Amazon (at most 32 characters of `[A-Za-z0-9_-]`, unique per Amazon merchant account,
  developer.amazon.com/docs/amazon-pay-api-v2/idempotency.html) are derived from Kontor's own ids, so a retry after
  a crash repeats the same call: `<business>-<order>-<what>` (order references are at most 20 characters).
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import invariant

__all__ = [
    "ORDER_STATUSES",
    "ChargeFact",
    "OrderFacts",
    "idempotency_key",
    "intent_matches",
    "order_status",
    "payment_intent",
]

ORDER_STATUSES = (
    "pending",
    "authorization_pending",
    "authorized",
    "authorization_expired",
    "captured",
    "invoiced",
    "refunded",
    "declined",
    "cancelled",
    "closed",
)
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class ChargeFact:
    state: str  # Amazon's charge state
    reason: str | None
    captured: int


@dataclass(frozen=True, slots=True)
class OrderFacts:
    items_open: int
    items_invoiced: int
    charges: Sequence[ChargeFact]  # oldest first
    refunded: int  # completed refunds
    declined_at_checkout: str | None  # the checkout session's reason when Amazon canceled it
    charge_permission_state: str | None
    charge_permission_reason: str | None


def order_status(facts: OrderFacts) -> tuple[str, str | None]:
    """(status, reason) of an order; see the module docstring for the precedence."""
    captured = sum(c.captured for c in facts.charges)
    states = {c.state for c in facts.charges}
    last = facts.charges[-1] if facts.charges else None
    last_declined = last is not None and last.state == "Declined"
    declined = facts.declined_at_checkout or (last.reason if last is not None and last_declined else None)
    expired = any(c.state == "Canceled" and c.reason == "ExpiredUnused" for c in facts.charges)
    rules: list[tuple[bool, str, str | None]] = [
        (captured == 0 and (facts.declined_at_checkout is not None or last_declined), "declined", declined),
        (facts.items_open == 0 and facts.items_invoiced == 0, "cancelled", None),
        (captured > 0 and facts.refunded >= captured, "refunded", None),
        (facts.items_open == 0, "invoiced", None),
        (captured > 0, "captured", None),
        (facts.charge_permission_state == "Closed", "closed", facts.charge_permission_reason),
        ("Authorized" in states, "authorized", None),
        ("AuthorizationInitiated" in states, "authorization_pending", None),
        (expired, "authorization_expired", "ExpiredUnused"),
    ]
    return next(((status, reason) for holds, status, reason in rules if holds), ("pending", None))


def payment_intent(execution: str) -> str:
    """Amazon's paymentIntent for a business code's payment execution (one_step | two_step)."""
    return "AuthorizeWithCapture" if execution == "one_step" else "Authorize"


def intent_matches(intent: str | None, execution: str) -> bool:
    """Whether a checkout session's paymentIntent fits the execution; `Confirm` fits both (Kontor charges)."""
    return intent in (payment_intent(execution), "Confirm")


def idempotency_key(business: int, order_ref: str, what: str) -> str:
    """`<business>-<order>-<what>`, e.g. `1001-order-42-i2` for the charge of the order's second invoice."""
    key = f"{business}-{order_ref}-{what}"
    invariant(_KEY.match(key) is not None, f"idempotency key {key!r} is not 1-32 characters of [A-Za-z0-9_-]")
    return key
