"""The Amazon Pay v2 client against the simulator over real HTTP: refunds, disputes, evidence, reports,
disbursements, v1 objects through v2, delegated access, and answers that are not Amazon's.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from litestar import Litestar, Request, Response, get, post
from litestar.params import PathParameter

from payments.amazon.client import AmazonPayClient, AmazonPayError, Amount, Credentials, Evidence
from payments.amazon.sns import SnsVerifier
from payments.amazon.transport import Transport
from tests.conftest import free_port, serving
from tests.integration.amazon_v2 import Amazon, key_from_pem, served_simulator

SETTLEMENT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"


def eur(minor: int) -> Amount:
    return Amount(minor, "EUR")


def key() -> str:
    return "k-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
async def amazon() -> AsyncIterator[Amazon]:
    async with served_simulator() as served:
        yield served


@pytest.fixture
async def creds(amazon: Amazon) -> Credentials:
    return await amazon.merchant()


async def captured(amazon: Amazon, creds: Credentials, minor: int, **extra: object) -> str:
    session = await amazon.checkout(creds, eur(minor), payment_intent="AuthorizeWithCapture", **extra)
    assert session.charge_id
    return session.charge_id


async def test_refunds_are_initiated_then_processed_within_the_limits(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 10000)
    refund = await amazon.client.create_refund(
        creds, charge_id, eur(3000), idempotency_key=key(), soft_descriptor="Kontor"
    )
    assert (refund.state, refund.refund_amount, refund.charge_id) == ("RefundInitiated", eur(3000), charge_id)
    assert refund.refund_id.startswith(charge_id.rsplit("-", 1)[0] + "-R")
    with pytest.raises(AmazonPayError) as over:  # 3000 + 8501 > 10000 + 1500
        await amazon.client.create_refund(creds, charge_id, eur(8501), idempotency_key=key())
    assert (over.value.status, over.value.reason_code) == (400, "TransactionAmountExceeded")
    await amazon.client.create_refund(creds, charge_id, eur(8500), idempotency_key=key())
    await amazon.control("POST", "refunds/process", json={"merchant_id": creds.merchant_id})
    assert (await amazon.client.get_refund(creds, refund.refund_id)).state == "Refunded"
    assert (await amazon.client.get_charge(creds, charge_id)).refunded_amount == eur(11500)


async def test_eleventh_refund_and_refund_of_an_authorized_charge(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 10000)
    for _ in range(10):
        await amazon.client.create_refund(creds, charge_id, eur(100), idempotency_key=key())
    with pytest.raises(AmazonPayError) as eleventh:
        await amazon.client.create_refund(creds, charge_id, eur(100), idempotency_key=key())
    assert (eleventh.value.status, eleventh.value.reason_code) == (422, "TransactionCountExceeded")
    authorized = await amazon.checkout(creds, eur(500))
    with pytest.raises(AmazonPayError) as not_captured:
        await amazon.client.create_refund(creds, authorized.charge_id or "", eur(100), idempotency_key=key())
    assert (not_captured.value.status, not_captured.value.reason_code) == (422, "InvalidChargeStatus")


async def test_declined_refunds(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 5000)
    arm = {"merchant_id": creds.merchant_id, "operation": "Refund", "reason_code": "AmazonRejected"}
    await amazon.control("POST", "declines", json=arm)
    armed = await amazon.client.create_refund(creds, charge_id, eur(1000), idempotency_key=key())
    named = await amazon.client.create_refund(creds, charge_id, eur(1000), idempotency_key=key())
    body = {"merchant_id": creds.merchant_id, "declines": {named.refund_id: "ProcessingFailure"}}
    await amazon.control("POST", "refunds/process", json=body)
    for refund_id, reason in ((armed.refund_id, "AmazonRejected"), (named.refund_id, "ProcessingFailure")):
        refund = await amazon.client.get_refund(creds, refund_id)
        assert (refund.state, refund.reason_code) == ("Declined", reason)
    assert (await amazon.client.get_charge(creds, charge_id)).refunded_amount == eur(0)


async def test_dispute_contest_and_resolution(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 6000)
    filed = await amazon.control(
        "POST", "disputes", json={"merchant_id": creds.merchant_id, "charge_id": charge_id, "amount": "60.00"}
    )
    dispute = await amazon.client.get_dispute(creds, filed["disputeId"])
    assert (dispute.state, dispute.reason_code, dispute.amount) == (
        "ActionRequired",
        "MerchantResponseRequired",
        eur(6000),
    )
    assert dispute.deadline
    assert dispute.created_at
    assert dispute.deadline - dispute.created_at == timedelta(days=11)
    assert dispute.dispute_id.startswith(charge_id.rsplit("-", 1)[0] + "-B")
    owed_before = (await amazon.control("GET", "balance", params={"merchant_id": creds.merchant_id}))["owed"]
    assert owed_before == "0.00"  # +60.00 captured, -60.00 charged back (fees come with the settlement)
    with pytest.raises(AmazonPayError) as no_file:
        await amazon.client.contest_dispute(
            creds, dispute.dispute_id, [Evidence("Receipt", file_id="amzn1.file.nope")], idempotency_key=key()
        )
    assert (no_file.value.status, no_file.value.reason_code) == (400, "InvalidParameterValue")
    file_id = await amazon.client.upload_file(creds, b"%PDF-1.4 receipt", file_type="pdf", idempotency_key=key())
    contested = await amazon.client.contest_dispute(
        creds,
        dispute.dispute_id,
        [Evidence("Receipt", file_id=file_id), Evidence("TrackingNumber", text="1Z9999999999999999")],
        idempotency_key=key(),
    )
    assert contested.state == "UnderReview"
    with pytest.raises(AmazonPayError) as twice:
        await amazon.client.contest_dispute(
            creds, dispute.dispute_id, [Evidence("Other", text="x")], idempotency_key=key()
        )
    assert (twice.value.status, twice.value.reason_code) == (422, "InvalidDisputeStatus")
    body = {"merchant_id": creds.merchant_id, "dispute_id": dispute.dispute_id, "resolution": "MerchantWon"}
    await amazon.control("POST", "disputes/resolve", json=body)
    won = await amazon.client.get_dispute(creds, dispute.dispute_id)
    assert (won.state, won.resolution) == ("Resolved", "MerchantWon")
    assert (await amazon.control("GET", "balance", params={"merchant_id": creds.merchant_id}))["owed"] == "60.00"


async def test_unanswered_dispute_closes_for_the_buyer(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 3000)
    body = {"merchant_id": creds.merchant_id, "charge_id": charge_id, "amount": "30.00", "filing_reason": "Fraudulent"}
    filed = await amazon.control("POST", "disputes", json=body)
    await amazon.control("POST", "clock", json={"days": 12})
    closed = await amazon.client.get_dispute(creds, filed["disputeId"])
    assert (closed.state, closed.reason_code, closed.resolution) == (
        "Closed",
        "MerchantResponseDeadlineExpired",
        "BuyerWon",
    )


async def test_reports_documents_and_disbursements(amazon: Amazon, creds: Credentials) -> None:
    charge_id = await captured(amazon, creds, 20000, merchant_reference_id="order-42")
    settled = await amazon.control("POST", "settlements", json={"merchant_id": creds.merchant_id})
    assert settled["payout"] == "185.85"  # 200.00 - 3.80 - 0.35 fees - 10.00 reserve (5 %)
    reports = await amazon.client.list_reports(creds, report_types=[SETTLEMENT])
    assert [r.report_id for r in reports] == [settled["report_id"]]
    report = await amazon.client.get_report(creds, settled["report_id"])
    assert (report.processing_status, report.report_document_id) == ("COMPLETED", settled["report_document_id"])
    url = await amazon.client.get_report_document_url(creds, settled["report_document_id"])
    document = (await amazon.client.download_report(url, bytes_max=1 << 20)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(document)))
    header = rows[5]
    capture = dict(zip(header, next(r for r in rows[6:] if r[4] == "Capture"), strict=False))
    assert (capture["AmazonTransactionId"], capture["SellerReferenceId"]) == (charge_id, "order-42")
    assert capture["AmazonOrderReferenceId"] == charge_id.rsplit("-", 1)[0]
    assert (capture["TotalTransactionFee"], capture["NetTransactionAmount"]) == ("-4.15", "195.85")
    with pytest.raises(AmazonPayError) as too_big:
        await amazon.client.download_report(url, bytes_max=100)
    assert too_big.value.reason_code == "ResponseTooLarge"
    now = datetime.now(UTC) + amazon.sim.clock_offset
    payouts = await amazon.client.list_disbursements(creds, start=now - timedelta(days=1), end=now + timedelta(days=1))
    assert [(p.amount, p.settlement_id != "") for p in payouts] == [(eur(18585), True)]
    await amazon.control("POST", "clock", json={"hours": 1})
    with pytest.raises(AmazonPayError) as expired:
        await amazon.client.download_report(url, bytes_max=1 << 20)
    assert (expired.value.status, expired.value.reason_code) == (403, "DownloadRefused")


async def test_report_pages_follow_the_next_token(amazon: Amazon, creds: Credentials) -> None:
    for _ in range(3):
        await amazon.control("POST", "settlements", json={"merchant_id": creds.merchant_id})
    wire = Transport(
        amazon.http, endpoint=amazon.url, attempts_max=1, backoff_s=0, timeout_s=5, clock=lambda: datetime.now(UTC)
    )
    first = await wire.call(creds, "GET", "/reports", query=[("reportTypes", SETTLEMENT), ("pageSize", "2")])
    assert isinstance(first.body, dict)
    assert len(first.body["reports"]) == 2
    assert first.body["nextToken"]
    token = first.body["nextToken"]
    with pytest.raises(AmazonPayError) as combined:
        await wire.call(creds, "GET", "/reports", query=[("nextToken", token), ("pageSize", "2")])
    assert (combined.value.status, combined.value.reason_code) == (400, "InvalidParameterCombination")
    rest = await wire.call(creds, "GET", "/reports", query=[("nextToken", token)])
    assert isinstance(rest.body, dict)
    assert len(rest.body["reports"]) == 1
    assert "nextToken" not in rest.body
    assert len(await amazon.client.list_reports(creds, report_types=[SETTLEMENT])) == 3


async def test_v1_objects_are_managed_through_v2(amazon: Amazon, creds: Credentials) -> None:
    body = {"merchant_id": creds.merchant_id, "amount": "100.00", "authorized": "60.00", "captured": "40.00"}
    legacy = await amazon.control("POST", "legacy-orders", json=body)
    order_reference_id = legacy["order_reference_id"]
    assert legacy["authorization_id"].startswith(order_reference_id + "-A0")
    assert legacy["capture_id"].startswith(order_reference_id + "-C0")
    permission = await amazon.client.get_charge_permission(creds, order_reference_id)
    assert permission.state == "Chargeable"
    capture = await amazon.client.capture_charge(creds, legacy["authorization_id"], eur(6000), idempotency_key=key())
    assert capture.state == "Captured"
    refund = await amazon.client.create_refund(creds, legacy["capture_id"], eur(4000), idempotency_key=key())
    assert refund.state == "RefundInitiated"
    other = await amazon.control("POST", "legacy-orders", json={**body, "captured": None})
    canceled = await amazon.client.cancel_charge(creds, other["authorization_id"], "not shipped")
    assert canceled.state == "Canceled"
    closed = await amazon.client.close_charge_permission(creds, other["order_reference_id"], "done")
    assert closed.state == "Closed"


async def test_delegated_access_with_a_provider_key(amazon: Amazon) -> None:
    merchant = await amazon.merchant()
    charge_id = await captured(amazon, merchant, 2500)
    provider = await amazon.control("POST", "providers", json={})
    provider_key = key_from_pem(provider["private_key_pem"])
    grant = {"merchant_id": merchant.merchant_id, "public_key_id": provider["public_key_id"]}
    mws_token = (await amazon.control("POST", "providers/grants", json=grant))["mws_auth_token"]
    assert mws_token.startswith("amzn.mws.")
    kontor = Credentials(merchant.merchant_id, provider["public_key_id"], provider_key, "eu", True)
    token = await amazon.client.exchange_auth_token(kontor, merchant.merchant_id, mws_token)
    assert token == await amazon.client.exchange_auth_token(kontor, merchant.merchant_id, mws_token)
    delegated = Credentials(merchant.merchant_id, provider["public_key_id"], provider_key, "eu", True, auth_token=token)
    assert "auth_token" not in repr(delegated)
    assert token not in repr(delegated)
    assert (await amazon.client.get_charge(delegated, charge_id)).state == "Captured"
    forged = Credentials(merchant.merchant_id, provider["public_key_id"], provider_key, "eu", True, auth_token="eyJx")
    with pytest.raises(AmazonPayError) as bad_token:
        await amazon.client.get_charge(forged, charge_id)
    assert (bad_token.value.status, bad_token.value.reason_code) == (403, "InvalidAuthorizationToken")
    with pytest.raises(AmazonPayError) as no_token:
        await amazon.client.get_charge(kontor, charge_id)
    assert (no_token.value.status, no_token.value.reason_code) == (401, "UnauthorizedAccess")
    with pytest.raises(AmazonPayError) as wrong_grant:
        await amazon.client.exchange_auth_token(
            kontor, merchant.merchant_id, "amzn.mws.00000000-0000-4000-8000-000000000000"
        )
    assert (wrong_grant.value.status, wrong_grant.value.reason_code) == (400, "InvalidParameterValue")


async def test_answers_that_are_not_amazons_are_invalid_responses(creds: Credentials) -> None:
    @get("/v2/charges/{charge_id:str}", media_type="text/html")
    async def html(charge_id: Annotated[str, PathParameter(max_length=64)]) -> Response[str]:
        if charge_id == "broken-json":
            return Response("{not json", status_code=200, media_type="application/json")
        if charge_id == "missing-field":
            return Response('{"chargeId": "x"}', status_code=200, media_type="application/json")
        return Response("<html>bad gateway</html>", status_code=400)

    stranger = Litestar([html], logging_config=None)
    async with serving(stranger, free_port()) as url, httpx.AsyncClient() as http:
        client = AmazonPayClient(http, endpoint=url, attempts_max=1)
        for charge_id in ("html", "broken-json", "missing-field"):
            with pytest.raises(AmazonPayError) as exc:
                await client.get_charge(creds, charge_id)
            assert exc.value.reason_code == "InvalidResponse", charge_id


async def test_ipns_are_delivered_signed_and_verify(amazon: Amazon, creds: Credentials) -> None:
    received: list[bytes] = []

    @post("/ipn", status_code=200)
    async def ipn(request: Request[Any, Any, Any]) -> None:
        received.append(await request.body())

    receiver = Litestar([ipn], logging_config=None)
    async with serving(receiver, free_port()) as url:
        amazon.sim.ipn_url = f"{url}/ipn"
        try:
            charge_id = await captured(amazon, creds, 1000)
            await amazon.client.create_refund(creds, charge_id, eur(500), idempotency_key=key())
            await amazon.sim.idle()
        finally:
            amazon.sim.ipn_url = None
    verifier = SnsVerifier(trusted_roots=[amazon.sim.identity.root], http=amazon.http, fetch_base=amazon.url)
    accounts = ("291180941288", "598607868003")
    kinds = []
    for body in received:
        envelope = json.loads(body)
        await verifier.verify(envelope, lambda arn: arn.split(":")[4] in accounts)
        message = json.loads(envelope["Message"])
        assert message["MerchantID"] == creds.merchant_id
        kinds.append((message["ObjectType"], message["ObjectId"]))
    assert ("CHARGE", charge_id) in kinds
    assert ("CHARGE_PERMISSION", charge_id.rsplit("-", 1)[0]) in kinds
    assert [kind for kind, _ in kinds].count("REFUND") == 1
