"""Disputes against the simulator: evidence is checked whole before anything reaches Amazon, a dispute is contested
once (unless Amazon asks for more), and an outcome recorded by hand that Amazon's resolution contradicts is a
reconciliation exception while the Amazon Pay clearing account follows Amazon."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, make_shop, paid_order

PDF = base64.b64encode(b"%PDF-1.4\n% proof of delivery\n").decode()


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


async def open_dispute(shop: Shop, order: str) -> tuple[dict[str, Any], Any]:
    """A chargeback of 60.00 on a paid order: Kontor's case and Amazon's dispute object."""
    await paid_order(shop, order)
    dispute = await shop.chargeback(order, "60.00")
    await shop.drain_ipns()
    case = next(d for d in (await shop.tenant.get("/disputes")).json() if d["order_reference"] == order)
    return case, shop.sim.sim.merchants[shop.merchant_id].disputes[dispute["disputeId"]]


async def contest(shop: Shop, case: dict[str, Any], evidences: list[dict[str, Any]]) -> httpx.Response:
    t = shop.tenant
    return await t.client.post(
        t.url(f"/disputes/{case['dispute_id']}/evidence"),
        headers=t.headers(t.poster_key),
        json={"evidences": evidences},
    )


async def test_a_refused_evidence_request_sends_nothing_to_amazon(shop: Shop) -> None:
    """QA finding 4: a text with a NUL answered 422 text_invalid, but the file was uploaded and the dispute contested
    at Amazon with it; the real evidence afterwards failed with DuplicateIdempotencyKey."""
    case, at_amazon = await open_dispute(shop, "ev-1")
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    files_before = len(merchant.files)
    refused = await contest(
        shop,
        case,
        [
            {"type": "CustomerSignature", "file": {"name": "pod.pdf", "content_type": "application/pdf", "data": PDF}},
            {"type": "TrackingNumber", "text": "x\u0000y"},
        ],
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "text_invalid"), refused.text
    assert refused.json()["errors"][0]["field"] == "evidences[1].text"
    assert (at_amazon.state, at_amazon.evidences, len(merchant.files)) == ("ActionRequired", [], files_before)
    contested = await contest(shop, case, [{"type": "TrackingNumber", "text": "DHL 00340434161094042557"}])
    assert contested.status_code == 201, contested.text
    assert [e["evidenceText"] for e in at_amazon.evidences] == ["DHL 00340434161094042557"]


async def test_a_second_contest_is_refused_before_amazon_is_called(shop: Shop) -> None:
    """QA finding 11: a second contest answered 422 amazon_pay_invalid_dispute_status (a third one 409
    DuplicateIdempotencyKey), each after uploading its files again."""
    case, at_amazon = await open_dispute(shop, "ev-2")
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    evidence = [
        {"type": "TrackingNumber", "text": "DHL 1"},
        {"type": "CustomerSignature", "file": {"name": "pod.pdf", "content_type": "application/pdf", "data": PDF}},
    ]
    assert (await contest(shop, case, evidence)).status_code == 201
    files = len(merchant.files)
    for body in (evidence, [{"type": "Other", "text": "more"}]):
        again = await contest(shop, case, body)
        assert (again.status_code, again.json()["code"]) == (409, "dispute_already_contested"), again.text
    assert len(merchant.files) == files
    assert len(at_amazon.evidences) == 2
    # Amazon asks for more evidence: a further contest goes through
    at_amazon.state, at_amazon.reason_code = "ActionRequired", "MerchantAdditionalEvidencesRequired"
    merchant.notify("CHARGEBACK", at_amazon.dispute_id, at_amazon.charge_permission_id)
    shop.sim.sim.flush(merchant)
    await shop.drain_ipns()
    more = await contest(shop, case, [{"type": "Other", "text": "the signed delivery note"}])
    assert more.status_code == 201, more.text
    assert [e["text"] for e in more.json()["evidence"]] == ["DHL 1", None, "the signed delivery note"]


async def test_a_contest_amazon_does_not_ask_for_is_refused_without_uploading(shop: Shop) -> None:
    case, at_amazon = await open_dispute(shop, "ev-3")
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    at_amazon.state = "UnderReview"  # Amazon's investigator took the case without asking the merchant
    files = len(merchant.files)
    r = await contest(
        shop,
        case,
        [{"type": "Receipt", "file": {"name": "r.pdf", "content_type": "application/pdf", "data": PDF}}],
    )
    assert (r.status_code, r.json()["code"]) == (409, "dispute_not_contestable"), r.text
    assert len(merchant.files) == files


@pytest.mark.parametrize(
    ("by_hand", "amazon", "parked"), [("won", "BuyerWon", "-60.00"), ("lost", "MerchantWon", "60.00")]
)
async def test_an_outcome_by_hand_that_amazon_contradicts_is_an_exception_and_psp_follows_amazon(
    shop: Shop, by_hand: str, amazon: str, parked: str
) -> None:
    """QA finding 6: won by hand (dated before the dispute opened), then Amazon resolved BuyerWon: Kontor kept
    `won`, no exception, and the clearing account 1210 stayed 60.00 above what Amazon owes."""
    case, at_amazon = await open_dispute(shop, f"ev-{by_hand}")
    t = shop.tenant
    r = await t.client.post(
        t.url(f"/disputes/{case['dispute_id']}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": by_hand, "resolved_on": case["opened_on"]},
    )
    assert (r.status_code, r.json()["state"]) == (200, by_hand), r.text
    await shop.resolve_dispute(at_amazon.dispute_id, amazon)
    await shop.drain_ipns()
    after = next(d for d in (await t.get("/disputes")).json() if d["dispute_id"] == case["dispute_id"])
    assert (after["state"], after["resolution"]) == ("lost" if amazon == "BuyerWon" else "won", amazon)
    exceptions = (await t.get("/reconciliation/exceptions", source="dispute")).json()["items"]
    assert [(e["kind"], e["amount"], e["source_reference"]) for e in exceptions] == [
        ("dispute_outcome_contradicted", parked, case["chargeback_id"])
    ]
    assert await shop.balance("1210") == await shop.amazon_owes()
    await shop.assert_books()


async def test_an_evidence_request_over_its_limit_is_a_413_problem(shop: Shop) -> None:
    """The evidence route takes at most 8 MiB (docs/amazon-pay.md §4): more is a 413 problem+json, nothing sent."""
    case, at_amazon = await open_dispute(shop, "ev-big")
    big = base64.b64encode(b"%PDF-1.4\n" + b"0" * (6 << 20)).decode()  # 6 MiB of file: 8 MiB as base64
    r = await contest(
        shop, case, [{"type": "Receipt", "file": {"name": "big.pdf", "content_type": "application/pdf", "data": big}}]
    )
    assert (r.status_code, r.headers["content-type"], r.json()["code"]) == (
        413,
        "application/problem+json",
        "payload_too_large",
    )
    assert at_amazon.evidences == []
