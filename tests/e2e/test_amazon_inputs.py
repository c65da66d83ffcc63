"""Every route that calls Amazon Pay checks all its input before the call: a date the journal cannot hold, or a day
in a closed month, is a 4xx problem and Amazon was not asked for anything (QA finding 2: a one-step order dated
0001-01-01 completed the checkout session at Amazon, then failed with a 500 and booked nothing)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, item, make_shop


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


@pytest.fixture
async def two_step(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator, "two_step")


def session_state(shop: Shop, session_id: str) -> str:
    return str(shop.sim.sim.merchants[shop.merchant_id].sessions[session_id].state)


@pytest.mark.parametrize("order_date", ["0001-01-01", "9999-12-31", "1899-12-31"])
async def test_an_order_dated_outside_the_journal_is_refused_before_the_checkout_is_completed(
    shop: Shop, order_date: str
) -> None:
    session = await shop.checkout("10.00")
    r = await shop.create_order("y", [item(1, "10.00")], checkout_session_id=session, order_date=order_date)
    assert (r.status_code, r.json()["code"]) == (422, "date_out_of_range"), r.text
    assert r.json()["errors"][0]["field"] == "order_date"
    assert session_state(shop, session) == "Open"


async def test_an_order_dated_in_a_closed_month_is_refused_before_the_checkout_is_completed(shop: Shop) -> None:
    closed = await shop.tenant.post(
        "/periods/2026-10/close", {"reason": "month end"}, key=shop.tenant.accountant_key, idem=None
    )
    assert closed.status_code == 200, closed.text
    session = await shop.checkout("10.00")
    r = await shop.create_order("closed", [item(1, "10.00")], checkout_session_id=session, order_date="2026-10-15")
    assert (r.status_code, r.json()["code"]) == (409, "period_closed"), r.text
    assert r.json()["errors"][0]["field"] == "order_date"
    assert session_state(shop, session) == "Open"
    assert (await shop.create_order("open", [item(1, "10.00")], checkout_session_id=session)).status_code == 201
    await shop.assert_books(("CREDIT", "10.00"))


async def test_invoice_dates_are_checked_before_the_capture(two_step: Shop) -> None:
    shop = two_step
    await shop.create_order("d2", [item(1, "10.00")])
    merchant = shop.sim.sim.merchants[shop.merchant_id]
    for invoice_date, code in (("9999-12-31", "date_out_of_range"), ("2026-11-19", "date_before_document")):
        r = await shop.invoice("d2", "D2-I1", [1], invoice_date=invoice_date)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
        assert r.json()["errors"][0]["field"] == "invoice_date"
    assert [c.state for c in merchant.charges.values()] == ["Authorized"]
    assert (await shop.invoice("d2", "D2-I1", [1])).status_code == 201
    await shop.create_order("d2c", [item(1, "10.00")], order_date="2026-10-20")
    assert (
        await shop.tenant.post(
            "/periods/2026-10/close", {"reason": "month end"}, key=shop.tenant.accountant_key, idem=None
        )
    ).is_success
    closed = await shop.invoice("d2c", "D2C-I1", [1], invoice_date="2026-10-30")
    assert (closed.status_code, closed.json()["code"]) == (409, "period_closed"), closed.text
    assert [c.state for c in merchant.charges.values()] == ["Captured", "Authorized"]
    assert (await shop.invoice("d2c", "D2C-I1", [1])).status_code == 201
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_dispute_outcome_outside_the_journal_or_before_the_dispute_is_refused(shop: Shop) -> None:
    """QA: resolved_on 9999-12-31 was a 500; 2020-01-01, before the dispute opened, was accepted."""
    await shop.create_order("d3", [item(1, "10.00")])
    await shop.chargeback("d3", "10.00")
    await shop.drain_ipns()
    dispute = (await shop.tenant.get("/disputes")).json()[0]
    for resolved_on, status, code in (
        ("9999-12-31", 422, "date_out_of_range"),
        ("2020-01-01", 422, "date_before_document"),
    ):
        r = await shop.client.post(
            shop.tenant.url(f"/disputes/{dispute['dispute_id']}/outcome"),
            json={"outcome": "won", "resolved_on": resolved_on},
            headers=shop.tenant.headers(shop.tenant.poster_key),
        )
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert r.json()["errors"][0]["field"] == "resolved_on"
    assert (await shop.tenant.get("/disputes")).json()[0]["state"] == "open"


async def test_documents_follow_the_order_and_returns_their_invoice(shop: Shop) -> None:
    """QA finding 12: invoices dated before their order and returns dated before their invoice were accepted; a
    return of an unknown invoice was 409 item_not_invoiced; "item 1: 0 asked, 0 invoiced" when nothing was left."""
    await shop.create_order("d4", [item(1, "10.00"), item(2, "5.00")])
    early = await shop.invoice("d4", "D4-I0", [1], invoice_date="2026-11-19")
    assert (early.status_code, early.json()["code"]) == (422, "date_before_document")
    assert (await shop.invoice("d4", "D4-I1", [1, 2], invoice_date="2026-11-22")).status_code == 201

    def returned(ref: str, invoice: str, on: str) -> dict[str, object]:
        return {
            "return_reference": ref,
            "return_date": on,
            "invoice_reference": invoice,
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1}],
        }

    before = await shop.document("d4", "returns", returned("D4-R0", "D4-I1", "2026-11-21"))
    assert (before.status_code, before.json()["code"]) == (422, "date_before_document")
    assert before.json()["errors"][0]["field"] == "return_date"
    unknown = await shop.document("d4", "returns", returned("D4-R1", "NOPE", "2026-11-23"))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "invoice_not_found")
    assert (await shop.document("d4", "returns", returned("D4-R2", "D4-I1", "2026-11-23"))).status_code == 201
    again = await shop.document("d4", "returns", returned("D4-R3", "D4-I1", "2026-11-24"))
    assert (again.status_code, again.json()["code"]) == (422, "return_exceeds_invoiced")
    assert "nothing left to return (1 invoiced, 1 returned)" in again.json()["detail"]


async def test_the_same_request_sent_at_once_is_one_document(shop: Shop) -> None:
    """QA finding 12: ten identical orders sent in parallel were ten 201s; identical returns sent in parallel were
    422s instead of replays."""
    session = await shop.checkout("20.00")
    orders = await asyncio.gather(
        *(shop.create_order("par-1", [item(1, "20.00")], checkout_session_id=session) for _ in range(6))
    )
    assert [r.status_code for r in orders] == [201] * 6, [r.text for r in orders]
    assert sorted(str(r.headers.get("Idempotent-Replayed")) for r in orders) == ["None"] + ["true"] * 5
    assert len({r.json()["charges"][0]["charge_id"] for r in orders}) == 1
    assert (await shop.invoice("par-1", "PAR-I1", [1])).status_code == 201
    body = {
        "return_reference": "PAR-R1",
        "return_date": "2026-11-25",
        "invoice_reference": "PAR-I1",
        "reason": "CUSTOMER_RETURN",
        "items": [{"item_reference": 1}],
    }
    returns = await asyncio.gather(*(shop.document("par-1", "returns", body) for _ in range(5)))
    assert [r.status_code for r in returns] == [201] * 5, [r.text for r in returns]
    assert sorted(str(r.headers.get("Idempotent-Replayed")) for r in returns) == ["None"] + ["true"] * 4
    await shop.assert_books()


async def test_a_checkout_session_pays_for_one_order_even_when_two_claim_it_at_once(shop: Shop) -> None:
    session = await shop.checkout("15.00")
    a, b = await asyncio.gather(
        *(shop.create_order(ref, [item(1, "15.00")], checkout_session_id=session) for ref in ("cs-1", "cs-2"))
    )
    assert sorted((a.status_code, b.status_code)) == [201, 409], (a.text, b.text)
    refused = b if b.status_code == 409 else a
    assert (refused.json()["code"], refused.json()["errors"][0]["field"]) == (
        "checkout_session_used",
        "payment_method.checkout_session_id",
    )
    later = await shop.create_order("cs-3", [item(1, "15.00")], checkout_session_id=session)
    assert (later.status_code, later.json()["code"]) == (409, "checkout_session_used")
    await shop.assert_books()


@pytest.mark.parametrize("path", ["/disputes", "/reconciliation/exceptions"])
async def test_an_unknown_state_filter_names_the_parameter(shop: Shop, path: str) -> None:
    r = await shop.tenant.get(path, state="bogus")
    assert (r.status_code, r.json()["code"]) == (400, "request_invalid")
    assert r.json()["errors"][0]["field"] == "state"


@pytest.mark.parametrize("country", ["XX", "EU", "ZZ"])
async def test_a_bill_to_country_is_an_iso_3166_country(shop: Shop, country: str) -> None:
    """Letters are addressed and VAT is decided by the bill-to country: an invented one is refused before Amazon."""
    session = await shop.checkout("10.00")
    bill_to = {"first_name": "Erika", "last_name": "Mustermann", "country_code": country}
    r = await shop.create_order("xx", [item(1, "10.00")], checkout_session_id=session, bill_to=bill_to)
    assert (r.status_code, r.json()["code"]) == (422, "country_unknown"), r.text
    assert r.json()["errors"][0]["field"] == "bill_to.country_code"
    assert session_state(shop, session) == "Open"
