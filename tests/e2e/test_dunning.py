"""Dunning, collection, write-offs and recovery through the API (docs/accounting.md, "Dunning", "Write-off and recovery").

Business dates are given explicitly (order, invoice, return dates; each run's `as_of`); what the
service dates itself (IPN bookings) falls on the test clock's today, 2026-11-27, which is day 40 of the
worked example: the day of the chargeback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import create_pool
from ledger.secrets import SecretBox
from ledger.tenancy import get_business
from tests.conftest import OPERATOR_KEY, SECRET_KEY, Simulator, Tenant
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
    await shop.process_refunds()

    async def refunded() -> None:
        assert await shop.customer_state() == ("BALANCED", "0.00")
        assert await shop.balance("1210") == "-47.60"

    await eventually(refunded)
    await settle_and_bank(shop, "ST-wx-2")  # J9: Amazon collects 47.60 from the bank
    # day 40: chargeback of the remaining 71.40 (fee 20.00), the dispute is lost
    await shop.chargeback("wx-1", "71.40")

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
    second = await run(shop, 70)
    assert (await run(shop, 70))["counts"].get("notice", 0) == 0  # run again that day: no second fee
    third = await run(shop, 84)
    assert (second["counts"]["notice"], third["counts"]["notice"]) == (1, 1)
    notices = (await t.get("/dunning/notices", customer=shop.customer)).json()["items"]
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

    expected = {  # the balances at the end
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


async def charged_back_order(shop: Shop, ref: str, items: list[dict[str, Any]], amount: str, **order: Any) -> None:
    """An order invoiced and paid on day 0, then charged back (booked on day 40) and the dispute lost."""
    assert (await shop.create_order(ref, items, order_date=day(0), **order)).status_code == 201
    assert (
        await shop.invoice(ref, f"I-{ref}", [i["item_reference"] for i in items], invoice_date=day(0))
    ).status_code == 201
    await shop.chargeback(ref, amount)
    t = shop.tenant

    async def booked() -> None:
        assert len((await t.get("/disputes", state="open")).json()) == 1

    await eventually(booked)
    dispute = (await t.get("/disputes", state="open")).json()[0]["dispute_id"]
    lost = await t.client.post(
        t.url(f"/disputes/{dispute}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "lost", "resolved_on": day(40)},
    )
    assert lost.status_code == 200, lost.text


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


async def test_mixed_rates_are_written_off_pro_rata_when_dunning_is_off(shop: Shop) -> None:
    """Mixed rates: 50.00 of a 59.50 (19 %) + 53.50 (7 %) invoice is uncollectible: 26.33 at 19 %, 23.67 at 7 %."""
    await charged_back_order(shop, "mx-1", [item(1, "59.50"), item(2, "53.50", vat="7")], "50.00")
    await put_policy(shop, enabled=False, write_off_days=60)
    assert (await run(shop, 99))["counts"].get("write_off", 0) == 0  # 59 days overdue
    done = await run(shop, 100)
    assert done["counts"]["write_off"] == 1
    assert await shop.balance("2406") == "22.13"
    assert await shop.balance("2401") == "22.12"
    assert await shop.balance("1776") == "-5.30"  # 9.50 invoiced - 4.20 corrected
    assert await shop.balance("1771") == "-1.95"  # 3.50 - 1.55
    assert await shop.customer_state() == ("BALANCED", "0.00")
    await shop.assert_books()
    t = shop.tenant
    (written_off,) = (await t.get("/entries", metadata="dunning:write_off")).json()["items"]
    refused = await t.post(f"/entries/{written_off['id']}/reversal", {}, key=t.poster_key)
    assert (refused.status_code, refused.json()["code"]) == (409, "entry_reversal_refused"), refused.text
    assert "write-off" in refused.json()["detail"]


async def test_a_business_customer_owes_9_points_and_the_flat_fee_once(shop: Shop, base_rate_2026: None) -> None:
    await charged_back_order(
        shop, "bb-1", [item(1, "100.00")], "100.00", bill_to={"company": "Kunde GmbH", "country_code": "DE"}
    )
    await put_policy(
        shop,
        levels=[*EXAMPLE_POLICY["levels"], {"days": 14, "payment_term_days": 7, "fee": "2.00"}],
        after_final="collection",
    )
    await run(shop, 41)
    await run(shop, 70)
    await run(shop, 84)
    notices = (await shop.tenant.get("/dunning/notices", customer=shop.customer)).json()["items"]
    # 100.00 x 11 % (2 % + 9 points) x 15/365 = 0.4521; x 29/365 = 0.8740
    assert [
        (n["level"], n["content"]["flat_fee"], n["content"]["costs"], n["content"]["interest"]) for n in notices
    ] == [
        (1, "0.00", "0.00", "0.00"),
        (2, "40.00", "41.00", "0.45"),
        (3, "0.00", "42.50", "0.87"),
    ]
    assert await shop.balance("2700") == "-42.50"
    assert await shop.customer_state() == ("DEBIT", "143.37")
    # QA14 #22: notices page as customers, orders and bank statements do: {items, next_cursor}, `cursor`
    first = (await shop.tenant.get("/dunning/notices", customer=shop.customer, limit=2)).json()
    assert [n["level"] for n in first["items"]] == [1, 2]
    rest = (await shop.tenant.get("/dunning/notices", customer=shop.customer, cursor=first["next_cursor"])).json()
    assert ([n["level"] for n in rest["items"]], rest["next_cursor"]) == ([3], None)
    # QA14 #11: each notice's fees and interest carry the notice's number (DATEV Belegfeld 1), not the customer
    t = shop.tenant
    charges = (await t.get("/entries", metadata="dunning:charges")).json()["items"]
    assert [e["reference"] for e in charges] == [str(n["notice_id"]) for n in notices[1:]]
    # QA14 #10: and they are not reversed behind dunning's back (it would count them twice)
    refused = await t.post(f"/entries/{charges[0]['id']}/reversal", {"reason": "x"}, key=t.accountant_key)
    assert (refused.status_code, refused.json()["code"]) == (409, "entry_reversal_refused"), refused.text
    assert f"dunning notice {notices[1]['notice_id']} of customer {shop.customer}" in refused.json()["detail"]


async def test_an_underpayment_below_its_threshold_is_written_off_at_once(shop: Shop) -> None:
    await charged_back_order(shop, "up-1", [item(1, "0.80")], "0.80")
    await put_policy(shop, underpayment_threshold="1.00")
    done = await run(shop, 41)
    assert (done["counts"]["write_off"], done["counts"].get("notice", 0)) == (1, 0)
    assert await shop.customer_state() == ("BALANCED", "0.00")
    assert (await shop.balance("2406"), await shop.balance("1776")) == ("0.67", "0.00")  # 0.80: 0.67 + 0.13


async def test_below_the_threshold_there_is_no_dunning_and_a_write_off_after_the_delay(shop: Shop) -> None:
    await charged_back_order(shop, "th-1", [item(1, "20.00")], "20.00")
    await put_policy(shop, threshold="25.00", write_off_days=60)
    assert (await run(shop, 41))["counts"].get("notice", 0) == 0
    assert (await shop.tenant.get("/dunning/notices")).json()["items"] == []
    done = await run(shop, 100)
    assert done["counts"]["write_off"] == 1
    assert (await shop.balance("2406"), await shop.balance("1776")) == ("16.81", "0.00")  # 20.00: 16.81 + 3.19
    assert await shop.customer_state() == ("BALANCED", "0.00")


async def test_disputed_and_paused_customers_and_items_are_skipped(tenant: Tenant, simulator: Simulator) -> None:
    shop = await make_shop(tenant, simulator)
    await charged_back_order(shop, "ps-1", [item(1, "50.00")], "50.00")
    t = shop.tenant
    await put_policy(shop)
    pause = await t.client.put(
        t.url(f"/customers/{shop.customer}/dunning-pause"),
        json={"reason": "customer in hospital", "until": day(60)},
        headers=t.headers(t.poster_key),
    )
    assert pause.status_code == 204, pause.text
    skipped = await run(shop, 41)
    assert skipped["counts"].get("notice", 0) == 0
    assert skipped["skipped"] == [{"customer": shop.customer, "reason": "paused: customer in hospital"}]
    await t.client.delete(t.url(f"/customers/{shop.customer}/dunning-pause"), headers=t.headers(t.poster_key))
    item_pause = await t.client.put(
        t.url("/orders/ps-1/dunning-pause"), json={"reason": "complaint"}, headers=t.headers(t.poster_key)
    )
    assert item_pause.status_code == 204
    assert (await run(shop, 42))["skipped"] == [{"customer": shop.customer, "reason": "items paused"}]
    items = (await t.get(f"/customers/{shop.customer}/open-items", as_of=day(42))).json()
    assert [(p["order_reference"], p["paused"], p["by_rate"]) for p in items["principal"]] == [
        ("ps-1", True, {"19": "50.00"})
    ]
    await t.client.delete(t.url("/orders/ps-1/dunning-pause"), headers=t.headers(t.poster_key))
    # a second chargeback with its dispute still open: the customer is not dunned
    await shop.chargeback("ps-1", "5.00")

    async def disputed() -> None:
        assert len((await t.get("/disputes", state="open")).json()) == 1

    await eventually(disputed)
    assert (await run(shop, 43))["skipped"] == [{"customer": shop.customer, "reason": "open dispute"}]
    history = (await t.get("/dunning/runs")).json()
    assert [r["skipped"][0]["reason"] for r in history] == [
        "open dispute",
        "items paused",
        "paused: customer in hospital",
    ]


async def test_collection_handover_feedback_write_off_and_payment(tenant: Tenant, simulator: Simulator) -> None:
    shop = await make_shop(tenant, simulator)
    t = shop.tenant
    await charged_back_order(shop, "co-1", [item(1, "80.00")], "80.00")
    shop.customer = "C-200"
    await charged_back_order(shop, "co-2", [item(1, "60.00")], "60.00")
    shop.customer = "C-100"
    await put_policy(shop, levels=[EXAMPLE_POLICY["levels"][0]], after_final="collection", after_final_days=7)
    await run(shop, 41)
    assert (await run(shop, 48))["counts"]["collection"] == 2
    ready = await t.get("/collection/handovers")
    assert [(c["customer"], c["status"], c["amount"]) for c in ready.json()] == [
        ("C-100", 90, "80.00"),
        ("C-200", 90, "60.00"),
    ]
    csv_file = await t.get("/collection/handovers", format="csv")
    assert csv_file.text.splitlines()[0] == "case_id,customer,status,amount,currency,opened_on,transferred_on"
    moved = await t.client.post(t.url("/collection/handovers"), headers=t.headers(t.poster_key))
    assert [c["status"] for c in moved.json()] == [91, 91]
    assert (await run(shop, 60))["skipped"][0]["reason"] == "in collection (status 91)"

    async def feedback(customer: str, status: int, **extra: Any) -> httpx.Response:
        return await t.client.post(
            t.url("/collection/status"),
            json={"customer": customer, "status": status, "on": day(90), **extra},
            headers=t.headers(t.poster_key),
        )

    assert (await feedback("C-100", 96, note="debtor unknown at address")).json()["status"] == 96
    closed = await feedback("C-100", 98)
    assert closed.json()["status"] == 98
    assert await shop.customer_state("C-100") == ("BALANCED", "0.00")  # written off
    assert await shop.balance("2406") == "67.23"  # 80.00: net 67.23, VAT 12.77 corrected
    bad = await feedback("C-200", 99)
    assert (bad.status_code, bad.json()["code"]) == (422, "amount_required")
    paid = await feedback("C-200", 99, amount="60.00")
    assert [h["status"] for h in paid.json()["history"]] == [90, 91, 99]
    assert await shop.customer_state("C-200") == ("BALANCED", "0.00")
    again = await feedback("C-200", 98)
    assert (again.status_code, again.json()["code"]) == (409, "no_collection_case")


async def test_three_instances_run_each_slot_once_and_a_dead_leader_is_replaced(
    shop: Shop, settings: Settings, database_url: str, pool: asyncpg.Pool
) -> None:
    from dunning.plugin import run_due
    from dunning.runlog import LOCK_CLASS, lock_key

    await charged_back_order(shop, "r9-1", [item(1, "30.00")], "30.00")
    await put_policy(shop)
    business = await get_business(
        Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=SecretBox.from_settings(settings)),
        shop.tenant.merchant_id,
        1001,
    )
    now = {"day": 41}

    def clock() -> datetime:
        return datetime.combine(DAY0 + timedelta(days=now["day"]), time(7), UTC)

    pools = [await create_pool(database_url, size_max=4) for _ in range(3)]
    box = SecretBox.from_settings(settings)
    instances = [Kontor(pool=p, reports_pool=p, settings=settings, secrets=box, clock=clock) for p in pools]
    try:
        await asyncio.gather(*(run_due(k) for k in instances))
        slots = await pool.fetch(
            "SELECT as_of, state FROM dunning_runs WHERE merchant_id = $1 AND trigger = 'schedule'",
            shop.tenant.merchant_id,
        )
        assert [(str(s["as_of"]), s["state"]) for s in slots] == [(day(41), "done")]
        assert len((await shop.tenant.get("/dunning/notices")).json()["items"]) == 1
        await asyncio.gather(*(run_due(k) for k in instances))  # the day's slot is done: nothing again
        assert len((await shop.tenant.get("/dunning/notices")).json()["items"]) == 1

        # day 70: a leader takes the slot and the lock, then dies before finishing
        now["day"] = 70
        leader = await asyncpg.connect(database_url)
        await leader.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, lock_key(business))
        await leader.execute(
            "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, 1001, $2, 'schedule', "
            "'running')",
            shop.tenant.merchant_id,
            DAY0 + timedelta(days=70),
        )
        await run_due(instances[0])  # the leader still holds the run: the others leave it alone
        assert len((await shop.tenant.get("/dunning/notices")).json()["items"]) == 1
        await pool.execute("SELECT pg_terminate_backend($1)", leader.get_server_pid())
        await run_due(instances[1], only_started=True)  # the resume job finds the orphaned slot
        slots = await pool.fetch(
            "SELECT as_of, state FROM dunning_runs WHERE merchant_id = $1 AND trigger = 'schedule' ORDER BY as_of",
            shop.tenant.merchant_id,
        )
        assert [(str(s["as_of"]), s["state"]) for s in slots] == [(day(41), "done"), (day(70), "done")]
        assert [n["level"] for n in (await shop.tenant.get("/dunning/notices")).json()["items"]] == [1, 2]
    finally:
        for p in pools:
            await p.close()


async def test_the_command_line_previews_and_runs(shop: Shop, database_url: str) -> None:
    await charged_back_order(shop, "cl-1", [item(1, "30.00")], "30.00")
    await put_policy(shop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONTOR_")} | {
        "KONTOR_DATABASE_URL": database_url,
        "KONTOR_SECRET_KEY": SECRET_KEY,  # not a key file in the user's data dir
    }
    base = [sys.executable, "-m", "ledger.cli", "dunning"]
    scope = ["--merchant", str(shop.tenant.merchant_id), "--as-of", day(41)]

    def kontor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args, *scope], env=env, capture_output=True, text=True, timeout=120, check=False)

    preview = await asyncio.to_thread(kontor, "preview")
    assert preview.returncode == 0, preview.stderr
    assert f"{shop.customer}: notice level 1 30.00" not in preview.stdout  # the first reminder costs nothing
    assert f"{shop.customer}: notice level 1 0.00" in preview.stdout
    assert (await shop.tenant.get("/dunning/notices")).json()["items"] == []  # a preview books nothing
    done = await asyncio.to_thread(kontor, "run")
    assert done.returncode == 0, done.stderr
    assert "done (" in done.stdout
    assert "notice 1" in done.stdout
    assert [n["level"] for n in (await shop.tenant.get("/dunning/notices")).json()["items"]] == [1]
