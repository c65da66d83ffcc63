"""The Amazon Pay v2 client against the simulator over real HTTP: checkout, charges, idempotency, signatures, retries.

The simulator implements Amazon's documented rules (payments/amazon/sim_state.py and sim_auth.py say which
and where from); these tests pin the parts Kontor relies on. Refunds, disputes, reports and delegation:
test_amazon_postsale.py.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.amazon.client import AmazonPayClient, AmazonPayError, Amount, Credentials, check_idempotency_key
from tests.conftest import free_port
from tests.integration.amazon_v2 import Amazon, served_simulator

EUR = "EUR"


def eur(minor: int) -> Amount:
    return Amount(minor, EUR)


def key() -> str:
    return "k-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
async def amazon() -> AsyncIterator[Amazon]:
    async with served_simulator() as served:
        yield served


@pytest.fixture
async def creds(amazon: Amazon) -> Credentials:
    return await amazon.merchant()


async def test_one_step_checkout_captures_and_closes_the_permission(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(11900), payment_intent="AuthorizeWithCapture")
    assert (session.state, session.charge_permission_id is not None, session.charge_id is not None) == (
        "Completed",
        True,
        True,
    )
    assert session.charge_id
    assert session.charge_permission_id
    charge = await amazon.client.get_charge(creds, session.charge_id)
    assert (charge.state, charge.capture_amount, charge.refunded_amount) == ("Captured", eur(11900), eur(0))
    permission = await amazon.client.get_charge_permission(creds, session.charge_permission_id)
    assert (permission.state, permission.reasons) == ("Closed", ("AmazonClosed",))
    assert permission.amount_limit == eur(11900 + 1785)  # + min(15 %, 75 EUR)


async def test_two_step_authorize_then_capture(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(10000), merchant_reference_id="order-7")
    assert session.charge_id
    assert session.charge_permission_id
    charge = await amazon.client.get_charge(creds, session.charge_id)
    assert (charge.state, charge.charge_amount, charge.capture_amount) == ("Authorized", eur(10000), None)
    assert charge.expires_at
    assert charge.created_at
    assert charge.expires_at - charge.created_at == timedelta(days=30)
    with pytest.raises(AmazonPayError) as too_much:
        await amazon.client.capture_charge(creds, charge.charge_id, eur(10001), idempotency_key=key())
    assert (too_much.value.status, too_much.value.reason_code) == (400, "TransactionAmountExceeded")
    captured = await amazon.client.capture_charge(
        creds, charge.charge_id, eur(6000), idempotency_key=key(), soft_descriptor="Kontor 7"
    )
    assert (captured.state, captured.capture_amount) == ("Captured", eur(6000))
    with pytest.raises(AmazonPayError) as again:
        await amazon.client.capture_charge(creds, charge.charge_id, eur(100), idempotency_key=key())
    assert (again.value.status, again.value.reason_code, again.value.reachable) == (422, "InvalidChargeStatus", True)
    permission = await amazon.client.get_charge_permission(creds, session.charge_permission_id)
    assert (permission.state, permission.amount_balance) == ("Chargeable", eur(10000 + 1500 - 6000))


async def test_complete_checks_amount_state_and_replays_only_through_idempotency(
    amazon: Amazon, creds: Credentials
) -> None:
    session_id = await amazon.session(creds, "50.00")
    with pytest.raises(AmazonPayError) as mismatch:
        await amazon.client.complete_checkout_session(creds, session_id, eur(4999), idempotency_key=key())
    assert (mismatch.value.status, mismatch.value.reason_code) == (409, "AmountMismatch")
    first_key = key()
    first = await amazon.client.complete_checkout_session(creds, session_id, eur(5000), idempotency_key=first_key)
    replay = await amazon.client.complete_checkout_session(creds, session_id, eur(5000), idempotency_key=first_key)
    assert replay == first
    with pytest.raises(AmazonPayError) as done:
        await amazon.client.complete_checkout_session(creds, session_id, eur(5000), idempotency_key=key())
    assert (done.value.status, done.value.reason_code) == (422, "InvalidCheckoutSessionStatus")
    with pytest.raises(AmazonPayError) as duplicate:
        await amazon.client.complete_checkout_session(creds, session_id, eur(4000), idempotency_key=first_key)
    assert (duplicate.value.status, duplicate.value.reason_code) == (400, "DuplicateIdempotencyKey")


async def test_confirm_then_charges_within_the_limit(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(10000), payment_intent="Confirm")
    assert session.charge_id is None
    assert session.charge_permission_id
    permission_id = session.charge_permission_id
    charge_key = key()
    first = await amazon.client.create_charge(
        creds,
        permission_id,
        eur(4000),
        capture_now=True,
        can_handle_pending_authorization=False,
        idempotency_key=charge_key,
        merchant_reference_id="inv-1",
    )
    same = await amazon.client.create_charge(
        creds,
        permission_id,
        eur(4000),
        capture_now=True,
        can_handle_pending_authorization=False,
        idempotency_key=charge_key,
        merchant_reference_id="inv-1",
    )
    assert (same.charge_id, same.state) == (first.charge_id, "Captured")
    with pytest.raises(AmazonPayError) as other_body:
        await amazon.client.create_charge(
            creds, permission_id, eur(3000), capture_now=True, can_handle_pending_authorization=False,
            idempotency_key=charge_key,
        )  # fmt: skip
    assert other_body.value.reason_code == "DuplicateIdempotencyKey"
    with pytest.raises(AmazonPayError) as over:  # 4000 + 7501 > 10000 + 1500
        await amazon.client.create_charge(
            creds, permission_id, eur(7501), capture_now=False, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    assert (over.value.status, over.value.reason_code) == (400, "TransactionAmountExceeded")
    second = await amazon.client.create_charge(
        creds, permission_id, eur(6000), capture_now=True, can_handle_pending_authorization=False,
        idempotency_key=key(),
    )  # fmt: skip
    assert second.state == "Captured"
    closed = await amazon.client.get_charge_permission(creds, permission_id)
    assert (closed.state, closed.reasons) == ("Closed", ("AmazonClosed",))
    with pytest.raises(AmazonPayError) as after_close:
        await amazon.client.create_charge(
            creds, permission_id, eur(100), capture_now=False, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    assert (after_close.value.status, after_close.value.reason_code) == (422, "InvalidChargePermissionStatus")


async def test_at_most_25_charges_per_permission(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(100_000), payment_intent="Confirm")
    assert session.charge_permission_id
    for _ in range(25):
        await amazon.client.create_charge(
            creds, session.charge_permission_id, eur(100), capture_now=False, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    with pytest.raises(AmazonPayError) as exc:
        await amazon.client.create_charge(
            creds, session.charge_permission_id, eur(100), capture_now=False, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    assert (exc.value.status, exc.value.reason_code) == (422, "TransactionCountExceeded")


async def test_cancel_charge_and_close_permission(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(3000))
    assert session.charge_id
    assert session.charge_permission_id
    canceled = await amazon.client.cancel_charge(creds, session.charge_id, "buyer changed mind " * 30)
    assert (canceled.state, canceled.reason_code) == ("Canceled", "MerchantCanceled")
    with pytest.raises(AmazonPayError) as twice:
        await amazon.client.cancel_charge(creds, session.charge_id, "again")
    assert (twice.value.status, twice.value.reason_code) == (422, "InvalidChargeStatus")
    other = await amazon.checkout(creds, eur(2000))
    assert other.charge_id
    assert other.charge_permission_id
    closed = await amazon.client.close_charge_permission(
        creds, other.charge_permission_id, "order canceled", cancel_pending_charges=True
    )
    assert (closed.state, closed.reasons) == ("Closed", ("MerchantClosed",))
    assert (await amazon.client.get_charge(creds, other.charge_id)).reason_code == "ChargePermissionCanceled"
    again = await amazon.client.close_charge_permission(creds, other.charge_permission_id, "again")
    assert again.state == "Closed"


@pytest.mark.parametrize(
    ("simulation", "final"), [("PendingThenAuthorized", "Authorized"), ("PendingThenDeclined", "Declined")]
)
async def test_pending_authorization_is_settled_by_processing(
    amazon: Amazon, creds: Credentials, simulation: str, final: str
) -> None:
    session = await amazon.checkout(creds, eur(2500), simulation=simulation, can_handle_pending_authorization=True)
    assert session.charge_id
    pending = await amazon.client.get_charge(creds, session.charge_id)
    assert pending.state == "AuthorizationInitiated"
    await amazon.control("POST", "charges/process", json={"merchant_id": creds.merchant_id})
    settled = await amazon.client.get_charge(creds, session.charge_id)
    assert settled.state == final
    if final == "Declined":
        assert settled.reason_code == "HardDeclined"


async def test_soft_decline_then_payment_method_update(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(8000), payment_intent="Confirm", simulation="SoftDeclined")
    permission_id = session.charge_permission_id
    assert permission_id
    with pytest.raises(AmazonPayError) as declined:
        await amazon.client.create_charge(
            creds, permission_id, eur(8000), capture_now=True, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    assert (declined.value.status, declined.value.reason_code) == (422, "SoftDeclined")
    blocked = await amazon.client.get_charge_permission(creds, permission_id)
    assert (blocked.state, blocked.reasons) == ("NonChargeable", ("PaymentMethodInvalid",))
    body = {"merchant_id": creds.merchant_id, "charge_permission_id": permission_id}
    await amazon.control("POST", "charge-permissions/payment-method", json=body)
    assert (await amazon.client.get_charge_permission(creds, permission_id)).state == "Chargeable"
    charge = await amazon.client.create_charge(
        creds, permission_id, eur(8000), capture_now=True, can_handle_pending_authorization=False,
        idempotency_key=key(),
    )  # fmt: skip
    assert charge.state == "Captured"


async def test_hard_decline_and_buyer_cancel_end_the_session(amazon: Amazon, creds: Credentials) -> None:
    declined_id = await amazon.session(creds, "40.00", simulation="HardDeclined")
    with pytest.raises(AmazonPayError) as exc:
        await amazon.client.complete_checkout_session(creds, declined_id, eur(4000), idempotency_key=key())
    assert (exc.value.status, exc.value.reason_code) == (422, "CheckoutSessionCanceled")
    session = await amazon.client.get_checkout_session(creds, declined_id)
    assert (session.state, session.reason_code) == ("Canceled", "Declined")
    canceled_id = await amazon.session(creds, "40.00", simulation="BuyerCanceled")
    session = await amazon.client.get_checkout_session(creds, canceled_id)
    assert (session.state, session.reason_code) == ("Canceled", "BuyerCanceled")


async def test_armed_declines(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(5000), payment_intent="Confirm")
    assert session.charge_permission_id
    arm = {"merchant_id": creds.merchant_id, "operation": "CreateCharge", "reason_code": "AmazonRejected"}
    await amazon.control("POST", "declines", json=arm)
    with pytest.raises(AmazonPayError) as rejected:
        await amazon.client.create_charge(
            creds, session.charge_permission_id, eur(5000), capture_now=False, can_handle_pending_authorization=False,
            idempotency_key=key(),
        )  # fmt: skip
    assert (rejected.value.status, rejected.value.reason_code) == (422, "AmazonRejected")
    charge = await amazon.client.create_charge(
        creds, session.charge_permission_id, eur(5000), capture_now=False, can_handle_pending_authorization=False,
        idempotency_key=key(),
    )  # fmt: skip
    await amazon.control("POST", "declines", json={**arm, "operation": "Capture"})
    with pytest.raises(AmazonPayError) as capture:
        await amazon.client.capture_charge(creds, charge.charge_id, eur(5000), idempotency_key=key())
    assert capture.value.reason_code == "AmazonRejected"
    assert (await amazon.client.get_charge(creds, charge.charge_id)).state == "Declined"


async def test_late_capture_and_expiry_follow_the_clock(amazon: Amazon, creds: Credentials) -> None:
    late, idle = await amazon.checkout(creds, eur(1000)), await amazon.checkout(creds, eur(1000))
    assert late.charge_id
    assert idle.charge_id
    await amazon.control("POST", "clock", json={"days": 8})
    initiated = await amazon.client.capture_charge(creds, late.charge_id, eur(1000), idempotency_key=key())
    assert initiated.state == "CaptureInitiated"
    await amazon.control("POST", "charges/process", json={"merchant_id": creds.merchant_id})
    assert (await amazon.client.get_charge(creds, late.charge_id)).state == "Captured"
    await amazon.control("POST", "clock", json={"days": 23})
    expired = await amazon.client.get_charge(creds, idle.charge_id)
    assert (expired.state, expired.reason_code) == ("Canceled", "ExpiredUnused")


async def test_retries_on_503_and_429_then_success(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(1500))
    assert session.charge_id
    await amazon.control("POST", "failures", json={"count": 2, "status": 503})
    await amazon.control("POST", "failures", json={"count": 1, "status": 429, "retry_after_s": 0})
    capture_key = key()
    charge = await amazon.client.capture_charge(creds, session.charge_id, eur(1500), idempotency_key=capture_key)
    assert charge.state == "Captured"
    await amazon.control("POST", "failures", json={"count": 4, "status": 503})
    with pytest.raises(AmazonPayError) as gave_up:
        await amazon.client.get_charge(creds, session.charge_id)
    assert (gave_up.value.status, gave_up.value.reason_code, gave_up.value.reachable) == (
        503,
        "ServiceUnavailable",
        False,
    )


async def test_unreachable_endpoint_is_reported_quickly() -> None:
    async with httpx.AsyncClient() as http:
        client = AmazonPayClient(http, endpoint=f"http://127.0.0.1:{free_port()}", backoff_s=0.01)
        creds = Credentials(
            "AX", "SANDBOX-X", rsa.generate_private_key(public_exponent=65537, key_size=2048), "eu", True
        )
        started = time.monotonic()
        with pytest.raises(AmazonPayError) as exc:
            await client.get_charge(creds, "S02-0000000-0000000-C000001")
        assert (exc.value.status, exc.value.reason_code, exc.value.reachable) == (0, "Unreachable", False)
        assert time.monotonic() - started < 5


async def test_mis_signed_requests_are_refused(amazon: Amazon, creds: Credentials) -> None:
    session = await amazon.checkout(creds, eur(1200))
    assert session.charge_id
    charge_id = session.charge_id
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = Credentials(creds.merchant_id, creds.public_key_id, other_key, "eu", True)
    with pytest.raises(AmazonPayError) as wrong_key:
        await amazon.client.get_charge(forged, charge_id)
    assert (wrong_key.value.status, wrong_key.value.reason_code) == (403, "InvalidRequestSignature")
    assert "signing String [AMZN-PAY-RSASSA-PSS-V2\n" in wrong_key.value.message

    async def tamper(request: httpx.Request) -> None:
        request.headers["x-amz-pay-region"] = "na"  # changed after signing

    async def strip(request: httpx.Request) -> None:
        del request.headers["x-amz-pay-region"]  # signed, then removed

    for hook in (tamper, strip):
        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http:
            client = AmazonPayClient(http, endpoint=amazon.url, attempts_max=1)
            with pytest.raises(AmazonPayError) as exc:
                await client.get_charge(creds, charge_id)
            assert (exc.value.status, exc.value.reason_code) == (403, "InvalidRequestSignature"), hook.__name__
    unknown = Credentials(creds.merchant_id, "SANDBOX-UNKNOWNKEY00000000000000", creds.private_key, "eu", True)
    with pytest.raises(AmazonPayError) as not_registered:
        await amazon.client.get_charge(unknown, charge_id)
    assert not_registered.value.reason_code == "InvalidRequestSignature"


async def test_stale_date_wrong_environment_and_bad_keys(amazon: Amazon, creds: Credentials) -> None:
    stale = AmazonPayClient(amazon.http, endpoint=amazon.url, clock=lambda: datetime.now(UTC) - timedelta(minutes=20))
    with pytest.raises(AmazonPayError) as exc:
        await stale.get_checkout_session(creds, "00000000-0000-4000-8000-000000000000")
    assert (exc.value.status, exc.value.reason_code) == (400, "InvalidHeaderValue")

    async def to_live(request: httpx.Request) -> None:
        request.url = request.url.copy_with(path="/live" + request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [to_live]}) as http:
        client = AmazonPayClient(http, endpoint=amazon.url, attempts_max=1)
        with pytest.raises(AmazonPayError) as wrong_env:
            await client.get_checkout_session(creds, "00000000-0000-4000-8000-000000000000")
    assert (wrong_env.value.status, wrong_env.value.reason_code) == (401, "UnauthorizedAccess")
    with pytest.raises(AmazonPayError) as missing:
        await amazon.client.get_checkout_session(creds, "00000000-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.reason_code) == (404, "ResourceNotFound")
    for bad in ("", "a" * 33, "with space", "ümlaut"):
        with pytest.raises(ValueError, match="idempotency key"):
            check_idempotency_key(bad)
        with pytest.raises(ValueError, match="idempotency key"):
            await amazon.client.complete_checkout_session(creds, "x", eur(1), idempotency_key=bad)


async def test_legacy_key_ids_use_the_environment_path(amazon: Amazon) -> None:
    creds = await amazon.merchant(public_key_id="AHEXAMPLE" + secrets.token_hex(8).upper())
    assert not creds.public_key_id.startswith(("LIVE-", "SANDBOX-"))
    session = await amazon.checkout(creds, eur(700))
    assert session.state == "Completed"


async def test_generated_keys_and_concurrent_calls(amazon: Amazon) -> None:
    from tests.integration.amazon_v2 import key_from_pem

    created = await amazon.control("POST", "merchants", json={"region": "jp"})
    assert created["currency"] == "JPY"
    assert created["public_key_id"].startswith("SANDBOX-")
    creds = Credentials(
        created["merchant_id"], created["public_key_id"], key_from_pem(created["private_key_pem"]), "jp", True
    )
    sessions = await asyncio.gather(*(amazon.checkout(creds, Amount(5000, "JPY")) for _ in range(8)))
    charges = await asyncio.gather(*(amazon.client.get_charge(creds, s.charge_id or "") for s in sessions))
    assert {c.state for c in charges} == {"Authorized"}
    assert len({c.charge_id for c in charges}) == 8
    permission = await amazon.client.get_charge_permission(creds, sessions[0].charge_permission_id or "")
    assert permission.amount_limit == Amount(5000 + 750, "JPY")  # 15 % (below the 8,400 JPY cap)
