"""Amazon Pay IPNs over real HTTP: the simulator signs and sends them, the service verifies, stores,
acknowledges, and processes each exactly once (re-reading the object at Amazon before booking)."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, eventually, make_shop, paid_order


async def ipn_rows(pool: asyncpg.Pool, merchant_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT notification_type, outcome, processed_at FROM ipn_messages WHERE merchant_id = $1 ORDER BY received_at",
        merchant_id,
    )


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


async def test_refund_completed_by_ipn_is_booked_once(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-1")
    r = await shop.document(
        "ipn-1",
        "returns",
        {
            "return_reference": "R-ipn-1",
            "return_date": "2026-11-25",
            "invoice_reference": "I-ipn-1",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 2}],
        },
    )
    assert r.json()["refunds"][0]["state"] == "Pending"
    await shop.sim.control("POST", "refunds/process", json={"seller_id": shop.seller_id})

    async def refund_completed() -> None:
        assert (await shop.order("ipn-1"))["refunds"][0]["state"] == "Completed"

    await eventually(refund_completed)
    await shop.assert_books(("BALANCED", "0.00"))
    rows = await ipn_rows(pool, shop.tenant.merchant_id)
    assert {r["notification_type"] for r in rows} >= {"PaymentAuthorize", "PaymentCapture", "PaymentRefund"}
    assert all(r["processed_at"] is not None for r in rows)
    # the IPNs of Kontor's own capture were applied without booking it a second time
    assert any(r["outcome"] == "capture Completed" for r in rows)

    # a replay of the very same notification is acknowledged and ignored
    sent = (await shop.sim.control("GET", "ipn/sent")).json()
    index = max(i for i, m in enumerate(sent) if "PaymentRefund" in m["body"] and shop.seller_id in m["body"])
    replay = await shop.sim.control("POST", "ipn/replay", json={"index": index})
    assert replay.json()["status"] == 200
    assert len(await ipn_rows(pool, shop.tenant.merchant_id)) == len(rows)
    await shop.assert_books(("BALANCED", "0.00"))


async def test_declined_refund_leaves_the_customer_in_credit(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-2")
    await shop.sim.control(
        "POST", "declines", json={"seller_id": shop.seller_id, "operation": "Refund", "reason": "AmazonRejected"}
    )
    await shop.document(
        "ipn-2",
        "goodwills",
        {
            "goodwill_reference": "G-ipn-2",
            "goodwill_date": "2026-11-25",
            "reason": "ARTICLE_DEFECTIVE",
            "gross_amount": "10.00",
        },
    )
    await shop.sim.control("POST", "refunds/process", json={"seller_id": shop.seller_id})

    async def declined() -> None:
        refund = (await shop.order("ipn-2"))["refunds"][0]
        assert (refund["state"], refund["reason"]) == ("Declined", "AmazonRejected")

    await eventually(declined)
    await shop.assert_books(("CREDIT", "10.00"))
    events = await pool.fetch(
        "SELECT type, payload FROM outbox WHERE merchant_id = $1 AND type = 'refund.declined'", shop.tenant.merchant_id
    )
    assert [e["payload"]["reason"] for e in events] == ["AmazonRejected"]


async def post_ipn(app_url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{app_url}/v1/amazon-pay/ipn", content=body, headers=headers)


def service_url(simulator: Simulator) -> str:
    assert simulator.sim.ipn_url
    return str(simulator.sim.ipn_url).removesuffix("/v1/amazon-pay/ipn")


async def test_forged_and_malformed_ipns_are_refused(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-3")
    await shop.sim.control("POST", "idle")
    body, headers = shop.sim.sim.sent[-1]
    envelope = json.loads(body)
    before = len(await ipn_rows(pool, shop.tenant.merchant_id))
    url = service_url(shop.sim)

    tampered = dict(envelope, Message=envelope["Message"].replace("Completed", "Declined"))
    other_topic = dict(envelope, TopicArn=envelope["TopicArn"].replace("291180941288", "123456789012"))
    foreign_cert = dict(envelope, SigningCertURL="https://evil.example.com/cert.pem")
    other_seller = json.loads(envelope["Message"]) | {"SellerId": "AFORGED00000"}
    cases = [
        (json.dumps(tampered).encode(), headers, 403),
        (json.dumps(other_topic).encode(), {**headers, "x-amz-sns-topic-arn": other_topic["TopicArn"]}, 403),
        (json.dumps(foreign_cert).encode(), headers, 403),
        (json.dumps(dict(envelope, Message=json.dumps(other_seller))).encode(), headers, 403),
        (body, {**headers, "x-amz-sns-topic-arn": "arn:aws:sns:eu-west-1:291180941288:other"}, 403),
        (body, {**headers, "x-amz-sns-message-type": "SubscriptionConfirmation"}, 400),
        (b"{not json", headers, 400),
        (b"x" * 300_000, headers, 413),
    ]
    for payload, hdrs, status in cases:
        r = await post_ipn(url, payload, hdrs)
        assert r.status_code == status, (status, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert len(await ipn_rows(pool, shop.tenant.merchant_id)) == before, "nothing was stored"
    genuine = await post_ipn(url, body, headers)
    assert genuine.status_code == 200  # a duplicate of a genuine one is acknowledged
    await shop.assert_books(("BALANCED", "0.00"))


async def test_chargeback_ipn_revives_the_claim_and_opens_a_dispute(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-4")
    capture_id = (await shop.order("ipn-4"))["captures"][0]["capture_id"]
    r = await shop.sim.control(
        "POST",
        "chargebacks",
        json={
            "seller_id": shop.seller_id,
            "capture_id": capture_id,
            "amount": "60.00",
            "reason": "Unauthorized Transaction",
        },
    )
    chargeback_id = r.json()["chargeback_id"]

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    disputes = (await shop.tenant.get("/disputes")).json()
    assert [(d["chargeback_id"], d["state"], d["amount"], d["deadline"]) for d in disputes] == [
        (chargeback_id, "open", "60.00", "2026-12-08")
    ]  # the test clock's today + 11 days
    await shop.sim.control("POST", "ipn/replay", json={"index": len(shop.sim.sim.sent) - 1})
    await shop.assert_books(("DEBIT", "60.00"))
    assert await pool.fetchval("SELECT count(*) FROM chargebacks WHERE merchant_id = $1", shop.tenant.merchant_id) == 1
    # the chargeback counts against the refund limit: 60.00 captured, 60.00 charged back, 9.00 left
    refund = await shop.document(
        "ipn-4",
        "goodwills",
        {"goodwill_reference": "G-ipn-4", "goodwill_date": "2026-11-26", "reason": "OTHER", "gross_amount": "20.00"},
    )
    assert refund.status_code == 201  # the customer owes 60.00 again: the goodwill is offset, not refunded
    assert refund.json()["refunded"] == "0.00"
    dispute_id = disputes[0]["dispute_id"]
    t = shop.tenant
    evidence = await t.client.post(
        t.url(f"/disputes/{dispute_id}/evidence"),
        headers=t.headers(t.poster_key),
        json={"kind": "tracking_number", "content": "DHL 00340434161094042557"},
    )
    assert [e["kind"] for e in evidence.json()["evidence"]] == ["tracking_number"]
    lost = await t.client.post(
        t.url(f"/disputes/{dispute_id}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "lost", "resolved_on": "2026-12-10"},
    )
    assert lost.json()["state"] == "lost"
    await shop.assert_books(("DEBIT", "40.00"))  # the debt stays, for dunning or write-off
    again = await t.client.post(
        t.url(f"/disputes/{dispute_id}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "won", "resolved_on": "2026-12-11"},
    )
    assert (again.status_code, again.json()["code"]) == (409, "dispute_resolved")


async def test_won_dispute_reverses_the_chargeback(shop: Shop) -> None:
    await paid_order(shop, "ipn-5")
    capture_id = (await shop.order("ipn-5"))["captures"][0]["capture_id"]
    await shop.sim.control(
        "POST", "chargebacks", json={"seller_id": shop.seller_id, "capture_id": capture_id, "amount": "60.00"}
    )

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    t = shop.tenant
    dispute_id = (await t.get("/disputes", state="open")).json()[0]["dispute_id"]
    won = await t.client.post(
        t.url(f"/disputes/{dispute_id}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "won", "resolved_on": "2026-12-01"},
    )
    assert won.json()["state"] == "won"
    chargeback_id = won.json()["chargeback_id"]
    await shop.sim.control(
        "POST", "chargebacks/reversals", json={"seller_id": shop.seller_id, "chargeback_id": chargeback_id}
    )
    await shop.assert_books(("BALANCED", "0.00"))


async def test_order_reference_notifications_record_amazons_state(shop: Shop) -> None:
    await paid_order(shop, "ipn-6")
    order = await shop.order("ipn-6")

    async def state_is(expected: tuple[str, str | None]) -> None:
        current = await shop.order("ipn-6")
        assert (current["amazon_state"], current["amazon_state_reason"]) == expected

    await eventually(lambda: state_is(("Open", None)))  # confirmed: Amazon says so by IPN
    await shop.sim.control(
        "POST",
        "orders/state",
        json={
            "seller_id": shop.seller_id,
            "order_reference_id": order["amazon_order_reference_id"],
            "state": "Closed",
            "reason": "AmazonClosed",
        },
    )
    await eventually(lambda: state_is(("Closed", "AmazonClosed")))
    assert (await shop.order("ipn-6"))["status"] == "authorized"  # its own status is Kontor's
    await shop.assert_books(("BALANCED", "0.00"))
