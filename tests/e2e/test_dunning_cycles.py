"""Money rules of dunning that follow the debtor: a customer who paid everything starts again at the free
reminder (bugs-18), and a payment after a write-off recovers the order it names, at that order's VAT rate
(§366 (1) BGB, §17 (2) UStG).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import item, make_shop
from tests.e2e.test_dunning import charged_back_order, put_policy, run

LEVELS = [
    {"days": 7, "payment_term_days": 14, "fee": "0.00"},
    {"days": 14, "payment_term_days": 14, "fee": "1.00"},
    {"days": 14, "payment_term_days": 7, "fee": "1.50"},
]


async def _claim(tenant: Tenant, day: str, gross: str, net: str, tax: str, ref: str) -> None:
    r = await tenant.post_entry(
        [{"account": "1400", "customer": "K2", "debit": gross}, {"account": "8400", "credit": net},
         {"account": "1776", "credit": tax}],
        date=day, description=f"Invoice {ref}", reference=ref,
    )  # fmt: skip
    assert r.status_code == 201, r.text


async def _run(tenant: Tenant, day: str) -> dict[str, Any]:
    r = await tenant.post("/dunning/runs", {"as_of": day}, key=tenant.poster_key, idem=None)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_after_paying_everything_the_next_claim_starts_at_the_free_reminder(tenant: Tenant) -> None:
    policy = {"levels": LEVELS, "interest": True}
    assert (await tenant.client.put(tenant.url("/dunning/policy"), json=policy, headers=tenant.headers())).is_success
    await _claim(tenant, "2025-08-01", "50.00", "42.02", "7.98", "inv-a")
    await _run(tenant, "2025-08-08")  # level 1, free
    await _run(tenant, "2025-08-22")  # level 2, fee 1.00
    owed = (await tenant.get("/customers/K2/account")).json()["balance"]
    assert owed == "51.00"
    paid = await tenant.post_entry(
        [{"account": "1200", "debit": owed}, {"account": "1400", "customer": "K2", "credit": owed}], date="2025-08-25"
    )
    assert paid.status_code == 201
    await _claim(tenant, "2025-09-01", "30.00", "25.21", "4.79", "inv-b")  # no run saw the account balanced
    assert (await tenant.get("/customers/K2/open-items", as_of="2025-09-02")).json()["dunning_level"] == 0
    await _run(tenant, "2025-09-08")
    last = (await tenant.get("/dunning/notices", customer="K2")).json()["items"][-1]
    content = last["content"]
    assert (last["level"], content["fee"], content["interest"]) == (1, "0.00", "0.00")
    assert content["default_on"] == "2025-09-23"  # the new reminder's pay-by date + 1, not the old cycle's
    assert [i["order_reference"] for i in content["items"]] == ["inv-b"]
    account = (await tenant.get("/customers/K2/open-items", as_of="2025-09-08")).json()
    assert (account["dunning_level"], account["default_on"]) == (1, "2025-09-23")


async def test_a_payment_naming_an_order_re_corrects_only_that_orders_vat(tenant: Tenant, simulator: Simulator) -> None:
    """Two orders, 19 % and 7 %, charged back and written off; a payment on the 19 % order reinstates its VAT
    (and only its VAT), whichever claim is older."""
    shop = await make_shop(tenant, simulator)
    await charged_back_order(shop, "vat-7", [item(1, "107.00", vat="7")], "107.00")
    await charged_back_order(shop, "vat-19", [item(1, "119.00")], "119.00")
    await put_policy(shop, enabled=False, write_off_days=60)
    assert (await run(shop, 100))["counts"]["write_off"] == 1
    assert (await shop.balance("1776"), await shop.balance("1771")) == ("0.00", "0.00")  # VAT corrected
    r = await shop.document(
        "vat-19", "payments", {"payment_reference": "P-19", "payment_date": "2026-11-27", "amount": "119.00"}
    )
    assert r.status_code == 201, r.text
    assert await shop.balance("1776") == "-19.00"  # 19 % VAT due again on the 19 % order
    assert await shop.balance("1771") == "0.00"  # the 7 % order stays written off
    assert await shop.customer_state() == ("BALANCED", "0.00")
    r = await shop.document(
        "vat-7", "payments", {"payment_reference": "P-7", "payment_date": "2026-11-27", "amount": "50.00"}
    )
    assert r.status_code == 201, r.text
    assert (await shop.balance("1776"), await shop.balance("1771")) == ("-19.00", "-3.27")  # 50.00 at 7 %
    trial = (await tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True
