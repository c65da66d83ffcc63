"""The simulator's control routes refuse bad bodies with a 400 that names the field - never a 500.

Also: the simulated API answers unknown paths and methods like Amazon (404/405 RequestNotSupported) and never
500 to what a client sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.amazon_v2 import Amazon, served_simulator

M = "$MERCHANT"  # replaced by a registered merchant id

BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    ("merchants", {"region": "xx"}, "region", "InvalidParameterValue"),
    ("merchants", {"foo": 1}, "foo", "UnrecognizedField"),
    ("merchants", {"merchant_id": "lower-case"}, "merchant_id", "InvalidParameterValue"),
    ("merchants", {"public_key_pem": "not a key"}, "public_key_pem", "InvalidParameterValue"),
    ("merchants", {"reserve_percent": 101}, "reserve_percent", "InvalidParameterValue"),
    ("merchants", {"chargeback_fee": "1,50"}, "chargeback_fee", "InvalidParameterValue"),
    ("merchants", {"currency": "EURO"}, "currency", "InvalidParameterValue"),
    ("providers", {"environment": "Production"}, "environment", "InvalidParameterValue"),
    ("providers/grants", {"public_key_id": "SANDBOX-X1234"}, "merchant_id", "MissingParameterValue"),
    ("checkout-sessions", {"merchant_id": M}, "amount", "MissingParameterValue"),
    ("checkout-sessions", {"merchant_id": M, "amount": "12.345"}, "amount", "InvalidParameterValue"),
    ("checkout-sessions", {"merchant_id": M, "amount": "1.00", "simulation": "Nope"}, "simulation", "InvalidParameterValue"),
    ("checkout-sessions", {"merchant_id": M, "amount": "1.00", "simulation": "PendingThenAuthorized"}, "simulation", "InvalidSandboxSimulationSpecified"),
    ("checkout-sessions", {"merchant_id": M, "amount": "1.00", "payment_intent": "Sale"}, "payment_intent", "InvalidParameterValue"),
    ("checkout-sessions", {"merchant_id": M, "amount": "1.00", "soft_descriptor": "x" * 17}, "soft_descriptor", "InvalidParameterValue"),
    ("charge-permissions/payment-method", {"merchant_id": M}, "charge_permission_id", "MissingParameterValue"),
    ("charges/process", {"merchant_id": 5}, "merchant_id", "InvalidParameterValue"),
    ("refunds/process", {"merchant_id": M, "declines": {"R1": "Nope"}}, "declines", "InvalidParameterValue"),
    ("disputes", {"merchant_id": M, "charge_id": "C1", "amount": "-1"}, "amount", "InvalidParameterValue"),
    ("disputes/resolve", {"merchant_id": M, "dispute_id": "B1", "resolution": "Draw"}, "resolution", "InvalidParameterValue"),
    ("declines", {"merchant_id": M, "operation": "Authorize", "reason_code": "SoftDeclined"}, "operation", "InvalidParameterValue"),
    ("declines", {"merchant_id": M, "operation": "Refund", "reason_code": "Whatever"}, "reason_code", "InvalidParameterValue"),
    ("failures", {"count": 0, "status": 503}, "count", "InvalidParameterValue"),
    ("failures", {"count": 1, "status": 404}, "status", "InvalidParameterValue"),
    ("failures", {"count": 1, "status": 503, "retry_after_s": 3600}, "retry_after_s", "InvalidParameterValue"),
    ("clock", {"days": -1}, "days", "InvalidParameterValue"),
    ("clock", {"days": "1"}, "days", "InvalidParameterValue"),
    ("settlements", {"merchant": M}, "merchant", "UnrecognizedField"),
    ("legacy-orders", {"merchant_id": M, "amount": "10.00", "captured": "ten"}, "captured", "InvalidParameterValue"),
    ("ipn/replay", {"index": -1}, "index", "InvalidParameterValue"),
]  # fmt: skip


@pytest.fixture(scope="module")
async def amazon() -> AsyncIterator[Amazon]:
    async with served_simulator() as served:
        yield served


@pytest.fixture(scope="module")
async def merchant_id(amazon: Amazon) -> str:
    return (await amazon.merchant()).merchant_id


def _fill(value: Any, merchant_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, merchant_id) for k, v in value.items()}
    return merchant_id if value == M else value


@pytest.mark.parametrize(("path", "body", "field", "code"), BAD_BODIES, ids=lambda v: str(v)[:40])
async def test_bad_bodies_are_400_naming_the_field(
    amazon: Amazon, merchant_id: str, path: str, body: dict[str, Any], field: str, code: str
) -> None:
    response = await amazon.http.post(f"{amazon.url}/sim/{path}", json=_fill(body, merchant_id))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert (answer["field"], answer["reasonCode"]) == (field, code), answer
    assert field in answer["message"]


async def test_malformed_json_query_errors_and_unknown_merchants(amazon: Amazon) -> None:
    malformed = await amazon.http.post(f"{amazon.url}/sim/merchants", content=b"{not json")
    assert (malformed.status_code, malformed.json()["reasonCode"]) == (400, "InvalidRequestFormat")
    not_object = await amazon.http.post(f"{amazon.url}/sim/clock", content=b"[1, 2]")
    assert (not_object.status_code, not_object.json()["reasonCode"]) == (400, "InvalidParameterValue")
    no_query = await amazon.http.get(f"{amazon.url}/sim/balance")
    assert (no_query.status_code, no_query.json().get("field")) == (400, "merchant_id")
    unknown = await amazon.http.post(f"{amazon.url}/sim/charges/process", json={"merchant_id": "AUNKNOWN1"})
    assert (unknown.status_code, unknown.json()["reasonCode"]) == (404, "ResourceNotFound")
    no_ipn = await amazon.http.post(f"{amazon.url}/sim/ipn/replay", json={"index": 10_000})
    assert (no_ipn.status_code, no_ipn.json()["field"]) == (404, "index")


async def test_the_api_answers_like_amazon_to_anything_a_client_sends(amazon: Amazon) -> None:
    for method, path, status in (
        ("GET", "/v2/nothing-here", 404),
        ("GET", "/live/v2/charges", 405),
        ("PUT", "/v2/charges/S02-1", 405),
        ("GET", "/v3/charges/S02-1", 404),
    ):
        response = await amazon.http.request(method, f"{amazon.url}{path}")
        assert (response.status_code, response.json()["reasonCode"]) == (status, "RequestNotSupported"), path
    for headers in (
        {},
        {"authorization": "Bearer x", "x-amz-pay-date": "20260101T000000Z"},
        {"authorization": "AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=X, SignedHeaders=accept, Signature=AAAA"},
        {"authorization": "AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=X, SignedHeaders=accept, Signature=AAAA", "x-amz-pay-date": "yesterday"},
    ):  # fmt: skip
        response = await amazon.http.post(f"{amazon.url}/v2/charges", headers=headers, content=b"\xff\x00")
        assert response.status_code == 400
        assert response.json()["reasonCode"] in ("MissingHeader", "InvalidHeaderValue")
