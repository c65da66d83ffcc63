"""A month of Amazon Pay (API v2) end to end, through HTTP and the real client against the simulator: one-step and
two-step orders shipped in two parts, a return refunded, a goodwill, a declined and a pending authorization, a
chargeback contested with evidence and won; then Amazon closes the settlement period, the Reporting API job fetches
and imports the report exactly once, and a CAMT.053 statement clears the payout. The books balance, PSP equals what
Amazon owes, TRANSIT is empty."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.context import Kontor
from payments import reports as reports_module
from payments.amazon.client import AmazonPayClient
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_reconciliation import camt053, upload_statement

XML = {"Content-Type": "application/xml"}


def _plugin(shop: Shop) -> Any:
    return next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "fetch_reports"))  # type: ignore[attr-defined]


async def _execution(shop: Shop, execution: str) -> None:
    t = shop.tenant
    current = (await t.client.get(t.url("/amazon-pay/settings"), headers=t.headers())).json()
    r = await t.client.put(
        t.url("/amazon-pay/settings"),
        headers=t.headers(),
        json={
            "amazon_merchant_id": current["amazon_merchant_id"],
            "public_key_id": current["public_key_id"],
            "sandbox": True,
            "payment_execution": execution,
        },
    )
    assert r.status_code == 200, r.text
    shop.execution = execution


async def _shipments(shop: Shop, ref: str) -> None:
    assert (await shop.invoice(ref, f"{ref}-I1", [1])).status_code == 201
    assert (await shop.invoice(ref, f"{ref}-I2", [2])).status_code == 201


async def _orders(shop: Shop) -> None:
    """One-step A and two-step B, each shipped in two parts; C declined; D authorized after a pending decision."""
    a = await shop.create_order("m-A", [item(1, "119.00"), item(2, "21.40", vat="7")])
    assert (a.status_code, a.json()["status"]) == (201, "captured")
    await _shipments(shop, "m-A")
    await _execution(shop, "two_step")
    b = await shop.create_order("m-B", [item(1, "59.50"), item(2, "40.00")])
    assert (b.status_code, b.json()["status"]) == (201, "authorized")
    await _shipments(shop, "m-B")
    assert [c["state"] for c in (await shop.order("m-B"))["charges"]] == ["Captured", "Captured"]
    c = await shop.create_order("m-C", [item(1, "10.00")], buyer={"simulation": "HardDeclined"})
    assert (c.status_code, c.json()["code"]) == (422, "payment_declined")
    d = await shop.create_order(
        "m-D",
        [item(1, "35.70")],
        buyer={"simulation": "PendingThenAuthorized", "can_handle_pending_authorization": True},
    )
    assert d.json()["status"] == "authorization_pending"
    await shop.sim.control("POST", "charges/process", json={"merchant_id": shop.merchant_id})
    await shop.drain_ipns()
    assert (await shop.order("m-D"))["status"] == "authorized"
    assert (await shop.invoice("m-D", "m-D-I1", [1])).status_code == 201


async def _credits(shop: Shop, ctx: Kontor) -> None:
    """A's second item returned, a goodwill on B: both refunded through Amazon."""
    ret = await shop.document(
        "m-A",
        "returns",
        {
            "return_reference": "m-A-R1",
            "return_date": "2026-11-24",
            "invoice_reference": "m-A-I2",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 2}],
        },
    )
    assert (ret.status_code, ret.json()["refunded"]) == (201, "21.40")
    goodwill = await shop.document(
        "m-B",
        "goodwills",
        {
            "goodwill_reference": "m-B-G1",
            "goodwill_date": "2026-11-24",
            "reason": "DELIVERY_DELAYED",
            "gross_amount": "9.95",
        },
    )
    assert (goodwill.status_code, goodwill.json()["refunded"]) == (201, "9.95")
    await shop.process_refunds()
    await shop.drain_ipns()
    refunds = [r["state"] for o in ("m-A", "m-B") for r in (await shop.order(o))["refunds"]]
    assert refunds == ["Refunded", "Refunded"]


async def _chargeback_won(shop: Shop) -> None:
    dispute = await shop.chargeback("m-A", "50.00", filing_reason="ProductNotReceived")
    await shop.drain_ipns()
    t = shop.tenant
    case = (await t.get("/disputes", state="open")).json()[0]
    pdf = base64.b64encode(b"%PDF-1.4\n% signed delivery receipt\n").decode()
    contested = await t.client.post(
        t.url(f"/disputes/{case['dispute_id']}/evidence"),
        headers=t.headers(t.poster_key),
        json={
            "evidences": [
                {"type": "TrackingNumber", "text": "DHL 00340434161094042557"},
                {
                    "type": "CustomerSignature",
                    "file": {"name": "receipt.pdf", "content_type": "application/pdf", "data": pdf},
                },
            ]
        },
    )
    assert (contested.status_code, contested.json()["amazon_state"]) == (201, "UnderReview")
    await shop.resolve_dispute(dispute["disputeId"], "MerchantWon")
    await shop.drain_ipns()
    assert [d["state"] for d in (await t.get("/disputes")).json()] == ["won"]


async def _settle_through_the_reporting_api(shop: Shop, ctx: Kontor, pool: asyncpg.Pool) -> dict[str, Any]:
    closed = await shop.sim.control("POST", "settlements", json={"merchant_id": shop.merchant_id})
    payout = closed.json()["payout"]
    await _plugin(shop).fetch_reports(ctx)
    await _plugin(shop).fetch_reports(ctx)  # again: nothing new, nothing imported twice
    listed = (await shop.tenant.get("/amazon-pay/settlements")).json()
    assert listed["reports"] == [], listed
    assert [(s["source"], s["report_id"], s["exception_count"]) for s in listed["settlements"]] == [
        ("reporting_api", closed.json()["report_id"], 0)
    ]
    settlement_id = listed["settlements"][0]["settlement_id"]
    reference = await pool.fetchval(
        "SELECT disbursement_reference FROM payouts WHERE merchant_id = $1 AND settlement_id = $2",
        shop.tenant.merchant_id,
        settlement_id,
    )
    assert reference, "the payout has Amazon's disbursement reference"
    return {"payout": payout, "settlement_id": settlement_id, "reference": reference}


async def test_a_month_of_amazon_pay(tenant: Tenant, simulator: Simulator, ctx: Kontor, pool: asyncpg.Pool) -> None:
    shop = await make_shop(tenant, simulator)
    await _orders(shop)
    await _credits(shop, ctx)
    await _chargeback_won(shop)
    await shop.assert_books()
    settled = await _settle_through_the_reporting_api(shop, ctx, pool)
    assert await shop.balance("1360") == settled["payout"]  # in transit
    statement = camt053("ST-m-1", [(settled["payout"], "CRDT", f"AMAZON PAYMENTS EUROPE {settled['reference']}")])
    cleared = await upload_statement(shop, statement)
    assert cleared.status_code == 201, cleared.text
    assert [line["outcome"] for line in cleared.json()["lines"]] == ["payout_cleared"]
    assert await shop.balance("1360") == "0.00"
    assert await shop.balance("1200") == settled["payout"]
    await shop.assert_books()
    assert (await shop.tenant.get("/reconciliation/exceptions")).json()["items"] == []
    statuses = {o: (await shop.order(o))["status"] for o in ("m-A", "m-B", "m-C", "m-D")}
    assert statuses == {"m-A": "invoiced", "m-B": "invoiced", "m-C": "declined", "m-D": "invoiced"}


async def _document(shop: Shop, report_document_id: str) -> str:
    """A report document as the merchant would download it (the real client, the shop's own key)."""
    async with httpx.AsyncClient() as http:
        client = AmazonPayClient(http, endpoint=shop.sim.url)
        url = await client.get_report_document_url(shop.credentials(), report_document_id)
        return (await client.download_report(url, bytes_max=10**7)).decode("utf-8-sig")


async def test_a_report_that_cannot_be_imported_is_failed_with_its_reason_and_the_others_go_on(
    tenant: Tenant, simulator: Simulator, ctx: Kontor
) -> None:
    shop = await make_shop(tenant, simulator)
    assert (await shop.create_order("f-1", [item(1, "10.00")])).status_code == 201
    first = (await shop.sim.control("POST", "settlements", json={"merchant_id": shop.merchant_id})).json()
    # the merchant uploaded that settlement by hand from an edited file: the fetched report conflicts with it
    edited = (await _document(shop, first["report_document_id"])).replace("Current Reserve Amount", "Reserve (edited)")
    uploaded = await shop.client.post(
        shop.tenant.url("/amazon-pay/settlements"),
        content=edited.encode(),
        headers=shop.tenant.headers(shop.tenant.poster_key) | {"Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert (await shop.create_order("f-2", [item(1, "20.00")])).status_code == 201
    second = (await shop.sim.control("POST", "settlements", json={"merchant_id": shop.merchant_id})).json()
    await _plugin(shop).fetch_reports(ctx)
    listed = (await shop.tenant.get("/amazon-pay/settlements")).json()
    assert [(r["report_id"], r["state"]) for r in listed["reports"]] == [(first["report_id"], "failed")]
    assert "settlement_conflict" in listed["reports"][0]["last_error"]
    fetched = [s["report_id"] for s in listed["settlements"] if s["source"] == "reporting_api"]
    assert fetched == [second["report_id"]]
    await _plugin(shop).fetch_reports(ctx)  # a failed report is not tried again
    assert (await shop.tenant.get("/amazon-pay/settlements")).json()["reports"][0]["state"] == "failed"


async def test_a_report_whose_import_breaks_unexpectedly_is_retried_and_the_others_go_on(
    tenant: Tenant, simulator: Simulator, ctx: Kontor, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: an error nobody foresaw while importing one report is recorded with the report, which is
    tried again later with backoff; the report behind it is imported in the same run."""
    shop = await make_shop(tenant, simulator)
    assert (await shop.create_order("u-1", [item(1, "10.00")])).status_code == 201
    first = (await shop.sim.control("POST", "settlements", json={"merchant_id": shop.merchant_id})).json()
    assert (await shop.create_order("u-2", [item(1, "20.00")])).status_code == 201
    second = (await shop.sim.control("POST", "settlements", json={"merchant_id": shop.merchant_id})).json()
    original = reports_module._import

    async def breaking(ctx: Kontor, rt: Any, business: Any, creds: Any, row: Any) -> Any:
        if row["report_id"] == first["report_id"]:
            raise RuntimeError("a defect")
        return await original(ctx, rt, business, creds, row)

    monkeypatch.setattr(reports_module, "_import", breaking)
    await _plugin(shop).fetch_reports(ctx)
    listed = (await shop.tenant.get("/amazon-pay/settlements")).json()
    assert [(r["report_id"], r["state"]) for r in listed["reports"]] == [(first["report_id"], "new")]
    assert listed["reports"][0]["last_error"] == "internal error: RuntimeError"
    assert [s["report_id"] for s in listed["settlements"]] == [second["report_id"]]
    monkeypatch.setattr(reports_module, "_import", original)
    await pool.execute(
        "UPDATE amazon_reports SET next_attempt_at = now() WHERE merchant_id = $1", shop.tenant.merchant_id
    )
    await _plugin(shop).fetch_reports(ctx)
    listed = (await shop.tenant.get("/amazon-pay/settlements")).json()
    assert listed["reports"] == []
    assert sorted(s["report_id"] for s in listed["settlements"]) == sorted([first["report_id"], second["report_id"]])
