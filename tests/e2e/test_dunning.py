"""Dunning, collection, write-offs and recovery through the API (reference/dunning-and-vat.md §5-§7).

Business dates are given explicitly (order, invoice, return dates; each run's `as_of`); what the
service dates itself (IPN bookings) falls on the test clock's today, 2026-11-27, which is day 40 of the
worked example: the day of the chargeback.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import OPERATOR_KEY, Simulator, Tenant
from tests.e2e.amazon import Shop, eventually, item, make_shop
from tests.e2e.test_reconciliation import camt053, settlement_report, upload_settlement, upload_statement

DAY0 = date(2026, 11, 27) - timedelta(days=40)


def day(n: int) -> str:
    return (DAY0 + timedelta(days=n)).isoformat()


EXAMPLE_POLICY: dict[str, Any] = {
    "levels": [
        {"days": 1, "payment_term_days": 14, "fee": "0.00"},  # payment reminder on day 41, pay by day 55
        {"days": 29, "payment_term_days": 14, "fee": "1.00"},  # day 70
        {"days": 14, "payment_term_days": 14, "fee": "1.50"},  # day 84
    ],
    "after_final": "write_off",
    "after_final_days": 36,  # day 120
    "consumer_interest_points": "5",
}


@pytest.fixture
async def base_rate_2026(app_client: httpx.AsyncClient) -> None:
    """The example's base rate (2.00 %, so 7 % for consumers), set as the operator would for 2026-07-01."""
    r = await app_client.put(
        "/v1/base-rates/2026-07-01", json={"rate": "2.00"}, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert r.status_code == 200, r.text


async def put_policy(shop: Shop, **changes: Any) -> dict[str, Any]:
    t = shop.tenant
    r = await t.client.put(t.url("/dunning/policy"), json={**EXAMPLE_POLICY, **changes}, headers=t.headers())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def run(shop: Shop, n: int, **extra: Any) -> dict[str, Any]:
    t = shop.tenant
    r = await t.client.post(t.url("/dunning/runs"), json={"as_of": day(n), **extra}, headers=t.headers(t.poster_key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def settle_and_bank(shop: Shop, statement_id: str) -> None:
    """Settle at Amazon, import the report, and let the bank statement show the payout or repayment."""
    r = await upload_settlement(shop, await settlement_report(shop))
    assert r.status_code == 201, r.text
    transfer = r.json()["totals"].get("Transfer")
    if transfer:
        amount, indicator = (transfer[1:], "CRDT") if transfer.startswith("-") else (transfer, "DBIT")
        s = await upload_statement(shop, camt053(statement_id, [(amount, indicator, r.json()["settlement_id"])]))
        assert [line["outcome"] for line in s.json()["lines"]] == ["payout_cleared"], s.text


async def test_the_worked_example_to_the_cent(
    tenant: Tenant, simulator: Simulator, base_rate_2026: None, pool: asyncpg.Pool
) -> None:
    shop = await make_shop(tenant, simulator, reserve_percent=0, chargeback_fee="20.00")
    t = shop.tenant
    # day 0: one item 119.00 (as two lines, so that part of it can be returned), captured and invoiced
    order = await shop.create_order("wx-1", [item(1, "35.70"), item(2, "83.30")], order_date=day(0))
    assert order.status_code == 201, order.text
    assert (await shop.invoice("wx-1", "I-wx-1", [1, 2], invoice_date=day(0))).status_code == 201
    await settle_and_bank(shop, "ST-wx-1")  # J3 fee 2.61, J4 payout 116.39
    # day 10: return of part (net 30.00), refunded; day 12: goodwill net 10.00, refunded
    r = await shop.document(
        "wx-1",
        "returns",
        {
            "return_reference": "R-wx-1",
            "return_date": day(10),
            "invoice_reference": "I-wx-1",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1}],
        },
    )
    assert r.status_code == 201, r.text
    g = await shop.document(
        "wx-1",
        "goodwills",
        {
            "goodwill_reference": "G-wx-1",
            "goodwill_date": day(12),
            "reason": "CUSTOMER_COMPLAINT",
            "gross_amount": "11.90",
        },
    )
    assert g.status_code == 201, g.text
    await simulator.control("POST", "refunds/process", json={"seller_id": shop.seller_id})

    async def refunded() -> None:
        assert await shop.customer_state() == ("BALANCED", "0.00")
        assert await shop.balance("1210") == "-47.60"

    await eventually(refunded)
    await settle_and_bank(shop, "ST-wx-2")  # J9: Amazon collects 47.60 from the bank
    # day 40: chargeback of the remaining 71.40 (fee 20.00), the dispute is lost
    capture_id = (await shop.order("wx-1"))["captures"][0]["capture_id"]
    await simulator.control(
        "POST", "chargebacks", json={"seller_id": shop.seller_id, "capture_id": capture_id, "amount": "71.40"}
    )

    async def charged_back() -> None:
        assert await shop.customer_state() == ("DEBIT", "71.40")

    await eventually(charged_back)
    dispute = (await t.get("/disputes", state="open")).json()[0]["dispute_id"]
    lost = await t.client.post(
        t.url(f"/disputes/{dispute}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "lost", "resolved_on": day(40)},
    )
    assert lost.status_code == 200, lost.text
    await settle_and_bank(shop, "ST-wx-3")  # J11 fee 20.00, J12: Amazon collects 91.40

    await put_policy(shop)
    first = await run(shop, 41)
    assert first["counts"]["notice"] == 1
    assert (await run(shop, 41))["counts"].get("notice", 0) == 0  # the same day again: nothing twice
    assert (await run(shop, 69))["counts"].get("notice", 0) == 0  # not due yet
    second, third = await run(shop, 70), await run(shop, 84)
    assert (second["counts"]["notice"], third["counts"]["notice"]) == (1, 1)
    notices = (await t.get("/dunning/notices", customer=shop.customer)).json()
    assert [(n["level"], n["pay_by"], n["content"]["fee"], n["content"]["interest"]) for n in notices] == [
        (1, day(55), "0.00", "0.00"),
        (2, day(84), "1.00", "0.21"),  # 71.40 x 7 % x 15/365 = 0.2054
        (3, day(98), "1.50", "0.40"),  # 29 days = 0.3971; 0.19 booked
    ]
    document = await t.client.get(notices[1]["document_url"], headers=t.headers(t.accountant_key))
    assert document.headers["content-type"].startswith("text/html")
    assert "First dunning notice" in document.text
    assert "72.61 EUR" in document.text  # 71.40 + 1.00 + 0.21
    assert (await run(shop, 119))["counts"].get("write_off", 0) == 0
    assert (await run(shop, 120))["counts"]["write_off"] == 1  # J17
    items = (await t.get(f"/customers/{shop.customer}/open-items", as_of=day(120))).json()
    assert (items["total"], items["dunning_level"]) == ("0.00", 0)
    # day 200: the customer pays 30.00; costs 2.50, interest 0.40 and principal 27.10 are recovered
    paid = await shop.document(
        "wx-1", "payments", {"payment_reference": "P-wx-1", "payment_date": day(200), "amount": "30.00"}
    )
    assert paid.status_code == 201, paid.text

    expected = {  # §6.1
        "1200": "7.39",
        "1210": "0.00",
        "1360": "0.00",
        "1400": "0.00",
        "1776": "-4.33",
        "8400": "-70.00",
        "8720": "10.00",
        "2406": "60.00",
        "2400": "2.90",
        "2732": "-25.67",
        "2700": "-2.50",
        "2650": "-0.40",
        "4970": "22.61",
    }
    assert {number: await shop.balance(number) for number in expected} == expected
    await shop.assert_books(("BALANCED", "0.00"))
    kinds = await pool.fetch(
        "SELECT type, count(*) FROM outbox WHERE merchant_id = $1 AND type IN ('reminder.sent', 'document.created', "
        "'debt.written_off') GROUP BY type ORDER BY type",
        t.merchant_id,
    )
    assert [(k["type"], k["count"]) for k in kinds] == [
        ("debt.written_off", 1),
        ("document.created", 3),
        ("reminder.sent", 3),
    ]
