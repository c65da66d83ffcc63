"""The pure rules of an order's life at Amazon Pay: its status from its facts, payment intents, idempotency keys,
and Amazon's refusals as problems."""

from __future__ import annotations

import pytest

from ledger.errors import Conflict, InvariantViolation, NotFound, Unprocessable
from payments.amazon.client import AmazonPayError
from payments.lifecycle import ChargeFact, OrderFacts, idempotency_key, intent_matches, order_status, payment_intent
from payments.refusals import GatewayUnavailable, amazon_refused


def facts(
    *charges: ChargeFact, items_open: int = 2, items_invoiced: int = 0, refunded: int = 0, **extra: object
) -> OrderFacts:
    values: dict[str, object] = {
        "items_open": items_open,
        "items_invoiced": items_invoiced,
        "charges": list(charges),
        "refunded": refunded,
        "declined_at_checkout": None,
        "charge_permission_state": None,
        "charge_permission_reason": None,
    }
    return OrderFacts(**{**values, **extra})  # type: ignore[arg-type]


AUTHORIZED = ChargeFact("Authorized", None, 0)
CAPTURED = ChargeFact("Captured", None, 10_000)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (facts(), ("pending", None)),
        (facts(ChargeFact("AuthorizationInitiated", None, 0)), ("authorization_pending", None)),
        (facts(AUTHORIZED), ("authorized", None)),
        (facts(ChargeFact("Canceled", "ExpiredUnused", 0)), ("authorization_expired", "ExpiredUnused")),
        (facts(CAPTURED), ("captured", None)),
        (facts(CAPTURED, items_open=0, items_invoiced=2), ("invoiced", None)),
        (facts(CAPTURED, items_open=0, items_invoiced=2, refunded=10_000), ("refunded", None)),
        (facts(ChargeFact("Declined", "HardDeclined", 0)), ("declined", "HardDeclined")),
        (facts(declined_at_checkout="BuyerCanceled"), ("declined", "BuyerCanceled")),
        (facts(AUTHORIZED, items_open=0, items_invoiced=0), ("cancelled", None)),
        # a soft decline that the buyer fixed: the new charge counts, not the old decline
        (facts(ChargeFact("Declined", "SoftDeclined", 0), CAPTURED), ("captured", None)),
        # Amazon closes a charge permission charged in full: still captured, items to ship
        (
            facts(CAPTURED, charge_permission_state="Closed", charge_permission_reason="AmazonClosed"),
            ("captured", None),
        ),
        # closed with nothing captured: Amazon will not charge this order
        (facts(charge_permission_state="Closed", charge_permission_reason="Expired"), ("closed", "Expired")),
    ],
)
def test_the_status_follows_the_facts(order: OrderFacts, expected: tuple[str, str | None]) -> None:
    assert order_status(order) == expected


def test_intents() -> None:
    assert payment_intent("one_step") == "AuthorizeWithCapture"
    assert payment_intent("two_step") == "Authorize"
    assert intent_matches("Confirm", "one_step")
    assert intent_matches("Confirm", "two_step")
    assert not intent_matches("Authorize", "one_step")
    assert not intent_matches(None, "two_step")


def test_idempotency_keys_stay_within_amazons_32_characters() -> None:
    assert idempotency_key(1001, "o" * 20, "i999c") == "1001-" + "o" * 20 + "-i999c"
    assert len(idempotency_key(9999, "o" * 20, "i500c")) <= 32
    with pytest.raises(InvariantViolation):
        idempotency_key(1001, "o" * 20, "toolong")
    with pytest.raises(InvariantViolation):
        idempotency_key(1001, "a b", "s")


@pytest.mark.parametrize(
    ("status", "reason", "kind", "code"),
    [
        (422, "InvalidChargePermissionStatus", Conflict, "amazon_pay_invalid_charge_permission_status"),
        (422, "InvalidChargeStatus", Conflict, "amazon_pay_invalid_charge_status"),
        (409, "AmountMismatch", Conflict, "amazon_pay_amount_mismatch"),
        (400, "TransactionAmountExceeded", Unprocessable, "amazon_pay_transaction_amount_exceeded"),
        (422, "SoftDeclined", Unprocessable, "amazon_pay_soft_declined"),
        (404, "ResourceNotFound", NotFound, "amazon_pay_resource_not_found"),
        (403, "InvalidRequestSignature", Conflict, "amazon_pay_access_refused"),
        (401, "UnauthorizedAccess", Conflict, "amazon_pay_access_refused"),
    ],
)
def test_amazons_refusals_become_problems_naming_the_reason(status: int, reason: str, kind: type, code: str) -> None:
    problem = amazon_refused(AmazonPayError(status, reason, "as Amazon said"), "the capture of charge X")
    assert isinstance(problem, kind)
    assert problem.code == code
    assert reason in problem.detail
    assert "the capture of charge X" in problem.detail


def test_amazon_out_of_reach_is_a_502_with_retry_after() -> None:
    problem = amazon_refused(AmazonPayError(0, "Unreachable", "timeout", reachable=False), "a call")
    assert isinstance(problem, GatewayUnavailable)
    assert (problem.status, problem.headers) == (502, {"Retry-After": "30"})
