"""Amazon Pay IPNs (v2) over real HTTP: the simulator signs and sends them, the service verifies, stores,
acknowledges, and applies each exactly once after reading the object at Amazon; one that cannot be applied is
recorded with its reason and never holds up the others."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.context import Kontor
from payments.amazon.simulator import CERTIFICATE_PATH
from payments.ipn import claim_ipn
from payments.ipn_apply import ClaimLost, apply_notification
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, eventually, make_shop, paid_order

CASES = Path(__file__).parent.parent / "data" / "ipn"


async def ipn_rows(pool: asyncpg.Pool, merchant_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT notification_type, state, outcome, attempts, last_error FROM ipn_messages WHERE merchant_id = $1 "
        "ORDER BY received_at",
        merchant_id,
    )


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


def _plugin(shop: Shop) -> Any:
    return next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "process_ipns"))  # type: ignore[attr-defined]


async def post_ipn(shop: Shop, body: bytes, headers: dict[str, str]) -> httpx.Response:
    url = str(shop.sim.sim.ipn_url)
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


def signed(shop: Shop, envelope: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An envelope signed as the simulator's SNS signs, with the headers SNS sends."""
    envelope = {k: v for k, v in envelope.items() if k != "Signature"}
    envelope["Signature"] = shop.sim.sim.identity.sign(envelope)
    headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-topic-arn": envelope["TopicArn"],
        "content-type": "text/plain; charset=UTF-8",
    }
    return json.dumps(envelope).encode(), headers


def v2_message(shop: Shop, object_type: str, object_id: str, permission: str = "") -> dict[str, Any]:
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    body, _ = shop.sim.sim.envelope(merchant, object_type, object_id, permission)
    envelope: dict[str, Any] = json.loads(body)
    return envelope


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
    assert r.json()["refunds"][0]["state"] == "RefundInitiated"
    await shop.sim.control("POST", "refunds/process", json={"merchant_id": shop.merchant_id})

    async def refunded() -> None:
        assert (await shop.order("ipn-1"))["refunds"][0]["state"] == "Refunded"

    await eventually(refunded)
    await shop.assert_books(("BALANCED", "0.00"))
    rows = await ipn_rows(pool, shop.tenant.merchant_id)
    assert {r["notification_type"] for r in rows} >= {"CHARGE", "REFUND"}
    assert all(r["state"] == "processed" for r in rows), rows
    # the IPN of Kontor's own capture was applied without booking it a second time
    assert any(r["outcome"] == "charge Captured" for r in rows)

    # a replay of the very same notification is acknowledged and ignored
    sent = (await shop.sim.control("GET", "ipn/sent", params={"merchant_id": shop.merchant_id})).json()
    index = next(
        i
        for i, (body, _) in enumerate(shop.sim.sim.sent)
        if body.decode() == sent[-1]["body"]  # the refund's IPN is the last one sent
    )
    replay = await shop.sim.control("POST", "ipn/replay", json={"index": index})
    assert replay.json()["status"] == 200
    assert len(await ipn_rows(pool, shop.tenant.merchant_id)) == len(rows)
    await shop.assert_books(("BALANCED", "0.00"))


async def test_declined_refund_leaves_the_customer_in_credit(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-2")
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
    refund_id = (await shop.order("ipn-2"))["refunds"][0]["refund_id"]
    await shop.sim.control(
        "POST", "refunds/process", json={"merchant_id": shop.merchant_id, "declines": {refund_id: "AmazonRejected"}}
    )

    async def declined() -> None:
        refund = (await shop.order("ipn-2"))["refunds"][0]
        assert (refund["state"], refund["reason"]) == ("Declined", "AmazonRejected")

    await eventually(declined)
    await shop.assert_books(("CREDIT", "10.00"))
    events = await pool.fetch(
        "SELECT type, payload FROM outbox WHERE merchant_id = $1 AND type = 'refund.declined'", shop.tenant.merchant_id
    )
    assert [e["payload"]["reason"] for e in events] == ["AmazonRejected"]


async def test_forged_and_malformed_ipns_are_refused(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-3")
    await shop.sim.control("POST", "idle")
    order = await shop.order("ipn-3")
    envelope = v2_message(shop, "CHARGE", order["charges"][0]["charge_id"], order["charge_permission_id"])
    body, headers = signed(shop, envelope)
    before = len(await ipn_rows(pool, shop.tenant.merchant_id))

    message = json.loads(envelope["Message"])
    tampered = dict(json.loads(body), Message=json.dumps(message | {"ObjectId": "S02-0000000-0000000-C000001"}))
    other_topic = envelope["TopicArn"].replace(envelope["TopicArn"].split(":")[4], "123456789012")
    foreign_cert = dict(envelope, SigningCertURL="https://evil.example.com/cert.pem")
    stranger = dict(envelope, Message=json.dumps(message | {"MerchantID": "AFORGED0000000"}))
    deep = b'{"Type":"Notification","Message":"{}","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    cases = [
        (json.dumps(tampered).encode(), headers, 403),  # the signature no longer holds
        (*signed(shop, dict(envelope, TopicArn=other_topic)), 403),  # a topic of another AWS account
        (*signed(shop, foreign_cert), 403),
        (*signed(shop, stranger), 403),  # a merchant no business code connected
        (body, {**headers, "x-amz-sns-topic-arn": envelope["TopicArn"] + "x"}, 403),
        (body, {**headers, "x-amz-sns-message-type": "SubscriptionConfirmation"}, 400),
        (b"{not json", headers, 400),
        (deep, headers, 400),
        (b"x" * 300_000, headers, 413),
    ]
    for payload, hdrs, status in cases:
        r = await post_ipn(shop, payload, hdrs)
        assert r.status_code == status, (status, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert len(await ipn_rows(pool, shop.tenant.merchant_id)) == before, "nothing was stored"
    genuine = await post_ipn(shop, body, headers)
    assert genuine.status_code == 200
    await shop.assert_books(("BALANCED", "0.00"))


async def test_chargeback_contested_with_evidence_and_lost(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "ipn-4")
    charge_id = (await shop.order("ipn-4"))["charges"][0]["charge_id"]
    filed = await shop.sim.control(
        "POST",
        "disputes",
        json={
            "merchant_id": shop.merchant_id,
            "charge_id": charge_id,
            "amount": "60.00",
            "filing_reason": "ProductNotReceived",
        },
    )
    amazon_dispute = filed.json()["disputeId"]

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    disputes = (await shop.tenant.get("/disputes")).json()
    assert [(d["chargeback_id"], d["state"], d["amount"], d["amazon_state"]) for d in disputes] == [
        (amazon_dispute, "open", "60.00", "ActionRequired")
    ]
    deadline = filed.json()["merchantResponseDeadline"]  # Amazon's, e.g. 20261211T120000Z
    assert disputes[0]["deadline"] == f"{deadline[:4]}-{deadline[4:6]}-{deadline[6:8]}"
    await shop.sim.control("POST", "ipn/replay", json={"index": len(shop.sim.sim.sent) - 1})
    await shop.assert_books(("DEBIT", "60.00"))
    assert await pool.fetchval("SELECT count(*) FROM chargebacks WHERE merchant_id = $1", shop.tenant.merchant_id) == 1
    # the chargeback counts against the refund limit; the customer owes 60.00 again: a goodwill is offset
    goodwill = await shop.document(
        "ipn-4",
        "goodwills",
        {"goodwill_reference": "G-ipn-4", "goodwill_date": "2026-11-26", "reason": "OTHER", "gross_amount": "20.00"},
    )
    assert (goodwill.status_code, goodwill.json()["refunded"]) == (201, "0.00")
    t, dispute_id = shop.tenant, disputes[0]["dispute_id"]
    pdf = base64.b64encode(b"%PDF-1.4\n% proof of delivery\n").decode()
    contested = await t.client.post(
        t.url(f"/disputes/{dispute_id}/evidence"),
        headers=t.headers(t.poster_key),
        json={
            "evidences": [
                {"type": "TrackingNumber", "text": "DHL 00340434161094042557"},
                {
                    "type": "CustomerSignature",
                    "file": {"name": "pod.pdf", "content_type": "application/pdf", "data": pdf},
                },
            ]
        },
    )
    assert contested.status_code == 201, contested.text
    out = contested.json()
    assert (out["amazon_state"], out["contested_at"] is not None) == ("UnderReview", True)
    assert [(e["type"], e["file_name"], e["file_id"] is not None) for e in out["evidence"]] == [
        ("TrackingNumber", None, False),
        ("CustomerSignature", "pod.pdf", True),
    ]
    at_amazon = shop.sim.sim.merchants[shop.merchant_id].disputes[amazon_dispute]
    assert len(at_amazon.evidences) == 2
    not_pdf = await t.client.post(
        t.url(f"/disputes/{dispute_id}/evidence"),
        headers=t.headers(t.poster_key),
        json={
            "evidences": [
                {"type": "Receipt", "file": {"name": "x.pdf", "content_type": "application/pdf", "data": "aGVsbG8="}}
            ]
        },
    )
    assert (not_pdf.status_code, not_pdf.json()["errors"][0]["field"]) == (422, "evidences[0].file.content_type")
    await shop.sim.control(
        "POST",
        "disputes/resolve",
        json={"merchant_id": shop.merchant_id, "dispute_id": amazon_dispute, "resolution": "BuyerWon"},
    )

    async def lost() -> None:
        assert [d["resolution"] for d in (await t.get("/disputes", state="lost")).json()] == ["BuyerWon"]

    await eventually(lost)
    await shop.assert_books(("DEBIT", "40.00"))  # the debt stays, for dunning or write-off
    late = await t.client.post(
        t.url(f"/disputes/{dispute_id}/evidence"),
        headers=t.headers(t.poster_key),
        json={"evidences": [{"type": "Other", "text": "too late"}]},
    )
    assert (late.status_code, late.json()["code"]) == (409, "dispute_resolved")


async def test_won_dispute_reverses_the_chargeback(shop: Shop) -> None:
    await paid_order(shop, "ipn-5")
    charge_id = (await shop.order("ipn-5"))["charges"][0]["charge_id"]
    filed = await shop.sim.control(
        "POST", "disputes", json={"merchant_id": shop.merchant_id, "charge_id": charge_id, "amount": "60.00"}
    )

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    await shop.sim.control(
        "POST",
        "disputes/resolve",
        json={"merchant_id": shop.merchant_id, "dispute_id": filed.json()["disputeId"], "resolution": "MerchantWon"},
    )

    async def won() -> None:
        assert [d["resolution"] for d in (await shop.tenant.get("/disputes", state="won")).json()] == ["MerchantWon"]

    await eventually(won)
    await shop.assert_books(("BALANCED", "0.00"))


async def test_charge_permission_notifications_record_amazons_state(shop: Shop) -> None:
    await shop.create_order(
        "ipn-6", [{"item_reference": 1, "description": "A", "gross_unit_price": "10.00", "vat_rate": "19"}]
    )

    await shop.drain_ipns()  # charged in full: Amazon closes it, and says so by IPN
    current = await shop.order("ipn-6")
    assert (current["charge_permission_state"], current["status"]) == ("Closed", "captured"), current
    await shop.assert_books(("CREDIT", "10.00"))


async def test_ipns_that_cannot_be_applied_are_recorded_and_never_block_the_queue(
    shop: Shop, pool: asyncpg.Pool, ctx: Kontor
) -> None:
    """An IPN for an object Amazon does not know, a Checkout v1 chargeback of 0.00 (Amazon's own sample), a live
    chargeback from Amazon's other AWS account: each is recorded with its outcome; the genuine one behind them is
    applied."""
    await paid_order(shop, "ipn-7")
    await shop.sim.control("POST", "idle")
    merchant_id = shop.tenant.merchant_id
    ghost = v2_message(shop, "CHARGE", "S02-9999999-9999999-C999999", "S02-9999999-9999999")
    assert (await post_ipn(shop, *signed(shop, ghost))).status_code == 200
    for name in ("v1-chargeback-zero-amount.json", "v1-chargeback-live-account.json"):
        sample = json.loads((CASES / name).read_text())
        message = json.loads(sample["Message"]) | {
            "SellerId": shop.merchant_id,
            "NotificationReferenceId": str(uuid.uuid4()),
        }
        sample["Message"] = json.dumps(message)
        sample["SigningCertURL"] = sample["SigningCertURL"].rsplit("/", 1)[0] + CERTIFICATE_PATH
        sample["SignatureVersion"] = "2"
        assert (await post_ipn(shop, *signed(shop, sample))).status_code == 200, name
    order = await shop.order("ipn-7")
    genuine = v2_message(shop, "CHARGE", order["charges"][0]["charge_id"], order["charge_permission_id"])
    assert (await post_ipn(shop, *signed(shop, genuine))).status_code == 200
    await shop.drain_ipns()
    rows = {r["notification_type"]: r for r in await ipn_rows(pool, merchant_id)}
    assert rows["v1:ChargebackDetailedNotification"]["state"] == "ignored"
    assert "Checkout v1" in rows["v1:ChargebackDetailedNotification"]["outcome"]
    outcomes = [r["outcome"] for r in await ipn_rows(pool, merchant_id)]
    assert any("ResourceNotFound" in (o or "") for o in outcomes), outcomes
    await shop.assert_books(("BALANCED", "0.00"))


async def test_ipns_wait_while_amazon_is_out_of_reach(shop: Shop, pool: asyncpg.Pool, ctx: Kontor) -> None:
    await paid_order(shop, "ipn-8")
    await shop.sim.control("POST", "idle")

    await shop.drain_ipns()  # the order's own IPNs are applied: nothing else calls Amazon now
    order = await shop.order("ipn-8")
    await shop.sim.control("POST", "failures", json={"count": 2, "status": 503})  # both attempts of the re-read
    message = v2_message(shop, "CHARGE", order["charges"][0]["charge_id"], order["charge_permission_id"])
    assert (await post_ipn(shop, *signed(shop, message))).status_code == 200

    async def deferred() -> None:
        row = (await ipn_rows(pool, shop.tenant.merchant_id))[-1]
        assert (row["state"], row["attempts"]) == ("pending", 1), row
        assert "ServiceUnavailable" in (row["last_error"] or "")

    await eventually(deferred)
    await pool.execute(
        "UPDATE ipn_messages SET next_attempt_at = now() WHERE merchant_id = $1 AND state = 'pending'",
        shop.tenant.merchant_id,
    )
    await _plugin(shop).process_ipns(ctx)
    row = (await ipn_rows(pool, shop.tenant.merchant_id))[-1]
    assert (row["state"], row["outcome"]) == ("processed", "charge Captured")


async def test_outsiders_cannot_make_kontor_fetch_certificates_again_and_again(shop: Shop) -> None:
    """A SigningCertURL with a query, port or user info is refused without a fetch; a failed fetch is not repeated
    for a while; only a topic of Amazon Pay's accounts and a connected merchant get that far."""
    await shop.sim.control("POST", "idle")
    envelope = v2_message(shop, "CHARGE", "S02-0000000-0000000-C000001")
    host = envelope["SigningCertURL"].split("/")[2]
    for url in (f"https://{host}/x.pem?n=1", f"https://{host}:8443/x.pem", f"https://user@{host}/x.pem"):
        r = await post_ipn(shop, *signed(shop, dict(envelope, SigningCertURL=url)))
        assert r.status_code == 403
        assert "is not an https .pem URL" in r.json()["detail"]
    missing = dict(envelope, SigningCertURL=f"https://{host}/SimpleNotificationService-missing.pem")
    first = await post_ipn(shop, *signed(shop, missing))
    again = await post_ipn(shop, *signed(shop, missing))
    assert (first.status_code, again.status_code) == (403, 403)
    assert "could not be fetched" in first.json()["detail"]
    assert "not tried again yet" in again.json()["detail"]


async def test_a_worker_whose_lease_ran_out_changes_nothing(shop: Shop, pool: asyncpg.Pool, ctx: Kontor) -> None:
    """The claim's attempt number is its token: a worker whose lease ran out while another worker claimed the
    message since cannot mark it processed (its booking's transaction rolls back), and its deferral changes
    nothing; the new claim's holder applies it."""
    await paid_order(shop, "ipn-9")
    await shop.drain_ipns()
    order = await shop.order("ipn-9")
    envelope = v2_message(shop, "CHARGE", order["charges"][0]["charge_id"], order["charge_permission_id"])
    merchant_id, notification_id = shop.tenant.merchant_id, json.loads(envelope["Message"])["NotificationId"]
    await pool.execute(  # stored as receive_ipn stores it; no worker was started for it
        "INSERT INTO ipn_messages (merchant_id, notification_id, seller_id, notification_type, raw) "
        "VALUES ($1, $2, $3, 'CHARGE', $4)",
        merchant_id,
        notification_id,
        shop.merchant_id,
        json.dumps(envelope),
    )
    rt = _plugin(shop).runtime

    first = await claim_ipn(ctx, merchant_id, notification_id)
    assert first is not None
    assert first.attempt == 1
    assert await claim_ipn(ctx, merchant_id, notification_id) is None  # the lease holds
    await pool.execute(  # the first worker is slow: its lease runs out and a second worker claims the message
        "UPDATE ipn_messages SET claimed_until = now() - interval '1 second' WHERE merchant_id = $1 "
        "AND notification_id = $2",
        merchant_id,
        notification_id,
    )
    second = await claim_ipn(ctx, merchant_id, notification_id)
    assert second is not None
    assert second.attempt == 2

    with pytest.raises(ClaimLost):
        await apply_notification(ctx, rt, merchant_id, notification_id, "CHARGE", first.raw, first.attempt)
    row = await pool.fetchrow(
        "SELECT state, attempts, claimed_until > now() AS held FROM ipn_messages WHERE merchant_id = $1 "
        "AND notification_id = $2",
        merchant_id,
        notification_id,
    )
    assert (row["state"], row["attempts"], row["held"]) == ("pending", 2, True)

    outcome = await apply_notification(ctx, rt, merchant_id, notification_id, "CHARGE", second.raw, second.attempt)
    assert outcome == "charge Captured"
    row = (await ipn_rows(pool, merchant_id))[-1]
    assert (row["state"], row["outcome"]) == ("processed", "charge Captured")
    await shop.assert_books(("BALANCED", "0.00"))
