"""The simulator's answers against Amazon's published samples, field by field, and the client's readers on them.

Field by field means: the same key set at every level, the same JSON type wherever the sample has a value (a
null in a sample says nothing about the type), and the same enum value where the sample's state is the same
(states, environments, currencies, object and notification types). The samples are copies of published Amazon
material (tests/data/amazon_pay_v2/README.md names each source); the simulator runs in-process (ASGI).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar

from payments.amazon import responses
from payments.amazon.client import AmazonPayClient, AmazonPayError, Amount, Credentials
from payments.amazon.objects import parse_timestamp
from payments.amazon.simulator import AmazonPaySimulator
from payments.amazon.transport import Transport

DATA = Path(__file__).parent.parent / "data" / "amazon_pay_v2"
ENUM_KEYS = {
    "state",
    "releaseEnvironment",
    "chargePermissionType",
    "productType",
    "paymentIntent",
    "currencyCode",
    "presentmentCurrency",
    "ObjectType",
    "NotificationType",
    "NotificationVersion",
    "Type",
    "disputeType",
}
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def completed_sample() -> dict[str, Any]:
    """The truncated Complete Checkout Session answer, closed after its last whole field."""
    text = (DATA / "checkout-session-completed.partial.txt").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    body = body[: body.index('"chargeId"')].rstrip().rstrip(",") + "}"
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def compare(expected: Any, actual: Any, path: str = "$") -> None:
    """Assert `actual` has the shape of the published `expected` (see the module docstring)."""
    if expected is None:
        return
    kinds = (dict, list, str, bool, int | float)
    kind = next(k for k in kinds if isinstance(expected, k))
    problem = f"{path}: sample has {type(expected).__name__}, simulator {type(actual).__name__} ({actual!r})"
    assert isinstance(actual, kind), problem
    assert kind is not int | float or not isinstance(actual, bool), problem
    if isinstance(expected, dict):
        assert set(expected) == set(actual), f"{path}: keys differ: {set(expected) ^ set(actual)}"
        for name, value in expected.items():
            if name in ENUM_KEYS and isinstance(value, str):
                assert actual[name] == value, f"{path}.{name}: {actual[name]!r} != {value!r}"
            compare(value, actual[name], f"{path}.{name}")
    elif isinstance(expected, list) and expected and expected[0] is not None:
        assert actual, f"{path}: the sample's list has items, the simulator's is empty"
        for index, item in enumerate(actual):
            compare(expected[0], item, f"{path}[{index}]")


@dataclass
class World:
    sim: AmazonPaySimulator
    app: Litestar
    http: httpx.AsyncClient
    client: AmazonPayClient
    wire: Transport
    creds: Credentials
    answers: dict[str, Any]


async def _control(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await http.post(f"/sim/{path}", json=body)
    assert response.status_code < 300, response.text
    return response.json()


async def _checkout(world: World) -> tuple[str, str, str]:
    """A US merchant's session as in the samples: created by the merchant, the buyer signs in, completed."""
    body = {
        "webCheckoutDetails": {
            "checkoutReviewReturnUrl": "https://shop.example/review",
            "checkoutResultReturnUrl": "https://shop.example/result",
        },
        "storeId": "amzn1.application-oa2-client.00000000000000000000000000000000",
        "paymentDetails": {
            "paymentIntent": "Authorize",
            "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
            "presentmentCurrency": "USD",
            "softDescriptor": "Descriptor",
        },
        "merchantMetadata": {
            "merchantReferenceId": "2020-0001",
            "merchantStoreName": "Example Store",
            "noteToBuyer": "Order #12345-67890",
            "customInformation": "custom information",
        },
    }
    created = await world.wire.call(world.creds, "POST", "/checkoutSessions", body=body, idempotency_key="cs-1")
    assert isinstance(created.body, dict)
    session_id = created.body["checkoutSessionId"]
    signed_in = {"merchant_id": world.creds.merchant_id, "amount": "14.00", "checkout_session_id": session_id}
    await _control(world.http, "checkout-sessions", signed_in)
    world.answers["open"] = (await world.wire.call(world.creds, "GET", f"/checkoutSessions/{session_id}")).body
    price = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}}
    done = await world.wire.call(
        world.creds, "POST", f"/checkoutSessions/{session_id}/complete", body=price, idempotency_key="cs-2"
    )
    world.answers["completed"] = done.body
    assert isinstance(done.body, dict)
    return session_id, done.body["chargePermissionId"], done.body["chargeId"]


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    sim = AmazonPaySimulator()
    app = sim.app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test") as http:
        merchant, key_id, _ = sim.register_merchant(region="na", public_key=KEY.public_key())
        creds = Credentials(merchant.merchant_id, key_id, KEY, "na", True)
        wire = Transport(
            http, endpoint="http://sim.test", attempts_max=1, backoff_s=0, timeout_s=5, clock=lambda: datetime.now(UTC)
        )
        found = World(sim, app, http, AmazonPayClient(http, endpoint="http://sim.test"), wire, creds, {})
        _, permission_id, charge_id = await _checkout(found)
        found.answers["permission"] = (await wire.call(creds, "GET", f"/chargePermissions/{permission_id}")).body
        capture = {"captureAmount": {"amount": "14.00", "currencyCode": "USD"}}
        found.answers["captured"] = (
            await wire.call(creds, "POST", f"/charges/{charge_id}/capture", body=capture, idempotency_key="c-1")
        ).body
        refund = {
            "chargeId": charge_id,
            "refundAmount": {"amount": "14.00", "currencyCode": "USD"},
            "softDescriptor": "Descriptor",
        }
        initiated = await wire.call(creds, "POST", "/refunds", body=refund, idempotency_key="r-1")
        found.answers["refund_initiated"] = initiated.body
        await _control(http, "refunds/process", {"merchant_id": creds.merchant_id})
        assert isinstance(initiated.body, dict)
        found.answers["refunded"] = (await wire.call(creds, "GET", f"/refunds/{initiated.body['refundId']}")).body
        yield found
        await sim.aclose()


async def test_checkout_sessions_have_the_published_shape(world: World) -> None:
    compare(sample("checkout-session-open.json"), world.answers["open"])
    partial = completed_sample()  # truncated after chargePermissionId: its keys must all be there, in kind
    compare(partial, {name: world.answers["completed"][name] for name in partial})
    assert set(world.answers["completed"]) == set(world.answers["open"])  # the rest of the truncated sample
    assert world.answers["completed"]["chargeId"].startswith(world.answers["completed"]["chargePermissionId"] + "-C")


async def test_permission_charge_and_refunds_have_the_published_shape(world: World) -> None:
    compare(sample("charge-permission-chargeable.json"), world.answers["permission"])
    compare(sample("charge-captured.json"), world.answers["captured"])
    compare(sample("refund-refundinitiated.json"), world.answers["refund_initiated"])
    compare(sample("refund-refunded.json"), world.answers["refunded"])
    published = re.compile(r"^[SP]\d{2}-\d{7}-\d{7}$")
    assert published.match(world.answers["permission"]["chargePermissionId"])
    assert re.match(r"^[SP]\d{2}-\d{7}-\d{7}-C\d{6}$", world.answers["captured"]["chargeId"])
    assert re.match(r"^[SP]\d{2}-\d{7}-\d{7}-R\d{6}$", world.answers["refunded"]["refundId"])
    assert re.match(r"^\d{8}T\d{6}Z$", world.answers["captured"]["creationTimestamp"])


async def _error_body(world: World, creds: Credentials, path: str, body: dict[str, Any] | None) -> Any:
    """Call through Kontor's client and keep Amazon's raw error body (an httpx response hook reads it)."""
    kept: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        kept.append(response)

    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, event_hooks={"response": [keep]}) as http:
        wire = Transport(
            http, endpoint="http://sim.test", attempts_max=1, backoff_s=0, timeout_s=5, clock=lambda: datetime.now(UTC)
        )
        with pytest.raises(AmazonPayError):
            await wire.call(creds, "POST" if body else "GET", path, body=body, idempotency_key="e-1" if body else None)
    return kept[-1].json()


async def test_errors_have_the_published_shape(world: World) -> None:
    bad = {"chargePermissionId": "S01-0000000-0000000", "chargeAmount": {"amount": "1,00", "currencyCode": "USD"}}
    invalid = await _error_body(world, world.creds, "/charges", bad)
    compare(sample("error-invalid-parameter-value.json"), invalid)
    assert invalid["reasonCode"] == "InvalidParameterValue"
    assert "chargeAmount.amount" in invalid["message"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = Credentials(world.creds.merchant_id, world.creds.public_key_id, other_key, "na", True)
    refused = await _error_body(world, forged, "/charges/x", None)
    compare(sample("error-invalid-request-signature.json"), refused)
    assert refused["message"].startswith("Unable to verify signature, signing String [AMZN-PAY-RSASSA-PSS")


async def test_ipns_have_the_published_message_and_envelope(world: World) -> None:
    charge_id = world.answers["captured"]["chargeId"]
    body = {"merchant_id": world.creds.merchant_id, "charge_id": charge_id, "amount": "1.00"}
    response = await world.http.post("/sim/disputes", json=body)
    assert response.status_code == 201, response.text
    await world.sim.idle()
    messages = [(json.loads(raw), headers) for raw, headers in world.sim.sent]
    by_type = {json.loads(envelope["Message"])["ObjectType"]: (envelope, headers) for envelope, headers in messages}
    assert set(by_type) == {"CHARGE", "CHARGE_PERMISSION", "REFUND", "CHARGEBACK"}
    schema = sample("ipn-message-schema.json")
    charge_sample = {k: v for k, v in sample("ipn-charge-message.json").items() if k != "log_level"}
    for object_type, (envelope, headers) in by_type.items():
        message = json.loads(envelope["Message"])
        assert set(message) == set(schema)
        if object_type == "CHARGEBACK":
            compare(sample("ipn-chargeback-message.json"), message)
        else:
            compare({**charge_sample, "ObjectType": object_type}, message)
        account = "598607868003" if object_type == "CHARGEBACK" else "291180941288"
        assert envelope["TopicArn"].split(":")[4] == account
        published = json.loads((DATA / "sns-notification.http").read_text().split("\n\n", 1)[1])
        compare({k: v for k, v in published.items() if k != "Subject"}, envelope)  # Amazon Pay sets no Subject
        assert {name for name in headers if name.startswith("x-amz-sns-")} == {"x-amz-sns-message-type", "x-amz-sns-message-id", "x-amz-sns-topic-arn", "x-amz-sns-subscription-arn"}  # fmt: skip
        assert headers["content-type"] == "text/plain; charset=UTF-8"
    chargeback = json.loads(by_type["CHARGEBACK"][0]["Message"])
    assert re.match(r"^[SP]\d{2}-\d{7}-\d{7}-B\d{6}$", chargeback["ObjectId"])


async def test_reporting_answers_have_the_published_shape(world: World) -> None:
    body = {"merchant_id": world.creds.merchant_id, "amount": "100.00", "payment_intent": "AuthorizeWithCapture"}
    session_id = (await _control(world.http, "checkout-sessions", body))["checkoutSessionId"]
    await world.client.complete_checkout_session(world.creds, session_id, Amount(10000, "USD"), idempotency_key="cs-9")
    settled = await world.http.post("/sim/settlements", json={"merchant_id": world.creds.merchant_id})
    assert settled.status_code == 201, settled.text
    now = world.sim.now()
    window = [
        ("startTime", "20000101T000000Z"),
        ("endTime", (now.replace(year=now.year + 1)).strftime("%Y%m%dT%H%M%SZ")),
    ]
    disbursements = await world.wire.call(world.creds, "GET", "/disbursements", query=window)
    compare(sample("disbursements-list.json"), disbursements.body)
    assert isinstance(disbursements.body, dict)
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
    assert iso.match(disbursements.body["disbursements"][0]["transactionTime"])
    request = sample("report-create-request.json")
    created = await world.wire.call(world.creds, "POST", "/reports", body=request, idempotency_key="rep-1")
    published = json.loads(re.sub(r",\s*}", "}", "\n".join(
        line for line in (DATA / "report-created.txt").read_text().splitlines() if not line.startswith("#")
    )))  # fmt: skip
    compare(published, created.body)
    assert created.status == 201
    assert isinstance(created.body, dict)
    assert re.match(r"^[A-Z0-9]{21}$", created.body["reportId"])
    assert re.match(r"^[A-Z0-9]{21}$", published["reportId"])


async def test_settlement_document_has_the_published_layout(world: World) -> None:
    report_id = (await world.http.post("/sim/settlements", json={"merchant_id": world.creds.merchant_id})).json()
    url = await world.client.get_report_document_url(world.creds, report_id["report_document_id"])
    ours = (await world.client.download_report(url, bytes_max=1 << 20)).decode("utf-8")
    for name in ("report-document-settlement-transfer.csv", "report-document-settlement-reserve.csv"):
        theirs = (DATA / name).read_text(encoding="utf-8")
        assert ours[0] == theirs[0] == "\ufeff"
        our_lines, their_lines = ours.splitlines(), theirs.splitlines()
        assert our_lines[:2] == their_lines[:2]
        assert [line.split(",")[0] for line in our_lines[2:5]] == [line.split(",")[0] for line in their_lines[2:5]]
        assert our_lines[5] == their_lines[5]  # the column header, trailing comma included
        width = len(next(csv.reader(io.StringIO(their_lines[6]))))
        assert all(len(row) == width for row in csv.reader(io.StringIO("\n".join(our_lines[6:]))))


def test_the_client_reads_the_published_samples() -> None:
    charge = responses.charge(sample("charge-captured.json"), 200)
    assert (charge.state, charge.charge_amount, charge.capture_amount) == (
        "Captured",
        Amount(1400, "USD"),
        Amount(1400, "USD"),
    )
    assert charge.created_at == datetime(2019, 7, 14, 15, 53, tzinfo=UTC)
    permission = responses.charge_permission(sample("charge-permission-chargeable.json"), 200)
    assert (permission.state, permission.reasons, permission.amount_limit, permission.expires_at) == (
        "Chargeable",
        (),
        None,
        None,
    )
    session = responses.checkout_session(sample("checkout-session-open.json"), 200)
    assert (session.state, session.payment_intent, session.charge_amount, session.constraints) == (
        "Open",
        "Authorize",
        Amount(140, "USD"),
        (),
    )
    assert (session.merchant_reference_id, session.buyer_email) == ("2020-0001", "buyer@example.com")
    assert session.billing_address
    assert session.billing_address["postalCode"] == "00000"
    for name, state in (("refund-refundinitiated.json", "RefundInitiated"), ("refund-refunded.json", "Refunded")):
        refund = responses.refund(sample(name), 200)
        assert (refund.state, refund.refund_amount) == (state, Amount(1400, "USD"))
    payouts, token = responses.disbursements_page(sample("disbursements-list.json"), 200)
    assert token is None
    assert payouts[0].amount == Amount(100050, "USD")
    assert payouts[0].transaction_time == datetime(2022, 12, 7, 17, 8, 26, 717000, tzinfo=UTC)
    completed = responses.checkout_session({**completed_sample(), "chargeId": "S02-0000000-0000002-C000001"}, 200)
    assert (completed.state, completed.charge_permission_id, completed.charge_amount) == (
        "Completed",
        "S02-0000000-0000002",
        None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20221114T074550Z", datetime(2022, 11, 14, 7, 45, 50, tzinfo=UTC)),
        ("2022-12-07T17:08:26.717Z", datetime(2022, 12, 7, 17, 8, 26, 717000, tzinfo=UTC)),
        ("2022-08-04T00-00-00Z", datetime(2022, 8, 4, tzinfo=UTC)),
        ("2022-08-04T02:00:00+02:00", datetime(2022, 8, 4, tzinfo=UTC)),
    ],
)
def test_amazons_three_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"chargeId": "x"},
        {
            "chargeId": "x",
            "chargePermissionId": "y",
            "statusDetails": {"state": "Captured"},
            "chargeAmount": {"amount": "1.5.0", "currencyCode": "USD"},
        },
        {"chargeId": "x", "chargePermissionId": "y", "statusDetails": "Captured", "chargeAmount": None},
        [],
        {"chargeId": 5},
    ],
)
def test_the_client_refuses_malformed_answers(body: Any) -> None:
    with pytest.raises(AmazonPayError) as exc:
        responses.charge(body, 200)
    assert (exc.value.status, exc.value.reason_code) == (200, "InvalidResponse")
