"""Month-end closing: `period.closed` once per month closed, from the API or the scheduled job, and the job's
working-day rule."""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg
import pytest

from desk.closing import close_due_months, working_day_of_month
from ledger.context import Kontor
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import item, make_shop


async def closed_events(pool: asyncpg.Pool, t: Tenant) -> list[tuple[str, dict[str, str]]]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE merchant_id = $1 AND type = 'period.closed' ORDER BY event_id",
        t.merchant_id,
    )
    return [(r["payload"]["period"], r["payload"]["gl_report"]) for r in rows]


@pytest.mark.parametrize(
    ("day", "n"),
    [(date(2026, 11, 2), 1), (date(2026, 11, 6), 5), (date(2026, 11, 7), 0), (date(2026, 11, 9), 6),
     (date(2026, 12, 7), 5), (date(2027, 1, 1), 1)],
)  # fmt: skip
def test_working_days_of_a_month(day: date, n: int) -> None:
    assert working_day_of_month(day) == n


async def test_closing_notifies_each_month_once(pool: asyncpg.Pool, tenant: Tenant) -> None:
    t = tenant
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-09-15")
    callback = await t.client.post(
        "/v1/notification-callbacks",
        headers=t.headers(),
        json={"url": "https://hooks.example.com/closing", "types": ["period.closed"]},
    )
    assert callback.status_code == 201, callback.text
    r = await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    assert r.status_code == 200, r.text
    events = await closed_events(pool, t)
    assert [p for p, _ in events] == ["2026-09", "2026-10"]  # the month of the first entry on
    assert events[1][1] == {
        "json": f"/v1/businesses/{t.business}/periods/2026-10/gl-report",
        "csv": f"/v1/businesses/{t.business}/periods/2026-10/gl-report?format=csv",
        "xlsx": f"/v1/businesses/{t.business}/periods/2026-10/gl-report?format=xlsx",
        "datev": f"/v1/businesses/{t.business}/periods/2026-10/gl-report?format=datev",
    }
    again = await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    assert again.status_code == 200
    assert len(await closed_events(pool, t)) == 2, "closing a closed month again notifies nothing"


async def test_the_job_closes_last_month_on_its_working_day_once(
    pool: asyncpg.Pool, ctx: Kontor, tenant: Tenant
) -> None:
    t = tenant
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-15")
    mine = t.merchant_id
    assert await close_due_months(ctx, today=date(2026, 11, 5), workday=5, merchant_id=mine) == []
    assert await close_due_months(ctx, today=date(2026, 11, 6), workday=0, merchant_id=mine) == []
    assert await closed_events(pool, t) == []
    # three instances run the job at once: the month is closed and announced once
    runs = await asyncio.gather(
        *(close_due_months(ctx, today=date(2026, 11, 6), workday=5, merchant_id=mine) for _ in range(3))
    )
    # a run that looks after another closed the month finds nothing to do; one that overlaps closes it again,
    # which changes nothing
    assert [f"{mine}/{t.business}"] in runs, runs
    assert all(r in ([], [f"{mine}/{t.business}"]) for r in runs), runs
    assert [p for p, _ in await closed_events(pool, t)] == ["2026-10"]
    periods = (await t.get("/periods")).json()
    assert [(p["period"], p["closed_by"]) for p in periods] == [("2026-10", "month-end closing")]
    late = await t.post_entry(
        [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}], date="2026-10-31"
    )
    assert (late.status_code, late.json()["code"]) == (409, "period_closed")
    report = (await t.get("/periods/2026-10/gl-report")).json()
    assert report["closed"] is True


async def test_closing_books_vat_on_prepayments_and_reverses_it(
    pool: asyncpg.Pool, tenant: Tenant, simulator: Simulator
) -> None:
    """One-step orders are paid when ordered. At the month's end, what was paid but not yet invoiced owes its
    VAT in that month (§13 UStG): Dr VAT on prepayments / Cr output VAT, reversed on the 1st."""
    shop = await make_shop(tenant, simulator)
    t = tenant
    for ref, items in (("pp-1", [item(1, "119.00")]), ("pp-2", [item(1, "59.50"), item(2, "10.70", vat="7")]),
                       ("pp-3", [item(1, "238.00")]), ("pp-4", [item(1, "23.80")])):  # fmt: skip
        assert (await shop.create_order(ref, items, order_date="2026-10-20")).status_code == 201
    # pp-1 invoiced in October: no prepayment left; pp-2 invoiced only in November: still prepaid at the end of
    # October; pp-3 partly cancelled in October (and refunded); pp-4 stays prepaid
    assert (await shop.invoice("pp-1", "I-pp-1", [1], invoice_date="2026-10-25")).status_code == 201
    assert (await shop.invoice("pp-2", "I-pp-2", [1, 2], invoice_date="2026-11-03")).status_code == 201
    cancelled = await shop.document(
        "pp-3",
        "cancellations",
        {
            "cancellation_reference": "X-pp-3",
            "cancellation_date": "2026-10-28",
            "items": [{"item_reference": 1}],
            "reason": "OUT_OF_STOCK",
        },
    )
    assert cancelled.status_code == 201, cancelled.text
    r = await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    assert r.status_code == 200, r.text
    entries = (await t.get("/entries", reference="vat-prepay-2026-10")).json()["items"]
    assert [(e["effective_date"], [(x["account"], x["debit"], x["credit"]) for x in e["lines"]]) for e in entries] == [
        ("2026-10-31", [("1549", "14.00", None), ("1776", None, "13.30"), ("1771", None, "0.70")]),
    ]  # 19 %: 9.50 of 59.50 + 3.80 of 23.80; 7 %: 0.70 of 10.70
    reversal = (await t.get("/entries", reference="vat-prepay-2026-10-reversal")).json()["items"]
    assert [(e["effective_date"], [(x["account"], x["debit"], x["credit"]) for x in e["lines"]]) for e in reversal] == [
        ("2026-11-01", [("1549", None, "14.00"), ("1776", "13.30", None), ("1771", "0.70", None)]),
    ]
    gl = {row["account"]: row for row in (await t.get("/periods/2026-10/gl-report")).json()["rows"]}
    assert gl["1549"]["closing_debit"] == "14.00"
    # closing again books nothing more
    assert (
        await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    ).status_code == 200
    assert len((await t.get("/entries", metadata="period_end:vat_on_prepayments")).json()["items"]) == 2
    await shop.assert_books()
