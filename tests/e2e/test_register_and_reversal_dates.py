"""Listings and dates that must agree with the books: register pages read while a backdated line is posted
(bugs-11), and reversals dated before the entry they reverse (bugs-07).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import Tenant


async def _post(tenant: Tenant, day: str, amount: str) -> dict[str, Any]:
    r = await tenant.post_entry(
        [{"account": "1200", "debit": amount}, {"account": "8400", "credit": amount}], date=day, description="x"
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _signed(row: dict[str, Any]) -> Decimal:
    return Decimal(row["debit"] or 0) - Decimal(row["credit"] or 0)


async def test_register_pages_stay_consistent_when_a_backdated_line_arrives_between_pages(tenant: Tenant) -> None:
    for i, day in enumerate(["2026-10-02", "2026-10-03", "2026-10-03", "2026-10-04", "2026-10-05"]):
        await _post(tenant, day, f"{i + 1}.00")
    query = {"from": "2026-10-01", "to": "2026-10-06", "limit": "2"}
    page = (await tenant.get("/accounts/1200/register", **query)).json()
    opening, rows = Decimal(page["opening_balance"]), list(page["rows"])
    await _post(tenant, "2026-10-01", "100.00")  # dated before the cursor, posted between two pages
    while page["next_cursor"]:
        page = (await tenant.get("/accounts/1200/register", **query, cursor=page["next_cursor"])).json()
        rows += page["rows"]
    running = opening
    for row in rows:
        running += _signed(row)
        assert Decimal(row["balance"]) == running, rows  # every row continues the one before it
    assert [r["debit"] for r in rows] == ["1.00", "2.00", "3.00", "4.00", "5.00"]
    # a listing started afresh shows the late line and its balances
    fresh = (await tenant.get("/accounts/1200/register", **{**query, "limit": "10"})).json()
    assert [r["debit"] for r in fresh["rows"]] == ["100.00", "1.00", "2.00", "3.00", "4.00", "5.00"]
    assert fresh["rows"][-1]["balance"] == "115.00"


async def test_a_reversal_cannot_be_dated_before_its_original(tenant: Tenant) -> None:
    original = await _post(tenant, "2026-11-20", "12.00")
    r = await tenant.post(f"/entries/{original['id']}/reversal", {"effective_date": "2026-11-05"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "reversal_before_original"
    assert [e["field"] for e in r.json()["errors"]] == ["effective_date"]
    balance = (await tenant.get("/accounts/1200/balance", as_of="2026-11-10")).json()["balances"][0]
    assert (balance["balance"], balance["side"]) == ("0.00", "BALANCED")
    same_day = await tenant.post(f"/entries/{original['id']}/reversal", {"effective_date": "2026-11-20"})
    assert (same_day.status_code, same_day.json()["effective_date"]) == (201, "2026-11-20"), same_day.text


async def test_a_reversal_without_a_date_takes_the_originals_date_while_its_period_is_open(tenant: Tenant) -> None:
    """The mirror lands in the original's own month while that month is open (both cancel out in every report
    of the month); once the month is closed, it is dated today, the first day that can still be booked."""
    past = await _post(tenant, "2026-11-02", "5.00")
    future = await _post(tenant, "2026-12-15", "7.00")  # the test clock's today is 2026-11-27
    october = await _post(tenant, "2026-10-20", "3.00")
    r = await tenant.post(f"/entries/{past['id']}/reversal", None)
    assert (r.status_code, r.json()["effective_date"]) == (201, "2026-11-02"), r.text
    r = await tenant.post(f"/entries/{future['id']}/reversal", None)
    assert (r.status_code, r.json()["effective_date"]) == (201, "2026-12-15"), r.text
    closed = await tenant.post("/periods/2026-10/close", {"reason": "month end"}, key=tenant.accountant_key)
    assert closed.status_code == 200, closed.text
    r = await tenant.post(f"/entries/{october['id']}/reversal", None)
    assert (r.status_code, r.json()["effective_date"]) == (201, "2026-11-27"), r.text
    october_balance = (await tenant.get("/accounts/1200/balance", as_of="2026-10-31")).json()["balances"][0]
    assert october_balance["balance"] == "3.00"  # the closed month is left as it was reported
