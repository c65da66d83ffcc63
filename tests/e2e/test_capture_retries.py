"""Two-step invoices against the simulator when Amazon's answer is lost or Amazon refuses the capture.

A capture Amazon carried out whose answer never reached Kontor must not be made again by the retry (the same
idempotency key), must be linked to its invoice whichever reports it first (the retry's answer or the charge's
IPN), and the charge permission must stay open while an invoice is not captured. A capture Amazon refuses is a
documented problem and books nothing; the same request again tries the capture again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, item, make_shop


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator, "two_step")


async def lose_answers(shop: Shop) -> None:
    """Amazon carries out the next two POSTs (Kontor's two attempts) but their answers are lost on the way back."""
    await shop.sim.control("POST", "failures", json={"count": 2, "status": 504, "after": True, "method": "POST"})


@asynccontextmanager
async def ipns_held(shop: Shop) -> AsyncIterator[None]:
    """IPNs sent meanwhile are not delivered (Amazon's notification is late); afterwards they are delivered."""
    sim, url = shop.sim.sim, shop.sim.sim.ipn_url
    before = len(sim.sent)
    sim.ipn_url = None
    try:
        yield
    finally:
        sim.ipn_url = url
    for index in range(before, len(sim.sent)):
        await shop.sim.control("POST", "ipn/replay", json={"index": index})


def amazon_charges(shop: Shop, order: dict[str, Any]) -> list[tuple[str, int]]:
    """(state, captured minor units) of every charge Amazon has on the order's charge permission."""
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    permission = merchant.permissions[order["charge_permission_id"]]
    return [(merchant.charges[c].state, merchant.charges[c].captured or 0) for c in permission.charge_ids]


async def test_a_capture_whose_answer_was_lost_is_not_made_again_and_its_ipn_books_the_invoice(shop: Shop) -> None:
    """QA finding 1: Amazon captured 10.00, its answer was lost (502), the IPN recorded the capture; the retry of
    the same invoice made a second charge of 10.00. Now the IPN books the invoice with the charge, the retry
    replays it, and the second shipment is captured once from a new charge."""
    await shop.create_order("dbl1", [item(1, "10.00"), item(2, "100.00")])
    await lose_answers(shop)
    lost = await shop.invoice("dbl1", "DBL-I1", [1])
    assert (lost.status_code, lost.json()["code"]) == (502, "gateway_unavailable")
    await shop.drain_ipns()  # the capture's IPN arrives before the retry
    order = await shop.order("dbl1")
    assert [(c["state"], c["captured"], c["invoice_reference"]) for c in order["charges"]] == [
        ("Captured", "10.00", "DBL-I1")
    ]
    assert (order["money"]["invoiced"], order["money"]["paid"]) == ("10.00", "10.00")
    again = await shop.invoice("dbl1", "DBL-I1", [1])
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true"), again.text
    assert [(c["charge_id"], c["captured"]) for c in again.json()["charges"]] == [
        (order["charges"][0]["charge_id"], "10.00")
    ]
    second = await shop.invoice("dbl1", "DBL-I2", [2])
    assert second.status_code == 201, second.text
    order = await shop.order("dbl1")
    assert amazon_charges(shop, order) == [("Captured", 1000), ("Captured", 10000)]
    assert order["money"] == {
        "invoiced": "110.00",
        "credited": "0.00",
        "paid": "110.00",
        "refunded": "0.00",
        "open": "0.00",
    }
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_retry_before_the_ipn_links_the_existing_charge_to_its_invoice(shop: Shop) -> None:
    """The retry comes first: Amazon answers the same key with the charge it captured, which Kontor links to the
    invoice; the IPN that comes later books nothing more."""
    await shop.create_order("dbl2", [item(1, "10.00"), item(2, "100.00")])
    async with ipns_held(shop):
        await lose_answers(shop)
        lost = await shop.invoice("dbl2", "DBL2-I1", [1])
        assert lost.status_code == 502
        again = await shop.invoice("dbl2", "DBL2-I1", [1])
        assert again.status_code == 201, again.text
        assert [(c["state"], c["captured"], c["invoice_reference"]) for c in again.json()["charges"]] == [
            ("Captured", "10.00", "DBL2-I1")
        ]
    await shop.drain_ipns()
    order = await shop.order("dbl2")
    assert amazon_charges(shop, order) == [("Captured", 1000)]
    assert [(c["captured"], c["invoice_reference"]) for c in order["charges"]] == [("10.00", "DBL2-I1")]
    assert order["money"]["paid"] == "10.00"
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_new_charge_whose_answer_was_lost_is_found_by_its_ipn(shop: Shop) -> None:
    """The second shipment needs a new charge on the charge permission; its answer is lost too: the IPN names it,
    Kontor finds the invoice by the charge's merchantReferenceId, and the retry creates nothing new."""
    await shop.create_order("dbl3", [item(1, "40.00"), item(2, "60.00")])
    assert (await shop.invoice("dbl3", "DBL3-I1", [1])).status_code == 201
    await lose_answers(shop)
    assert (await shop.invoice("dbl3", "DBL3-I2", [2])).status_code == 502
    await shop.drain_ipns()
    again = await shop.invoice("dbl3", "DBL3-I2", [2])
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true"), again.text
    order = await shop.order("dbl3")
    assert amazon_charges(shop, order) == [("Captured", 4000), ("Captured", 6000)]
    assert [(c["captured"], c["invoice_reference"]) for c in order["charges"]] == [
        ("40.00", "DBL3-I1"),
        ("60.00", "DBL3-I2"),
    ]
    await shop.assert_books(("BALANCED", "0.00"))


async def test_the_charge_permission_stays_open_while_an_invoice_is_not_captured(shop: Shop) -> None:
    """QA finding 1, second variant: the rest of the order is cancelled while the first invoice's capture is
    unanswered; closing the charge permission then would leave the invoice uncollectable."""
    await shop.create_order("out2", [item(1, "119.00"), item(2, "10.70", vat="7")])
    async with ipns_held(shop):
        await lose_answers(shop)
        assert (await shop.invoice("out2", "OUT-I1", [1])).status_code == 502
        busy = await shop.document(
            "out2",
            "cancellations",
            {
                "cancellation_reference": "OUT-C1",
                "cancellation_date": "2026-11-21",
                "reason": "OUT_OF_STOCK",
                "items": [{"item_reference": 1}],
            },
        )
        assert (busy.status_code, busy.json()["code"]) == (409, "item_not_cancellable")
        cancelled = await shop.document(
            "out2",
            "cancellations",
            {
                "cancellation_reference": "OUT-C2",
                "cancellation_date": "2026-11-21",
                "reason": "OUT_OF_STOCK",
                "items": [{"item_reference": 2}],
            },
        )
        assert cancelled.status_code == 201, cancelled.text
        order = await shop.order("out2")
        merchant = shop.sim.sim.merchants[shop.merchant_id]
        assert merchant.permissions[order["charge_permission_id"]].state == "Chargeable"
        again = await shop.invoice("out2", "OUT-I1", [1])
        assert again.status_code == 201, again.text
    await shop.drain_ipns()
    order = await shop.order("out2")
    assert (order["status"], order["money"]["paid"], order["money"]["open"]) == ("invoiced", "119.00", "0.00")
    assert order["charge_permission_state"] == "Closed"
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_declined_capture_is_a_problem_books_nothing_and_the_retry_captures(shop: Shop) -> None:
    """QA finding 5: a soft-declined capture answered 201 with a Declined charge and booked the invoice."""
    await shop.create_order("cd1", [item(1, "20.00"), item(2, "30.00")])
    await shop.sim.control(
        "POST",
        "declines",
        json={"merchant_id": shop.merchant_id, "operation": "Capture", "reason_code": "SoftDeclined"},
    )
    declined = await shop.invoice("cd1", "CD-I1", [1])
    assert declined.status_code == 422, declined.text
    assert declined.headers["content-type"] == "application/problem+json"
    assert declined.json()["code"] == "amazon_pay_soft_declined"
    order = await shop.order("cd1")
    assert order["money"]["invoiced"] == "0.00"
    assert [i["state"] for i in order["items"]] == ["open", "open"]
    assert (await shop.tenant.get("/entries", reference="cd1")).json()["items"] == []
    retried = await shop.invoice("cd1", "CD-I1", [1])  # the buyer fixed the card: the same request captures now
    assert retried.status_code == 201, retried.text
    assert [(c["state"], c["captured"]) for c in retried.json()["charges"]] == [("Captured", "20.00")]
    await shop.sim.control(
        "POST",
        "declines",
        json={"merchant_id": shop.merchant_id, "operation": "CreateCharge", "reason_code": "HardDeclined"},
    )
    hard = await shop.invoice("cd1", "CD-I2", [2])
    assert (hard.status_code, hard.json()["code"]) == (422, "amazon_pay_hard_declined")
    assert (await shop.order("cd1"))["money"]["invoiced"] == "20.00"
    blocked = await shop.invoice("cd1", "CD-I2", [2])  # a hard decline makes the charge permission NonChargeable
    assert (blocked.status_code, blocked.json()["code"]) == (409, "amazon_pay_invalid_charge_permission_status")
    permission = (await shop.order("cd1"))["charge_permission_id"]
    await shop.sim.control(
        "POST",
        "charge-permissions/payment-method",
        json={"merchant_id": shop.merchant_id, "charge_permission_id": permission},
    )
    assert (await shop.invoice("cd1", "CD-I2", [2])).status_code == 201
    order = await shop.order("cd1")
    assert order["money"] == {
        "invoiced": "50.00",
        "credited": "0.00",
        "paid": "50.00",
        "refunded": "0.00",
        "open": "0.00",
    }
    await shop.assert_books(("BALANCED", "0.00"))


async def test_refused_credentials_are_a_409_and_book_nothing(shop: Shop) -> None:
    """QA finding 5: after the simulator forgot the merchant's key the invoice answered 200 with a charge
    Declined/InvalidRequestSignature and booked the invoice."""
    await shop.create_order("k1", [item(1, "20.00")])
    ring = shop.sim.sim.ring
    record = ring.keys.pop(shop.public_key_id)
    try:
        refused = await shop.invoice("k1", "K-I1", [1])
    finally:
        ring.keys[shop.public_key_id] = record
    assert (refused.status_code, refused.json()["code"]) == (409, "amazon_pay_access_refused")
    assert "InvalidRequestSignature" in refused.json()["detail"]
    assert (await shop.order("k1"))["money"]["invoiced"] == "0.00"
    again = await shop.invoice("k1", "K-I1", [1])
    assert again.status_code == 201, again.text
    # a refund Amazon refuses for the credentials is not declined: it stays Requested and goes out later
    record = ring.keys.pop(shop.public_key_id)
    try:
        returned = await shop.document(
            "k1",
            "returns",
            {
                "return_reference": "K-R1",
                "return_date": "2026-11-25",
                "invoice_reference": "K-I1",
                "reason": "CUSTOMER_RETURN",
                "items": [{"item_reference": 1}],
            },
        )
    finally:
        ring.keys[shop.public_key_id] = record
    assert returned.status_code == 201, returned.text
    assert [(r["state"], r["amount"]) for r in returned.json()["refunds"]] == [("Requested", "20.00")]
    assert returned.json()["refunded"] == "20.00"
    plugin = next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "follow_refunds"))  # type: ignore[attr-defined]
    await plugin.follow_refunds(shop.client._transport.app.state.kontor)  # type: ignore[attr-defined]
    assert [r["state"] for r in (await shop.order("k1"))["refunds"]] == ["RefundInitiated"]
    await shop.process_refunds()
    await shop.assert_books(("BALANCED", "0.00"))
