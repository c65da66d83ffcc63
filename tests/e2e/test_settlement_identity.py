"""A settlement is booked once, identified by what it says (QA finding 7: the same settlement uploaded under another
SettlementId booked its fees, reserve and payout again; finding 12: the same file with CRLF line endings was a 409),
and fetching reports through Amazon's Reporting API tells the caller when it could not (finding 9)."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_reconciliation import settlement_report, upload_settlement


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


def with_settlement_id(report: str, settlement_id: str) -> str:
    """The report as if Amazon had given the settlement another id (the SettlementId column of every row)."""
    old = re.search(r'\n"[^"]*","(\d+)"', report)
    assert old is not None
    return report.replace(f'","{old[1]}","', f'","{settlement_id}","')


async def test_the_same_rows_under_another_settlement_id_book_nothing_again(shop: Shop) -> None:
    assert (await shop.create_order("st-1", [item(1, "119.00")])).status_code == 201
    assert (await shop.invoice("st-1", "I-st-1", [1])).status_code == 201
    report = await settlement_report(shop)
    first = await upload_settlement(shop, report)
    assert first.status_code == 201, first.text
    balances = [await shop.balance(n) for n in ("1210", "1211", "1360", "4970")]
    for settlement_id in ("99999999999", "55555555558"):
        again = await upload_settlement(shop, with_settlement_id(report, settlement_id))
        assert (again.status_code, again.json()["code"]) == (409, "settlement_duplicate"), again.text
        assert first.json()["settlement_id"] in again.json()["detail"]
    assert [await shop.balance(n) for n in ("1210", "1211", "1360", "4970")] == balances
    listed = (await shop.tenant.get("/amazon-pay/settlements")).json()["settlements"]
    assert [s["settlement_id"] for s in listed] == [first.json()["settlement_id"]]
    await shop.assert_books(("BALANCED", "0.00"))


async def test_the_same_rows_under_two_settlement_ids_at_once_are_booked_once(shop: Shop) -> None:
    """Both uploads wait on the same unique index: the second finds the first's rows (409), never a 500 or twice."""
    assert (await shop.create_order("st-4", [item(1, "30.00")])).status_code == 201
    report = await settlement_report(shop)
    first, second = await asyncio.gather(
        upload_settlement(shop, report), upload_settlement(shop, with_settlement_id(report, "44444444444"))
    )
    assert sorted((first.status_code, second.status_code)) == [201, 409], (first.text, second.text)
    refused = second if second.status_code == 409 else first
    assert refused.json()["code"] == "settlement_duplicate"
    assert len((await shop.tenant.get("/amazon-pay/settlements")).json()["settlements"]) == 1
    await shop.assert_books()


async def test_a_payout_booked_with_another_settlement_is_parked_not_booked_again(shop: Shop) -> None:
    """A file that repeats another settlement's rows next to one of its own: the capture, reserve and transfer booked
    with the other settlement are exceptions (already_settled), parked in SUSPENSE, their fees not booked again."""
    assert (await shop.create_order("st-2", [item(1, "50.00")])).status_code == 201
    report = await settlement_report(shop)
    assert (await upload_settlement(shop, report)).status_code == 201
    in_transit, fees = await shop.balance("1360"), await shop.balance("4970")
    rows = report.splitlines()
    extra = next(r for r in rows if '"Reserve"' in r).replace("Current Reserve Amount", "Reserve adjustment")
    forged = with_settlement_id("\n".join([*rows, extra]) + "\n", "77777777777")
    r = await upload_settlement(shop, forged)
    assert r.status_code == 201, r.text
    out = r.json()
    assert sorted(e["kind"] for e in out["exceptions"]) == ["already_settled"] * 3  # capture, reserve, transfer
    assert out["outcomes"]["reserve"] == 1  # the adjustment is new
    assert (await shop.balance("1360"), await shop.balance("4970")) == (in_transit, fees)


async def test_the_same_file_with_other_line_endings_is_a_replay(shop: Shop) -> None:
    assert (await shop.create_order("st-3", [item(1, "20.00")])).status_code == 201
    report = await settlement_report(shop)
    first = await upload_settlement(shop, report)
    assert first.status_code == 201, first.text
    crlf = await upload_settlement(shop, report.replace("\n", "\r\n"))
    assert (crlf.status_code, crlf.headers.get("Idempotent-Replayed"), crlf.json()) == (201, "true", first.json())


async def test_fetching_reports_says_when_amazon_could_not_be_asked(shop: Shop, tenant: Tenant) -> None:
    fetch = tenant.url("/amazon-pay/settlements/fetch")
    await shop.drain_ipns()
    await shop.sim.control("POST", "failures", json={"count": 2, "status": 500, "method": "GET"})
    down = await shop.client.post(fetch, headers=tenant.headers(tenant.poster_key))
    assert (down.status_code, down.json()["code"]) == (502, "gateway_unavailable"), down.text
    assert down.headers["Retry-After"] == "30"
    ok = await shop.client.post(fetch, headers=tenant.headers(tenant.poster_key))
    assert ok.status_code == 200, ok.text


async def test_fetching_reports_for_a_business_code_not_connected_is_a_409(tenant: Tenant) -> None:
    r = await tenant.client.post(tenant.url("/amazon-pay/settlements/fetch"), headers=tenant.headers(tenant.poster_key))
    assert (r.status_code, r.json()["code"]) == (409, "amazon_pay_not_configured")
