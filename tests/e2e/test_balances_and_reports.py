"""Balances, customer accounts, registers, statements and closed periods over HTTP.

Method: a small known set of bookings (sales, a payment, a refund, fees) whose every figure is
computed by hand in the assertions.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FixedClock, Tenant


async def book_month(t: Tenant) -> None:
    """November: two sales to C-1 and C-2, C-1 pays by bank, a fee, C-2 prepays an order for December."""
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-11-02")
    await t.sale("C-2", "238.00", "200.00", "38.00", date="2026-11-05")
    r = await t.post_entry(
        [{"account": "1200", "debit": "119.00"}, {"account": "1400", "customer": "C-1", "credit": "119.00"}],
        date="2026-11-10",
    )
    assert r.status_code == 201
    r = await t.post_entry(
        [{"account": "4970", "debit": "2.50"}, {"account": "1200", "credit": "2.50"}], date="2026-11-15"
    )
    assert r.status_code == 201
    r = await t.post_entry(
        [{"account": "1210", "debit": "50.00"}, {"account": "1400", "customer": "C-3", "credit": "50.00"}],
        date="2026-11-20",
    )
    assert r.status_code == 201


async def test_account_balance_now_and_as_of(tenant: Tenant) -> None:
    await book_month(tenant)

    async def balance(number: str, **params: Any) -> tuple[str, str]:
        b = (await tenant.get(f"/accounts/{number}/balance", **params)).json()["balances"][0]
        return b["balance"], b["side"]

    assert await balance("1400") == ("188.00", "DEBIT")  # 119 + 238 - 119 - 50
    assert await balance("1400", as_of="2026-11-05") == ("357.00", "DEBIT")
    assert await balance("1400", as_of="2026-11-01") == ("0.00", "BALANCED")
    assert await balance("8400") == ("300.00", "CREDIT")
    assert await balance("1200") == ("116.50", "DEBIT")
    assert await balance("1400", customer="C-2") == ("238.00", "DEBIT")
    full = (await tenant.get("/accounts/1400/balance")).json()
    assert full["balances"][0] == {
        "currency": "EUR",
        "debit_total": "357.00",
        "credit_total": "169.00",
        "balance": "188.00",
        "side": "DEBIT",
    }
    assert (await tenant.get("/accounts/9999/balance")).status_code == 404


@pytest.mark.parametrize(
    ("customer", "state", "amount"),
    [
        ("C-1", "BALANCED", "0.00"),
        ("C-2", "DEBIT", "238.00"),
        ("C-3", "CREDIT", "50.00"),
        ("nobody", "BALANCED", "0.00"),
    ],
)
async def test_customer_account_states(tenant: Tenant, customer: str, state: str, amount: str) -> None:
    await book_month(tenant)
    account = (await tenant.get(f"/customers/{customer}/account")).json()
    assert (account["state"], account["balance"], account["currency"]) == (state, amount, "EUR")


async def test_customer_account_as_of(tenant: Tenant) -> None:
    await book_month(tenant)
    before_payment = (await tenant.get("/customers/C-1/account", as_of="2026-11-09")).json()
    assert (before_payment["state"], before_payment["balance"]) == ("DEBIT", "119.00")


async def test_trial_balance_sums_to_zero(tenant: Tenant) -> None:
    await book_month(tenant)
    trial = (await tenant.get("/reports/trial-balance")).json()
    rows = {r["account"]: (r["debit"], r["credit"]) for r in trial["rows"]}
    assert rows == {
        "1200": ("116.50", "0.00"),
        "1210": ("50.00", "0.00"),
        "1400": ("188.00", "0.00"),
        "1776": ("0.00", "57.00"),
        "4970": ("2.50", "0.00"),
        "8400": ("0.00", "300.00"),
    }
    assert trial["totals"] == [{"currency": "EUR", "debit": "357.00", "credit": "357.00"}]
    assert trial["balanced"] is True
    early = (await tenant.get("/reports/trial-balance", as_of="2026-11-02")).json()
    assert early["totals"] == [{"currency": "EUR", "debit": "119.00", "credit": "119.00"}]


async def test_income_statement_and_balance_sheet(tenant: Tenant) -> None:
    await book_month(tenant)
    income = (await tenant.get("/reports/income-statement", **{"from": "2026-11-01", "to": "2026-11-30"})).json()
    assert [(r["account"], r["amount"]) for r in income["revenue"]] == [("8400", "300.00")]
    assert [(r["account"], r["amount"]) for r in income["expenses"]] == [("4970", "2.50")]
    assert (income["total_revenue"], income["total_expenses"], income["net_income"]) == ("300.00", "2.50", "297.50")
    first_week = (await tenant.get("/reports/income-statement", **{"from": "2026-11-01", "to": "2026-11-07"})).json()
    assert first_week["net_income"] == "300.00"
    reversed_range = await tenant.get("/reports/income-statement", **{"from": "2026-11-30", "to": "2026-11-01"})
    assert reversed_range.status_code == 422
    missing = await tenant.get("/reports/income-statement")
    assert missing.status_code == 400
    sheet = (await tenant.get("/reports/balance-sheet", as_of="2026-11-30")).json()
    # C-2 owes 238.00 (an asset), C-3 paid 50.00 for an order not yet invoiced (a liability): never netted to 188
    assert [(r["account"], r["amount"], r["portion"], r["customers"]) for r in sheet["assets"]] == [
        ("1200", "116.50", None, None),
        ("1210", "50.00", None, None),
        ("1400", "238.00", "debit_balances", 1),
    ]
    assert [(r["account"], r["name"], r["amount"], r["portion"]) for r in sheet["liabilities"]] == [
        ("1400", "Customer credit balances (prepayments received)", "50.00", "credit_balances"),
        ("1776", "Output VAT 19 %", "57.00", None),
    ]
    assert sheet["total_assets"] == "404.50"  # 116.50 + 50 + 238
    assert sheet["current_earnings"] == "297.50"
    assert sheet["total_liabilities_and_equity"] == "404.50"  # 50 + 57 + 297.50
    assert sheet["balanced"] is True


async def test_suspense_and_other_accounts_stand_on_the_side_of_their_balance(tenant: Tenant) -> None:
    """A suspense account holding unexplained receipts owes them to someone: a liability; once it holds more
    unexplained payments than receipts, an asset. A bank account in overdraft is a liability too."""
    parked = await tenant.post_entry(
        [{"account": "1200", "debit": "7.00"}, {"account": "1590", "credit": "7.00"}], date="2026-11-03"
    )
    assert parked.status_code == 201, parked.text
    sheet = (await tenant.get("/reports/balance-sheet", as_of="2026-11-03")).json()
    assert [(r["account"], r["amount"]) for r in sheet["assets"]] == [("1200", "7.00")]
    assert [(r["account"], r["amount"]) for r in sheet["liabilities"]] == [("1590", "7.00")]
    paid_out = await tenant.post_entry(
        [{"account": "1590", "debit": "19.00"}, {"account": "1200", "credit": "19.00"}], date="2026-11-04"
    )
    assert paid_out.status_code == 201, paid_out.text
    sheet = (await tenant.get("/reports/balance-sheet", as_of="2026-11-04")).json()
    assert [(r["account"], r["amount"]) for r in sheet["assets"]] == [("1590", "12.00")]
    assert [(r["account"], r["amount"]) for r in sheet["liabilities"]] == [("1200", "12.00")]
    assert (sheet["total_assets"], sheet["total_liabilities_and_equity"], sheet["balanced"]) == ("12.00", "12.00", True)


async def test_register_has_a_running_balance_and_pages(tenant: Tenant) -> None:
    await book_month(tenant)
    full = (await tenant.get("/accounts/1400/register")).json()
    assert [(r["effective_date"], r["debit"], r["credit"], r["balance"], r["side"]) for r in full["rows"]] == [
        ("2026-11-02", "119.00", None, "119.00", "DEBIT"),
        ("2026-11-05", "238.00", None, "357.00", "DEBIT"),
        ("2026-11-10", None, "119.00", "238.00", "DEBIT"),
        ("2026-11-20", None, "50.00", "188.00", "DEBIT"),
    ]
    assert full["next_cursor"] is None
    first = (await tenant.get("/accounts/1400/register", limit=3)).json()
    assert len(first["rows"]) == 3
    second = (await tenant.get("/accounts/1400/register", limit=3, cursor=first["next_cursor"])).json()
    assert (second["opening_balance"], second["opening_side"]) == ("238.00", "DEBIT")
    assert [r["balance"] for r in second["rows"]] == ["188.00"]
    ranged = (await tenant.get("/accounts/1400/register", **{"from": "2026-11-05", "to": "2026-11-10"})).json()
    assert ranged["opening_balance"] == "119.00"  # historical: includes everything before `from`
    assert [r["balance"] for r in ranged["rows"]] == ["357.00", "238.00"]
    customer = (await tenant.get("/accounts/1400/register", customer="C-1")).json()
    assert [r["balance"] for r in customer["rows"]] == ["119.00", "0.00"]
    assert customer["rows"][-1]["side"] == "BALANCED"
    assert (await tenant.get("/accounts/1400/register", cursor="nonsense")).status_code == 400


async def test_register_pages_within_one_day(tenant: Tenant) -> None:
    for _ in range(5):
        await tenant.sale("C-1", "10.00", "8.40", "1.60", date="2026-11-03")
    page = (await tenant.get("/accounts/1400/register", limit=2)).json()
    balances = [r["balance"] for r in page["rows"]]
    while page["next_cursor"]:
        page = (await tenant.get("/accounts/1400/register", limit=2, cursor=page["next_cursor"])).json()
        balances += [r["balance"] for r in page["rows"]]
    assert balances == ["10.00", "20.00", "30.00", "40.00", "50.00"]


async def test_closing_a_period(tenant: Tenant, clock: FixedClock) -> None:
    await tenant.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-15")
    r = await tenant.post("/periods/2026-10/close", {"reason": "month end"}, key=tenant.accountant_key, idem=None)
    assert r.status_code == 200, r.text
    assert r.json()["closed_through"] == "2026-10-31"
    assert [p["period"] for p in r.json()["periods"]] == ["2026-10"]
    late = await tenant.post_entry(
        [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}], date="2026-10-31"
    )
    assert (late.status_code, late.json()["code"]) == (409, "period_closed")
    assert "2026-10" in late.json()["detail"]
    ok = await tenant.post_entry(
        [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}], date="2026-11-01"
    )
    assert ok.status_code == 201
    # a reversal of an entry in a closed month is dated in the open period
    first = (await tenant.get("/entries")).json()["items"][0]
    reversal = await tenant.post(f"/entries/{first['id']}/reversal", {}, key=tenant.poster_key)
    assert reversal.status_code == 201
    backdated = await tenant.post(
        f"/entries/{first['id']}/reversal", {"effective_date": "2026-10-20"}, key=tenant.poster_key
    )
    assert backdated.status_code == 409
    # the running month cannot be closed yet; closing again is harmless; later months close earlier ones
    running = await tenant.post("/periods/2026-11/close", key=tenant.admin_key, idem=None)
    assert (running.status_code, running.json()["code"]) == (409, "period_not_over")
    again = await tenant.post("/periods/2026-10/close", key=tenant.admin_key, idem=None)
    assert again.json()["closed_through"] == "2026-10-31"
    assert (await tenant.post("/periods/2026-13/close", key=tenant.admin_key, idem=None)).status_code == 422
    assert (await tenant.post("/periods/26-1/close", key=tenant.admin_key, idem=None)).status_code == 400
    clock.now = clock.now.replace(year=2027, month=2, day=3)
    try:
        jan = await tenant.post("/periods/2027-01/close", key=tenant.admin_key, idem=None)
    finally:
        clock.now = clock.now.replace(year=2026, month=11, day=27)
    assert [p["period"] for p in jan.json()["periods"]] == ["2026-10", "2026-11", "2026-12", "2027-01"]
    listed = (await tenant.get("/periods")).json()
    assert [p["period"] for p in listed] == ["2026-10", "2026-11", "2026-12", "2027-01"]
