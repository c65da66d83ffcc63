"""Orders through Amazon Pay, over HTTP against the simulator: the reference product's use cases.

Every scenario ends with the books checked: the trial balance sums to zero, the Amazon Pay clearing
account (PSP) equals what the simulator says Amazon owes the merchant, and the customer's account
has the expected state.
"""

from __future__ import annotations

import json

import pytest

from ledger.context import Kontor
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, item, make_shop


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


@pytest.fixture
async def two_step(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator, "two_step")


async def follow_refunds(shop: Shop, ctx: Kontor) -> None:
    """Amazon completes the pending refunds; Kontor learns it by polling (IPNs are tested separately)."""
    await shop.sim.control("POST", "refunds/process", json={"seller_id": shop.seller_id})
    plugin = next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "follow_refunds"))  # type: ignore[attr-defined]
    await plugin.follow_refunds(ctx)


async def test_settings_keep_the_token_secret(shop: Shop) -> None:
    t = shop.tenant
    r = await t.client.get(t.url("/amazon-pay/settings"), headers=t.headers())
    assert r.status_code == 200
    assert "amzn.mws" not in r.text
    assert r.json()["mws_auth_token_set"] is True
    again = await t.client.put(
        t.url("/amazon-pay/settings"),
        headers=t.headers(),
        json={"seller_id": shop.seller_id, "payment_execution": "two_step"},
    )
    assert again.json()["payment_execution"] == "two_step"
    assert (await t.client.get(t.url("/amazon-pay/settings"), headers=t.headers(t.poster_key))).status_code == 403


async def test_one_step_order_invoice(shop: Shop) -> None:
    r = await shop.create_order("o-1", [item(1, "119.00"), item(2, "10.70", vat="7")])
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["gross_amount"]) == ("authorized", "129.70")
    assert [(c["state"], c["amount"]) for c in order["captures"]] == [("Completed", "129.70")]
    assert await shop.customer_state() == ("CREDIT", "129.70")  # prepaid until invoiced
    invoice = await shop.invoice("o-1", "INV-1", [1, 2])
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["gross_amount"] == "129.70"
    assert await shop.balance("8400") == "-100.00"
    assert await shop.balance("1776") == "-19.00"
    assert await shop.balance("8300") == "-10.00"
    assert await shop.balance("1771") == "-0.70"
    await shop.assert_books(("BALANCED", "0.00"))


async def test_two_step_with_two_invoices_captures_each(two_step: Shop) -> None:
    shop = two_step
    r = await shop.create_order("o-2", [item(1, "100.00"), item(2, "50.00")])
    assert r.status_code == 201, r.text
    assert r.json()["captures"] == []
    assert await shop.customer_state() == ("BALANCED", "0.00")
    first = await shop.invoice("o-2", "INV-21", [1])
    assert [(c["state"], c["amount"]) for c in first.json()["captures"]] == [("Completed", "100.00")]
    second = await shop.invoice("o-2", "INV-22", [2])
    assert [(c["state"], c["amount"]) for c in second.json()["captures"]] == [("Completed", "50.00")]
    order = await shop.order("o-2")
    assert len(order["captures"]) == 2
    assert order["money"] == {
        "invoiced": "150.00",
        "credited": "0.00",
        "paid": "150.00",
        "refunded": "0.00",
        "open": "0.00",
    }
    await shop.assert_books(("BALANCED", "0.00"))


async def test_cancellation_before_invoice_refunds_the_prepayment(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-3", [item(1, "60.00"), item(2, "40.00")])
    r = await shop.document(
        "o-3",
        "cancellations",
        {
            "cancellation_reference": "CAN-1",
            "cancellation_date": "2026-11-21",
            "reason": "OUT_OF_STOCK",
            "items": [{"item_reference": 2}],
        },
    )
    assert r.status_code == 201, r.text
    assert [(x["amount"], x["state"]) for x in r.json()["refunds"]] == [("40.00", "Pending")]
    await follow_refunds(shop, ctx)
    assert (await shop.order("o-3"))["refunds"][0]["state"] == "Completed"
    assert await shop.customer_state() == ("CREDIT", "60.00")
    await shop.invoice("o-3", "INV-3", [1])
    await shop.assert_books(("BALANCED", "0.00"))
    invoiced = await shop.document(
        "o-3",
        "cancellations",
        {
            "cancellation_reference": "CAN-2",
            "cancellation_date": "2026-11-22",
            "reason": "OUT_OF_STOCK",
            "items": [{"item_reference": 1}],
        },
    )
    assert (invoiced.status_code, invoiced.json()["code"]) == (409, "item_not_cancellable")


async def test_two_step_cancellation_closes_the_authorization(two_step: Shop) -> None:
    await two_step.create_order("o-4", [item(1, "30.00")])
    r = await two_step.document(
        "o-4",
        "cancellations",
        {
            "cancellation_reference": "CAN-4",
            "cancellation_date": "2026-11-21",
            "reason": "CUSTOMER_CANCELLATION",
            "items": [{"item_reference": 1}],
        },
    )
    assert r.status_code == 201
    assert r.json()["refunds"] == []
    seller = two_step.sim.sim.sellers[two_step.seller_id]
    assert [a.state for a in seller.authorizations.values()] == ["Closed"]
    await two_step.assert_books(("BALANCED", "0.00"))


async def test_partial_return_of_a_paid_invoice_is_refunded(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-5", [item(1, "20.00", quantity=3), item(2, "10.70", vat="7")])
    await shop.invoice("o-5", "INV-5", [1, 2])
    r = await shop.document(
        "o-5",
        "returns",
        {
            "return_reference": "RET-5",
            "return_date": "2026-11-25",
            "invoice_reference": "INV-5",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1, "quantity": 2}],
        },
    )
    assert r.status_code == 201, r.text
    assert (r.json()["gross_amount"], r.json()["refunded"], r.json()["offset"]) == ("40.00", "40.00", "0.00")
    assert await shop.balance("8400") == "-16.81"  # 60.00 -> 20.00 gross at 19 %: 16.81 net
    await follow_refunds(shop, ctx)
    await shop.assert_books(("BALANCED", "0.00"))
    beyond = await shop.document(
        "o-5",
        "returns",
        {
            "return_reference": "RET-6",
            "return_date": "2026-11-26",
            "invoice_reference": "INV-5",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1, "quantity": 2}],
        },
    )
    assert (beyond.status_code, beyond.json()["code"]) == (422, "return_exceeds_invoiced")
    uninvoiced = await shop.document(
        "o-5",
        "returns",
        {
            "return_reference": "RET-7",
            "return_date": "2026-11-26",
            "invoice_reference": "INV-X",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 2}],
        },
    )
    assert (uninvoiced.status_code, uninvoiced.json()["code"]) == (409, "item_not_invoiced")


async def test_return_while_unpaid_is_offset_without_refund(two_step: Shop) -> None:
    shop = two_step
    await shop.create_order("o-6", [item(1, "50.00"), item(2, "30.00")])
    declined = json.dumps({"SandboxSimulation": {"State": "Declined", "ReasonCode": "AmazonRejected"}})
    invoice = await shop.invoice("o-6", "INV-6", [1, 2], capture_note=declined)
    assert [(c["state"], c["reason"]) for c in invoice.json()["captures"]] == [("Declined", "AmazonRejected")]
    assert await shop.customer_state() == ("DEBIT", "80.00")
    r = await shop.document(
        "o-6",
        "returns",
        {
            "return_reference": "RET-61",
            "return_date": "2026-11-25",
            "invoice_reference": "INV-6",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 2}],
        },
    )
    assert (r.json()["refunded"], r.json()["offset"], r.json()["refunds"]) == ("0.00", "30.00", [])
    assert await shop.customer_state() == ("DEBIT", "50.00")
    paid = await shop.document(
        "o-6", "payments", {"payment_reference": "PAY-6", "payment_date": "2026-11-26", "amount": "50.00"}
    )
    assert paid.status_code == 201
    await shop.assert_books(("BALANCED", "0.00"))


async def test_goodwill_by_amount_splits_over_vat_rates(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-7", [item(1, "119.00"), item(2, "107.00", vat="7")])
    await shop.invoice("o-7", "INV-7", [1, 2])
    r = await shop.document(
        "o-7",
        "goodwills",
        {
            "goodwill_reference": "GW-7",
            "goodwill_date": "2026-11-25",
            "reason": "DELIVERY_DELAYED",
            "gross_amount": "22.60",
        },
    )
    assert r.status_code == 201, r.text
    # 22.60 pro rata to 119.00 / 107.00 = 11.90 / 10.70: net 10.00 + VAT 1.90, net 10.00 + VAT 0.70
    assert await shop.balance("8720") == "10.00"
    assert await shop.balance("8710") == "10.00"
    assert await shop.balance("1776") == "-17.10"
    assert await shop.balance("1771") == "-6.30"
    await follow_refunds(shop, ctx)
    await shop.assert_books(("BALANCED", "0.00"))
    too_much = await shop.document(
        "o-7",
        "goodwills",
        {"goodwill_reference": "GW-8", "goodwill_date": "2026-11-25", "reason": "OTHER", "gross_amount": "210.00"},
    )
    assert (too_much.status_code, too_much.json()["code"]) == (422, "credit_exceeds_invoiced")


async def test_at_most_ten_refunds_per_capture(shop: Shop, ctx: Kontor, pool: object) -> None:
    await shop.create_order("o-8", [item(1, "10.00", quantity=12)])
    await shop.invoice("o-8", "INV-8", [1])
    for n in range(10):
        r = await shop.document(
            "o-8",
            "returns",
            {
                "return_reference": f"RET-8-{n}",
                "return_date": "2026-11-25",
                "invoice_reference": "INV-8",
                "reason": "CUSTOMER_RETURN",
                "items": [{"item_reference": 1, "quantity": 1}],
            },
        )
        assert r.status_code == 201, r.text
    eleventh = await shop.document(
        "o-8",
        "returns",
        {
            "return_reference": "RET-8-10",
            "return_date": "2026-11-25",
            "invoice_reference": "INV-8",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1, "quantity": 1}],
        },
    )
    assert (eleventh.status_code, eleventh.json()["code"]) == (422, "refund_limit_exceeded")
    order = await shop.order("o-8")
    assert order["money"]["credited"] == "100.00", "the refused return booked nothing"
    await follow_refunds(shop, ctx)
    await shop.assert_books(("BALANCED", "0.00"))  # two items kept: invoiced 20.00, paid 20.00


async def test_documents_out_of_order_and_replays(shop: Shop) -> None:
    unknown = await shop.invoice("nope", "INV-0", [1])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "order_not_found")
    await shop.create_order("o-9", [item(1, "10.00"), item(2, "5.00")])
    first = await shop.invoice("o-9", "INV-9", [1])
    replay = await shop.invoice("o-9", "INV-9", [1])
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json() == first.json()
    other = await shop.invoice("o-9", "INV-9", [2])
    assert (other.status_code, other.json()["code"]) == (409, "reference_reused")
    twice = await shop.invoice("o-9", "INV-10", [1])
    assert (twice.status_code, twice.json()["code"]) == (409, "item_not_open")
    missing = await shop.invoice("o-9", "INV-11", [7])
    assert (missing.status_code, missing.json()["errors"][0]["field"]) == (422, "items[0].item_reference")
    same = await shop.create_order("o-9", [item(1, "10.00"), item(2, "5.00")])
    assert same.status_code == 409  # a new Amazon reference: other data under the same order reference
    await shop.assert_books()


async def test_declined_authorization(shop: Shop) -> None:
    note = json.dumps({"SandboxSimulation": {"State": "Declined", "ReasonCode": "InvalidPaymentMethod"}})
    r = await shop.create_order("o-10", [item(1, "10.00")], payment={"seller_note": note})
    assert (r.status_code, r.json()["code"]) == (422, "payment_declined")
    assert (await shop.order("o-10"))["status"] == "declined"
    invoice = await shop.invoice("o-10", "INV-10", [1])
    assert (invoice.status_code, invoice.json()["code"]) == (409, "order_not_payable")
    await shop.assert_books(("BALANCED", "0.00"))


async def test_orders_need_amazon_pay_settings(tenant: Tenant) -> None:
    r = await tenant.client.post(
        tenant.url("/customers/C-1/orders"),
        headers=tenant.headers(tenant.poster_key),
        json={
            "order_reference": "x",
            "order_date": "2026-11-20",
            "items": [item(1, "1.00")],
            "payment_method": {"amazon_order_reference_id": "S02-1234567-1234567"},
        },
    )
    assert (r.status_code, r.json()["code"]) == (409, "amazon_pay_not_configured")
