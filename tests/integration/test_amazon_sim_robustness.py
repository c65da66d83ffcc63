"""The simulated Amazon Pay never answers 500 to what a client sends: generated bodies and queries, correctly
signed, against every write route (with real ids, so that validation goes deep), must get Amazon's error
shape or a success - never a server error.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from payments.amazon import signing
from payments.amazon.simulator import AmazonPaySimulator
from tests.integration.amazon_v2 import shared_key

KEYS = [
    "chargePermissionId", "chargeAmount", "captureAmount", "refundAmount", "chargeId", "captureNow",
    "canHandlePendingAuthorization", "softDescriptor", "merchantMetadata", "merchantReferenceId",
    "webCheckoutDetails", "checkoutResultReturnUrl", "paymentDetails", "paymentIntent", "storeId",
    "closureReason", "cancelPendingCharges", "cancellationReason", "merchantEvidences", "evidenceType",
    "fileId", "evidenceText", "type", "purpose", "reportType", "startTime", "endTime", "totalOrderAmount",
]  # fmt: skip
PRICE = st.fixed_dictionaries(
    {
        "amount": st.one_of(
            st.decimals(min_value=Decimal(0), max_value=Decimal(10**9), places=3).map(str), st.text(max_size=8)
        ),
        "currencyCode": st.sampled_from(["EUR", "USD", "JPY", "XXX", "eur", ""]),
    }
)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12), PRICE)
VALUES = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6).map(lambda v: json.dumps(v).encode()),
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)
QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["reportTypes", "processingStatuses", "createdSince", "createdUntil", "pageSize", "nextToken", "startTime", "endTime", "x"]),
        st.one_of(st.text(max_size=16), st.sampled_from(["20240101T000000Z", "2024-01-01T00-00-00Z", "0", "101", "eyJxIjp7fSwibyI6LTF9"])),
    ),
    max_size=4,
)  # fmt: skip


class Signed:
    """A merchant of an in-process simulator, and correctly signed raw requests for it."""

    def __init__(self, client: TestClient[Any], sim: AmazonPaySimulator) -> None:
        self.client, self.sim = client, sim
        merchant, self.key_id, _ = sim.register_merchant(public_key=shared_key().public_key())
        self.merchant_id = merchant.merchant_id

    def send(
        self, method: str, path: str, body: bytes = b"", query: list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        pairs = query or []
        headers = {
            "accept": "application/json",
            "content-type": "application/json",
            "x-amz-pay-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-pay-host": "testserver.local",
            "x-amz-pay-region": "eu",
        }
        if method == "POST":
            headers["x-amz-pay-idempotency-key"] = secrets.token_hex(12)
        names = sorted(headers)
        canonical = signing.canonical_request(method, path, pairs, headers, names, body)
        signature = signing.sign(shared_key(), signing.string_to_sign(canonical))
        headers["authorization"] = signing.Authorization(
            signing.ALGORITHM, self.key_id, tuple(names), signature
        ).header()
        query_text = signing.canonical_query(pairs)
        return self.client.request(
            method, path + (f"?{query_text}" if query_text else ""), content=body, headers=headers
        )

    def ids(self) -> dict[str, str]:
        """Real objects to aim at: an open session, a permission, an authorized and a captured charge, a dispute."""
        control = self.client.post
        open_id = control("/sim/checkout-sessions", json={"merchant_id": self.merchant_id, "amount": "10.00"}).json()
        done_id = control("/sim/checkout-sessions", json={"merchant_id": self.merchant_id, "amount": "10.00", "payment_intent": "AuthorizeWithCapture"}).json()  # fmt: skip
        price = json.dumps({"chargeAmount": {"amount": "10.00", "currencyCode": "EUR"}}).encode()
        completed = self.send("POST", f"/v2/checkoutSessions/{done_id['checkoutSessionId']}/complete", price).json()
        dispute = {"merchant_id": self.merchant_id, "charge_id": completed["chargeId"], "amount": "1.00"}
        auth_id = control("/sim/checkout-sessions", json={"merchant_id": self.merchant_id, "amount": "10.00"}).json()
        authorized = self.send("POST", f"/v2/checkoutSessions/{auth_id['checkoutSessionId']}/complete", price).json()
        return {
            "session": open_id["checkoutSessionId"],
            "permission": authorized["chargePermissionId"],
            "authorized": authorized["chargeId"],
            "captured": completed["chargeId"],
            "dispute": control("/sim/disputes", json=dispute).json()["disputeId"],
        }


@pytest.fixture(scope="module")
def signed() -> Iterator[Signed]:
    sim = AmazonPaySimulator()
    with TestClient(sim.app()) as client:
        yield Signed(client, sim)


ROUTES = [
    ("POST", "/v2/checkoutSessions"),
    ("PATCH", "/v2/checkoutSessions/{session}"),
    ("POST", "/v2/checkoutSessions/{session}/complete"),
    ("PATCH", "/v2/chargePermissions/{permission}"),
    ("DELETE", "/v2/chargePermissions/{permission}/close"),
    ("POST", "/v2/charges"),
    ("POST", "/v2/charges/{authorized}/capture"),
    ("DELETE", "/v2/charges/{authorized}/cancel"),
    ("POST", "/v2/refunds"),
    ("POST", "/v2/disputes/{dispute}/contest"),
    ("POST", "/v2/files"),
    ("POST", "/v2/reports"),
]


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_generated_bodies_never_get_a_server_error(signed: Signed, method: str, template: str) -> None:
    path = template.format(**signed.ids())

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=BODIES)
    def check(body: bytes) -> None:
        response = signed.send(method, path, body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert set(response.json()) == {"reasonCode", "message"}

    check()


@pytest.mark.parametrize("path", ["/v2/reports", "/v2/disbursements"])
def test_generated_queries_never_get_a_server_error(signed: Signed, path: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(query=QUERIES)
    def check(query: list[tuple[str, str]]) -> None:
        response = signed.send("GET", path, query=query)
        assert response.status_code < 500, response.text

    check()
