"""Orders through Amazon Pay (API v2), over HTTP against the simulator: the reference product's use cases.

Every scenario ends with the books checked: the trial balance sums to zero, the Amazon Pay clearing
account (PSP) equals what the simulator says Amazon owes the merchant, and the customer's account
has the expected state.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.context import Kontor
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, eventually, item, make_shop


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


@pytest.fixture
async def two_step(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator, "two_step")


def _plugin(shop: Shop) -> Any:
    return next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "follow_refunds"))  # type: ignore[attr-defined]


async def follow_refunds(shop: Shop, ctx: Kontor) -> None:
    """Amazon completes the refunds; Kontor learns it by polling (IPNs are tested separately)."""
    await shop.sim.control("POST", "refunds/process", json={"merchant_id": shop.merchant_id})
    await _plugin(shop).follow_refunds(ctx)


def _return(ref: str, invoice: str, items: list[dict[str, Any]], on: str = "2026-11-25") -> dict[str, Any]:
    return {
        "return_reference": ref,
        "return_date": on,
        "invoice_reference": invoice,
        "reason": "CUSTOMER_RETURN",
        "items": items,
    }


def _cancellation(ref: str, items: list[int]) -> dict[str, Any]:
    return {
        "cancellation_reference": ref,
        "cancellation_date": "2026-11-21",
        "reason": "OUT_OF_STOCK",
        "items": [{"item_reference": i} for i in items],
    }


async def test_one_step_order_invoice(shop: Shop) -> None:
    r = await shop.create_order("o-1", [item(1, "119.00"), item(2, "10.70", vat="7")])
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["gross_amount"]) == ("captured", "129.70")
    assert order["checkout_session_id"] is not None
    assert order["charge_permission_id"] is not None
    assert [(c["state"], c["amount"], c["captured"]) for c in order["charges"]] == [("Captured", "129.70", "129.70")]
    assert await shop.customer_state() == ("CREDIT", "129.70")  # prepaid until invoiced
    invoice = await shop.invoice("o-1", "INV-1", [1, 2])
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["gross_amount"] == "129.70"
    assert await shop.balance("8400") == "-100.00"
    assert await shop.balance("1776") == "-19.00"
    assert await shop.balance("8300") == "-10.00"
    assert await shop.balance("1771") == "-0.70"
    done = await shop.order("o-1")
    assert done["status"] == "invoiced"
    assert done["charge_permission_state"] == "Closed"  # nothing left to charge: Kontor closed it
    await shop.assert_books(("BALANCED", "0.00"))


async def test_two_step_with_two_invoices_captures_each(two_step: Shop) -> None:
    shop = two_step
    r = await shop.create_order("o-2", [item(1, "100.00"), item(2, "50.00")])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "authorized"
    assert [(c["state"], c["amount"]) for c in r.json()["charges"]] == [("Authorized", "150.00")]
    assert await shop.customer_state() == ("BALANCED", "0.00")
    first = await shop.invoice("o-2", "INV-21", [1])
    assert [(c["state"], c["captured"], c["invoice_reference"]) for c in first.json()["charges"]] == [
        ("Captured", "100.00", "INV-21")
    ]
    assert (await shop.order("o-2"))["status"] == "captured"
    second = await shop.invoice("o-2", "INV-22", [2])  # the authorization is used up: a new charge on the permission
    assert [(c["state"], c["captured"]) for c in second.json()["charges"]] == [("Captured", "50.00")]
    assert first.json()["charges"][0]["charge_id"] != second.json()["charges"][0]["charge_id"]
    order = await shop.order("o-2")
    assert order["status"] == "invoiced"
    assert len(order["charges"]) == 2
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
    r = await shop.document("o-3", "cancellations", _cancellation("CAN-1", [2]))
    assert r.status_code == 201, r.text
    assert [(x["amount"], x["state"]) for x in r.json()["refunds"]] == [("40.00", "RefundInitiated")]
    await follow_refunds(shop, ctx)
    assert (await shop.order("o-3"))["refunds"][0]["state"] == "Refunded"
    assert await shop.customer_state() == ("CREDIT", "60.00")
    await shop.invoice("o-3", "INV-3", [1])
    await shop.assert_books(("BALANCED", "0.00"))
    invoiced = await shop.document("o-3", "cancellations", _cancellation("CAN-2", [1]))
    assert (invoiced.status_code, invoiced.json()["code"]) == (409, "item_not_cancellable")


async def test_one_step_cancellation_of_everything_refunds_it_all(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-3b", [item(1, "25.00")])
    r = await shop.document("o-3b", "cancellations", _cancellation("CAN-3b", [1]))
    assert r.status_code == 201, r.text
    await follow_refunds(shop, ctx)
    order = await shop.order("o-3b")
    assert (order["status"], order["charge_permission_state"]) == ("cancelled", "Closed")
    await shop.assert_books(("BALANCED", "0.00"))


async def test_two_step_cancellation_cancels_the_charge_and_closes_the_permission(two_step: Shop) -> None:
    r = await two_step.create_order("o-4", [item(1, "30.00")])
    cancelled = await two_step.document("o-4", "cancellations", _cancellation("CAN-4", [1]))
    assert cancelled.status_code == 201
    assert cancelled.json()["refunds"] == []
    order = await two_step.order("o-4")
    assert (order["status"], order["charge_permission_state"]) == ("cancelled", "Closed")
    assert [(c["state"], c["reason"]) for c in order["charges"]] == [("Canceled", "MerchantCanceled")]
    merchant = two_step.sim.sim.merchants[two_step.merchant_id]
    charge = merchant.charges[r.json()["charges"][0]["charge_id"]]
    assert charge.state == "Canceled"
    await two_step.assert_books(("BALANCED", "0.00"))


async def test_partial_return_of_a_paid_invoice_is_refunded(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-5", [item(1, "20.00", quantity=3), item(2, "10.70", vat="7")])
    await shop.invoice("o-5", "INV-5", [1, 2])
    r = await shop.document("o-5", "returns", _return("RET-5", "INV-5", [{"item_reference": 1, "quantity": 2}]))
    assert r.status_code == 201, r.text
    assert (r.json()["gross_amount"], r.json()["refunded"], r.json()["offset"]) == ("40.00", "40.00", "0.00")
    assert await shop.balance("8400") == "-16.81"  # 60.00 -> 20.00 gross at 19 %: 16.81 net
    await follow_refunds(shop, ctx)
    await shop.assert_books(("BALANCED", "0.00"))
    beyond = await shop.document("o-5", "returns", _return("RET-6", "INV-5", [{"item_reference": 1, "quantity": 2}]))
    assert (beyond.status_code, beyond.json()["code"]) == (422, "return_exceeds_invoiced")
    unknown = await shop.document("o-5", "returns", _return("RET-7", "INV-X", [{"item_reference": 2}]))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "invoice_not_found")
    assert unknown.json()["errors"][0]["field"] == "invoice_reference"


async def test_unit_returns_reverse_exactly_the_invoiced_vat(shop: Shop, ctx: Kontor) -> None:
    """3 x 1.05 at 19 %: the invoice books 0.50 VAT; returned one by one the credits take 0.17, 0.17, 0.16."""
    await shop.create_order("o-5v", [item(1, "1.05", quantity=3)])
    await shop.invoice("o-5v", "INV-5v", [1])
    for n in range(3):
        r = await shop.document(
            "o-5v", "returns", _return(f"RET-5v-{n}", "INV-5v", [{"item_reference": 1, "quantity": 1}])
        )
        assert r.status_code == 201, r.text
    assert await shop.balance("1776") == "0.00"
    assert await shop.balance("8400") == "0.00"
    await follow_refunds(shop, ctx)
    assert (await shop.order("o-5v"))["status"] == "refunded"
    await shop.assert_books(("BALANCED", "0.00"))


async def test_return_while_unpaid_is_offset_without_refund(two_step: Shop) -> None:
    """A capture more than 7 days after the authorization is CaptureInitiated: the invoice is booked, not yet paid;
    a return then is offset against what is open, nothing is refunded."""
    shop = two_step
    await shop.create_order("o-6", [item(1, "50.00"), item(2, "30.00")])
    await shop.sim.control("POST", "clock", json={"days": 8})
    invoice = await shop.invoice("o-6", "INV-6", [1, 2])
    assert [c["state"] for c in invoice.json()["charges"]] == ["CaptureInitiated"]
    assert await shop.customer_state() == ("DEBIT", "80.00")
    r = await shop.document("o-6", "returns", _return("RET-61", "INV-6", [{"item_reference": 2}]))
    assert (r.json()["refunded"], r.json()["offset"], r.json()["refunds"]) == ("0.00", "30.00", [])
    assert await shop.customer_state() == ("DEBIT", "50.00")
    paid = await shop.document(
        "o-6", "payments", {"payment_reference": "PAY-6", "payment_date": "2026-11-26", "amount": "50.00"}
    )
    assert paid.status_code == 201


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


async def test_at_most_ten_refunds_per_charge(shop: Shop, ctx: Kontor) -> None:
    await shop.create_order("o-8", [item(1, "10.00", quantity=12)])
    await shop.invoice("o-8", "INV-8", [1])
    for n in range(10):
        r = await shop.document(
            "o-8", "returns", _return(f"RET-8-{n}", "INV-8", [{"item_reference": 1, "quantity": 1}])
        )
        assert r.status_code == 201, r.text
    eleventh = await shop.document(
        "o-8", "returns", _return("RET-8-10", "INV-8", [{"item_reference": 1, "quantity": 1}])
    )
    assert (eleventh.status_code, eleventh.json()["code"]) == (422, "refund_limit_exceeded")
    order = await shop.order("o-8")
    assert order["money"]["credited"] == "100.00", "the refused return booked nothing"
    await follow_refunds(shop, ctx)
    await shop.assert_books(("BALANCED", "0.00"))  # two items kept: invoiced 20.00, paid 20.00


async def test_documents_out_of_order_and_replays(shop: Shop) -> None:
    unknown = await shop.invoice("nope", "INV-0", [1])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "order_not_found")
    created = await shop.create_order("o-9", [item(1, "10.00"), item(2, "5.00")])
    again = await shop.create_order(
        "o-9", [item(1, "10.00"), item(2, "5.00")], checkout_session_id=created.json()["checkout_session_id"]
    )
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.json()) == (201, "true", created.json())
    # a retry: the same order, nothing charged twice
    first = await shop.invoice("o-9", "INV-9", [1])
    replay = await shop.invoice("o-9", "INV-9", [1])
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json() == first.json()
    other = await shop.invoice("o-9", "INV-9", [2])
    assert (other.status_code, other.json()["code"]) == (409, "reference_reused")
    twice = await shop.invoice("o-9", "INV-10", [1])
    assert (twice.status_code, twice.json()["code"]) == (409, "item_not_open")
    missing = await shop.invoice("o-9", "INV-11", [7])
    assert (missing.status_code, missing.json()["errors"][0]["field"]) == (422, "items[0].item_reference")
    same = await shop.create_order("o-9", [item(1, "10.00"), item(2, "5.00")])
    assert same.status_code == 409  # another checkout session: other data under the same order reference
    await shop.assert_books()


async def test_checkout_must_fit_the_order(shop: Shop, pool: Any) -> None:
    session = await shop.checkout("99.00")
    amount = await shop.create_order("o-m", [item(1, "10.00")], checkout_session_id=session)
    assert (amount.status_code, amount.json()["code"]) == (422, "checkout_amount_mismatch")
    assert amount.json()["errors"][0]["field"] == "payment_method.checkout_session_id"
    authorize_only = await shop.checkout("10.00", payment_intent="Authorize")  # for a one-step business code
    intent = await shop.create_order("o-m", [item(1, "10.00")], checkout_session_id=authorize_only)
    assert (intent.status_code, intent.json()["code"]) == (422, "payment_intent_mismatch")
    unknown = await shop.create_order("o-m", [item(1, "10.00")], checkout_session_id="no-such-session")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "checkout_session_unknown")
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM orders WHERE merchant_id = $1 AND order_ref = 'o-m'", shop.tenant.merchant_id
        )
        == 0
    ), "nothing stored"


async def test_hard_declined_authorization(shop: Shop) -> None:
    r = await shop.create_order("o-10", [item(1, "10.00")], buyer={"simulation": "HardDeclined"})
    assert (r.status_code, r.json()["code"]) == (422, "payment_declined")
    order = await shop.order("o-10")
    assert order["status"] == "declined"
    invoice = await shop.invoice("o-10", "INV-10", [1])
    assert (invoice.status_code, invoice.json()["code"]) == (409, "order_not_payable")
    await shop.assert_books(("BALANCED", "0.00"))


async def test_buyer_canceled_checkout(shop: Shop) -> None:
    r = await shop.create_order("o-10c", [item(1, "10.00")], buyer={"simulation": "BuyerCanceled"})
    assert (r.status_code, r.json()["code"]) == (422, "payment_declined")
    assert (await shop.order("o-10c"))["status"] == "declined"


async def test_pending_authorization_becomes_authorized_by_ipn(two_step: Shop) -> None:
    shop = two_step
    r = await shop.create_order(
        "o-11",
        [item(1, "40.00")],
        buyer={"simulation": "PendingThenAuthorized", "can_handle_pending_authorization": True},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "authorization_pending"
    early = await shop.invoice("o-11", "INV-11", [1])
    assert (early.status_code, early.json()["code"]) == (409, "order_not_payable")
    await shop.sim.control("POST", "charges/process", json={"merchant_id": shop.merchant_id})

    async def authorized() -> None:
        assert (await shop.order("o-11"))["status"] == "authorized"

    await eventually(authorized)
    invoice = await shop.invoice("o-11", "INV-11", [1])
    assert [c["state"] for c in invoice.json()["charges"]] == ["Captured"]
    await shop.assert_books(("BALANCED", "0.00"))


async def test_soft_decline_is_authorized_again_when_the_buyer_updates_the_payment_method(shop: Shop) -> None:
    r = await shop.create_order(
        "o-12",
        [item(1, "30.00")],
        buyer={"simulation": "SoftDeclined"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "payment_declined")
    order = await shop.order("o-12")
    assert (order["status"], order["status_reason"]) == ("declined", "SoftDeclined")
    await shop.sim.control(
        "POST",
        "charge-permissions/payment-method",
        json={"merchant_id": shop.merchant_id, "charge_permission_id": order["charge_permission_id"]},
    )

    async def captured() -> None:
        again = await shop.order("o-12")
        assert again["status"] == "captured", again
        assert [c["state"] for c in again["charges"]] == ["Declined", "Captured"]

    await eventually(captured)
    await shop.assert_books(("CREDIT", "30.00"))


async def test_expired_authorization_is_authorized_again_by_the_invoice(two_step: Shop) -> None:
    shop = two_step
    await shop.create_order("o-13", [item(1, "70.00")])
    await shop.sim.control("POST", "clock", json={"days": 31})

    async def expired() -> None:
        order = await shop.order("o-13")
        assert (order["status"], order["status_reason"]) == ("authorization_expired", "ExpiredUnused"), order

    await eventually(expired)
    invoice = await shop.invoice("o-13", "INV-13", [1])
    assert [(c["state"], c["captured"]) for c in invoice.json()["charges"]] == [("Captured", "70.00")]
    assert (await shop.order("o-13"))["status"] == "invoiced"
    await shop.assert_books(("BALANCED", "0.00"))


async def test_capture_after_seven_days_is_booked_when_amazon_completes_it(two_step: Shop) -> None:
    shop = two_step
    await shop.create_order("o-14", [item(1, "15.00")])
    await shop.sim.control("POST", "clock", json={"days": 8})
    invoice = await shop.invoice("o-14", "INV-14", [1])
    assert [c["state"] for c in invoice.json()["charges"]] == ["CaptureInitiated"]
    assert await shop.customer_state() == ("DEBIT", "15.00")
    await shop.sim.control("POST", "charges/process", json={"merchant_id": shop.merchant_id})

    async def paid() -> None:
        assert await shop.customer_state() == ("BALANCED", "0.00")

    await eventually(paid)
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_lost_capture_is_resumed_by_the_retry(two_step: Shop) -> None:
    """Amazon out of reach while capturing: 502 and nothing booked; the same request again captures (the same
    idempotency key: never twice) and books the invoice."""
    shop = two_step
    await shop.create_order("o-15", [item(1, "12.00")])
    await shop.sim.control("POST", "failures", json={"count": 2, "status": 503})
    lost = await shop.invoice("o-15", "INV-15", [1])
    assert (lost.status_code, lost.json()["code"]) == (502, "gateway_unavailable")
    assert (await shop.order("o-15"))["money"]["invoiced"] == "0.00"
    again = await shop.invoice("o-15", "INV-15", [1])
    assert again.status_code == 201, again.text
    assert [c["state"] for c in again.json()["charges"]] == ["Captured"]
    replayed = await shop.invoice("o-15", "INV-15", [1])
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"], replayed.json()) == (
        201,
        "true",
        again.json(),
    )
    await shop.assert_books(("BALANCED", "0.00"))


async def test_the_generic_reversal_refuses_an_orders_documents_and_amazons_bookings(shop: Shop) -> None:
    """QA14 #10: reversing an invoice's entry alone would leave the order "invoiced" without its receivable and the
    VAT summary with a negative sale; the capture Amazon reported would leave PSP wrong. Both are 409
    `entry_reversal_refused` naming the document and what to use instead; nothing is booked."""
    t = shop.tenant
    assert (await shop.create_order("o-rev", [item(1, "119.00")])).status_code == 201
    assert (await shop.invoice("o-rev", "INV-rev", [1])).status_code == 201
    before = (await t.get("/entries", order_reference="o-rev")).json()["items"]
    by_kind = {("invoice" if "invoice" in e["metadata"] else "capture"): e for e in before}
    invoice = await t.post(f"/entries/{by_kind['invoice']['id']}/reversal", {"reason": "Rechnung storniert"},
                           key=t.accountant_key)  # fmt: skip
    assert (invoice.status_code, invoice.json()["code"]) == (409, "entry_reversal_refused"), invoice.text
    assert "invoice INV-rev of order o-rev" in invoice.json()["detail"]
    assert "/orders/o-rev/returns" in invoice.json()["detail"]
    capture = await t.post(f"/entries/{by_kind['capture']['id']}/reversal", {}, key=t.poster_key)
    assert (capture.status_code, capture.json()["code"]) == (409, "entry_reversal_refused"), capture.text
    assert "Amazon Pay" in capture.json()["detail"]
    assert (await t.get("/entries", order_reference="o-rev")).json()["items"] == before
    assert (await t.get("/audit", action="entry.reversed")).json()["items"] == []
    assert (await shop.order("o-rev"))["status"] == "invoiced"
    await shop.assert_books(("BALANCED", "0.00"))
    # an entry that only claims to be a document in its metadata is reversed as any other
    forged = await t.post_entry([{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}],
                                metadata={"invoice": "INV-rev"})  # fmt: skip
    assert (await t.post(f"/entries/{forged.json()['id']}/reversal", {}, key=t.poster_key)).status_code == 201
