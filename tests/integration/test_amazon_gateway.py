"""The Amazon Pay client against the simulator, over real HTTP: signatures, state machines, limits, declines.

The simulator implements Amazon's rules (reference/amazon-pay.md §1, §3); these tests pin the parts Kontor
relies on, so that both sides are checked against the documented behaviour, not only against each other.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from payments.amazon.client import AmazonPayError, AmazonPayGateway, Credentials
from tests.conftest import SIM_ACCESS_KEY, SIM_SECRET, Simulator


@pytest.fixture
async def gateway(simulator: Simulator) -> AsyncIterator[AmazonPayGateway]:
    async with httpx.AsyncClient() as http:
        yield AmazonPayGateway(access_key_id=SIM_ACCESS_KEY, secret_key=SIM_SECRET, http=http, endpoint=simulator.url)


@pytest.fixture
async def creds(simulator: Simulator) -> Credentials:
    seller_id = "A" + secrets.token_hex(6).upper()
    await simulator.control("POST", "sellers", json={"seller_id": seller_id, "mws_auth_token": "amzn.mws.token-1"})
    return Credentials(seller_id=seller_id, mws_auth_token="amzn.mws.token-1", region="eu", sandbox=True)


async def open_order(gateway: AmazonPayGateway, creds: Credentials, amount: int, ref: str | None = None) -> str:
    order_reference_id = ref or f"S02-{secrets.randbelow(10**7):07d}-{secrets.randbelow(10**7):07d}"
    await gateway.set_order_reference_details(creds, order_reference_id, amount, "EUR", "order-1")
    await gateway.confirm_order_reference(creds, order_reference_id)
    return order_reference_id


async def test_one_step_authorize_captures_now(gateway: AmazonPayGateway, creds: Credentials) -> None:
    orid = await open_order(gateway, creds, 11900)
    auth = await gateway.authorize(creds, orid, "order-1-a1", 11900, "EUR", capture_now=True)
    assert (auth.state, auth.reason, auth.captured_minor) == ("Closed", "MaxCapturesProcessed", 11900)
    capture = await gateway.get_capture_details(creds, auth.capture_ids[0], "EUR")
    assert (capture.state, capture.amount_minor) == ("Completed", 11900)
    order = await gateway.get_order_reference_details(creds, orid, "EUR")
    assert (order.state, order.amount_minor) == ("Open", 11900)


async def test_reference_ids_make_calls_idempotent(gateway: AmazonPayGateway, creds: Credentials) -> None:
    orid = await open_order(gateway, creds, 5000)
    first = await gateway.authorize(creds, orid, "ref-a1", 5000, "EUR", capture_now=False)
    again = await gateway.authorize(creds, orid, "ref-a1", 5000, "EUR", capture_now=False)
    assert again.authorization_id == first.authorization_id
    with pytest.raises(AmazonPayError) as exc:
        await gateway.authorize(creds, orid, "ref-a1", 4000, "EUR", capture_now=False)
    assert exc.value.code == "DuplicateReferenceId"


async def test_two_step_capture_limits_and_expiry(
    simulator: Simulator, gateway: AmazonPayGateway, creds: Credentials
) -> None:
    orid = await open_order(gateway, creds, 10000)
    auth = await gateway.authorize(creds, orid, "ref-a1", 10000, "EUR", capture_now=False)
    assert auth.state == "Open"
    with pytest.raises(AmazonPayError, match="TransactionAmountExceeded"):
        await gateway.capture(creds, auth.authorization_id, "ref-c1", 10001, "EUR")
    capture = await gateway.capture(creds, auth.authorization_id, "ref-c1", 6000, "EUR")
    assert capture.state == "Completed"
    closed = await gateway.get_authorization_details(creds, auth.authorization_id, "EUR")
    assert (closed.state, closed.reason) == ("Closed", "MaxCapturesProcessed")  # one capture per authorization
    second = await gateway.authorize(creds, orid, "ref-a2", 4000, "EUR", capture_now=False)
    await simulator.control("POST", "clock", json={"days": 31})
    try:
        expired = await gateway.get_authorization_details(creds, second.authorization_id, "EUR")
        assert (expired.state, expired.reason) == ("Closed", "ExpiredUnused")
        with pytest.raises(AmazonPayError, match="InvalidAuthorizationStatus"):
            await gateway.capture(creds, second.authorization_id, "ref-c2", 4000, "EUR")
    finally:
        await simulator.control("POST", "clock", json={"days": -31})
    # authorizations beyond the order total + min(15 %, 75) are refused
    with pytest.raises(AmazonPayError, match="TransactionAmountExceeded"):
        await gateway.authorize(creds, orid, "ref-a3", 6000, "EUR", capture_now=False)


async def test_refunds_are_pending_then_processed_within_limits(
    simulator: Simulator, gateway: AmazonPayGateway, creds: Credentials
) -> None:
    orid = await open_order(gateway, creds, 10000)
    auth = await gateway.authorize(creds, orid, "ref-a1", 10000, "EUR", capture_now=True)
    capture_id = auth.capture_ids[0]
    refund = await gateway.refund(creds, capture_id, "ref-r1", 3000, "EUR")
    assert refund.state == "Pending"
    # captured 100.00: refunds up to 115.00 in total (15 %, below the 75.00 cap)
    with pytest.raises(AmazonPayError, match="TransactionAmountExceeded"):
        await gateway.refund(creds, capture_id, "ref-r2", 8501, "EUR")
    ok = await gateway.refund(creds, capture_id, "ref-r2", 8500, "EUR")
    await simulator.control("POST", "refunds/process", json={"seller_id": creds.seller_id})
    assert (await gateway.get_refund_details(creds, refund.refund_id, "EUR")).state == "Completed"
    assert (await gateway.get_refund_details(creds, ok.refund_id, "EUR")).state == "Completed"
    assert (await gateway.get_capture_details(creds, capture_id, "EUR")).refunded_minor == 11500


async def test_at_most_ten_refunds_per_capture(gateway: AmazonPayGateway, creds: Credentials) -> None:
    orid = await open_order(gateway, creds, 10000)
    capture_id = (await gateway.authorize(creds, orid, "ref-a1", 10000, "EUR", capture_now=True)).capture_ids[0]
    for i in range(10):
        await gateway.refund(creds, capture_id, f"ref-r{i}", 100, "EUR")
    with pytest.raises(AmazonPayError, match="MaxRefundsProcessed"):
        await gateway.refund(creds, capture_id, "ref-r10", 100, "EUR")


async def test_sandbox_simulation_and_armed_declines(
    simulator: Simulator, gateway: AmazonPayGateway, creds: Credentials
) -> None:
    orid = await open_order(gateway, creds, 10000)
    note = json.dumps({"SandboxSimulation": {"State": "Declined", "ReasonCode": "InvalidPaymentMethod"}})
    declined = await gateway.authorize(creds, orid, "ref-a1", 10000, "EUR", capture_now=False, note=note)
    assert (declined.state, declined.reason) == ("Declined", "InvalidPaymentMethod")
    assert (await gateway.get_order_reference_details(creds, orid, "EUR")).state == "Suspended"
    other = await open_order(gateway, creds, 10000)
    capture_id = (await gateway.authorize(creds, other, "ref-b1", 10000, "EUR", capture_now=True)).capture_ids[0]
    await simulator.control(
        "POST", "declines", json={"seller_id": creds.seller_id, "operation": "Refund", "reason": "AmazonRejected"}
    )
    refund = await gateway.refund(creds, capture_id, "ref-r1", 1000, "EUR")
    await simulator.control("POST", "refunds/process", json={"seller_id": creds.seller_id})
    after = await gateway.get_refund_details(creds, refund.refund_id, "EUR")
    assert (after.state, after.reason) == ("Declined", "AmazonRejected")


async def test_wrong_secret_or_token_is_refused(simulator: Simulator, creds: Credentials) -> None:
    async with httpx.AsyncClient() as http:
        forged = AmazonPayGateway(
            access_key_id=SIM_ACCESS_KEY, secret_key="not-the-secret", http=http, endpoint=simulator.url
        )
        with pytest.raises(AmazonPayError, match="SignatureDoesNotMatch"):
            await forged.get_order_reference_details(creds, "S02-0000000-0000000", "EUR")
        honest = AmazonPayGateway(
            access_key_id=SIM_ACCESS_KEY, secret_key=SIM_SECRET, http=http, endpoint=simulator.url
        )
        stolen = Credentials(seller_id=creds.seller_id, mws_auth_token="amzn.mws.other", region="eu", sandbox=True)
        with pytest.raises(AmazonPayError, match="AccessDenied"):
            await honest.get_order_reference_details(stolen, "S02-0000000-0000000", "EUR")


async def test_unreachable_gateway_is_reported_as_such() -> None:
    async with httpx.AsyncClient() as http:
        gateway = AmazonPayGateway(access_key_id="x", secret_key="y", http=http, endpoint="http://127.0.0.1:9")
        with pytest.raises(AmazonPayError) as exc:
            await gateway.get_order_reference_details(
                Credentials(seller_id="AX", mws_auth_token="t", region="eu", sandbox=True), "S02-1", "EUR"
            )
        assert exc.value.reachable is False
