"""The worked example of docs/accounting.md, run through the API: every figure the document shows is asserted here.

A consumer's Amazon Pay order at two VAT rates is paid, invoiced, partly credited by a goodwill (split per rate),
charged back; dunning raises fees and default interest over three levels and writes the claim off with the VAT
corrected per rate (§17 (2) no. 1 UStG); a later bank payment naming the order recovers costs, interest and part
of the principal, and the VAT on it is due again. Base rate: 2.00 % from 2026-07-01 (as the operator would enter
it; tests/e2e/test_dunning.py enters the same).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, Simulator, Tenant
from tests.e2e.amazon import eventually, item, make_shop

POLICY: dict[str, Any] = {
    "levels": [
        {"days": 7, "payment_term_days": 10, "fee": "0.00"},
        {"days": 21, "payment_term_days": 10, "fee": "2.50"},
        {"days": 14, "payment_term_days": 10, "fee": "5.00"},
    ],
    "after_final": "write_off",
    "after_final_days": 21,
}


@pytest.fixture
async def base_rate(app_client: httpx.AsyncClient) -> None:
    r = await app_client.put(
        "/v1/base-rates/2026-07-01", json={"rate": "2.00"}, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert r.status_code == 200, r.text


# each entry as (effective date, how its description starts, [(account, debit, credit), ...])
JOURNAL = [
    ("2026-10-19", "Amazon Pay capture", [("1210", "114.20", ""), ("1400", "", "114.20")]),
    ("2026-10-20", "Invoice I-wx-7",
     [("1400", "114.20", ""), ("8300", "", "40.00"), ("1771", "", "2.80"), ("8400", "", "60.00"), ("1776", "", "11.40")]),
    ("2026-10-27", "Goodwill G-wx-7",
     [("8710", "4.00", ""), ("1771", "0.28", ""), ("8720", "6.00", ""), ("1776", "1.14", ""), ("1400", "", "11.42")]),
    ("2026-11-27", "Amazon Pay refund", [("1400", "11.42", ""), ("1210", "", "11.42")]),
    ("2026-11-27", "Amazon Pay chargeback", [("1400", "102.78", ""), ("1210", "", "102.78")]),
    ("2026-12-25", "Dunning level 2 for customer C-7", [("1400", "2.72", ""), ("2700", "", "2.50"), ("2650", "", "0.22")]),
    ("2027-01-08", "Dunning level 3 for customer C-7", [("1400", "5.27", ""), ("2700", "", "5.00"), ("2650", "", "0.27")]),
    ("2027-01-29", "Write-off of customer C-7's debt (dunning without success)",
     [("2406", "54.00", ""), ("1776", "10.26", ""), ("2401", "36.00", ""), ("1771", "2.52", ""), ("2400", "7.99", ""),
      ("1400", "", "110.77")]),
    ("2027-02-15", "Payment P-wx-7", [("1200", "50.00", ""), ("1400", "", "50.00")]),
    ("2027-02-15", "Recovery of written-off debt",  # its id is the service's (other tests write off too)
     [("1400", "50.00", ""), ("2732", "", "7.99"), ("2732", "", "36.79"), ("1776", "", "4.19"), ("1771", "", "1.03")]),
]  # fmt: skip
NOTICES = [  # level, issued, pay by, fee, interest booked so far, total asked for
    (1, "2026-12-04", "2026-12-14", "0.00", "0.00", "102.78"),
    (2, "2026-12-25", "2027-01-04", "2.50", "0.22", "105.50"),
    (3, "2027-01-08", "2027-01-18", "5.00", "0.49", "110.77"),
]
TRIAL_BALANCE = {  # account: (debit, credit) at the end
    "1200": ("50.00", "0.00"), "1210": ("0.00", "0.00"), "1400": ("0.00", "0.00"), "1771": ("0.00", "1.03"),
    "1776": ("0.00", "4.19"), "2400": ("7.99", "0.00"), "2401": ("36.00", "0.00"), "2406": ("54.00", "0.00"),
    "2650": ("0.00", "0.49"), "2700": ("0.00", "7.50"), "2732": ("0.00", "44.78"), "8300": ("0.00", "40.00"),
    "8400": ("0.00", "60.00"), "8710": ("4.00", "0.00"), "8720": ("6.00", "0.00"),
}  # fmt: skip


async def test_the_worked_example(tenant: Tenant, simulator: Simulator, base_rate: None) -> None:
    shop = await make_shop(tenant, simulator)
    shop.customer = "C-7"
    t = shop.tenant
    r = await shop.create_order("wx-7", [item(1, "71.40"), item(2, "42.80", vat="7")], order_date="2026-10-19")
    assert r.status_code == 201, r.text
    r = await shop.invoice("wx-7", "I-wx-7", [1, 2], invoice_date="2026-10-20")
    assert r.status_code == 201, r.text
    g = await shop.document(
        "wx-7",
        "goodwills",
        {
            "goodwill_reference": "G-wx-7",
            "goodwill_date": "2026-10-27",
            "reason": "DELIVERY_DELAYED",
            "gross_amount": "11.42",
        },
    )
    assert g.status_code == 201, g.text
    await shop.process_refunds()

    async def refunded() -> None:
        assert await shop.customer_state() == ("BALANCED", "0.00")

    await eventually(refunded)
    await shop.chargeback("wx-7", "102.78")

    async def booked() -> None:
        assert len((await t.get("/disputes", state="open")).json()) == 1

    await eventually(booked)
    dispute = (await t.get("/disputes", state="open")).json()[0]["dispute_id"]
    lost = await t.client.post(
        t.url(f"/disputes/{dispute}/outcome"),
        headers=t.headers(t.poster_key),
        json={"outcome": "lost", "resolved_on": "2026-11-27"},
    )
    assert lost.status_code == 200, lost.text
    r = await t.client.put(t.url("/dunning/policy"), json=POLICY, headers=t.headers())
    assert r.status_code == 200, r.text
    outcomes = []
    for day in ("2026-12-04", "2026-12-25", "2027-01-08", "2027-01-29"):
        r = await t.client.post(t.url("/dunning/runs"), json={"as_of": day}, headers=t.headers(t.poster_key))
        assert r.status_code == 200, r.text
        outcomes.append({k: v for k, v in r.json()["counts"].items() if k != "customers"})
    assert outcomes == [{"notice": 1}, {"notice": 1}, {"notice": 1}, {"write_off": 1}]
    notices = (await t.get("/dunning/notices", customer="C-7")).json()["items"]
    assert [
        (n["level"], n["issued_on"], n["pay_by"], n["content"]["fee"], n["content"]["interest"], n["content"]["total"])
        for n in notices
    ] == NOTICES
    paid = await shop.document(
        "wx-7", "payments", {"payment_reference": "P-wx-7", "payment_date": "2027-02-15", "amount": "50.00"}
    )
    assert paid.status_code == 201, paid.text

    journal = (await t.get("/entries", key=t.accountant_key, limit="500")).json()["items"]
    assert [
        (e["effective_date"], [(x["account"], x.get("debit") or "", x.get("credit") or "") for x in e["lines"]])
        for e in journal
    ] == [(d, lines) for d, _, lines in JOURNAL]
    assert all(e["description"].startswith(text) for e, (_, text, _) in zip(journal, JOURNAL, strict=True))
    trial = (await t.get("/reports/trial-balance", as_of="2027-12-31")).json()
    assert {r["account"]: (r["debit"], r["credit"]) for r in trial["rows"]} == TRIAL_BALANCE
    assert await shop.customer_state() == ("BALANCED", "0.00")
