"""Effective dates beyond the posting horizon (KONTOR_POSTING_HORIZON_DAYS, default 366 days after today) are
refused on every route that books a date: 422 `date_beyond_horizon` naming the field, nothing stored. Dates that
are not booked (a due date, a pause) are not limited. The test clock's today is 2026-11-27, so 2027-11-28 is the
last date that may be booked."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest

from ledger.config import Settings
from tests.conftest import SECRET_KEY, Tenant
from tests.e2e.test_bad_input import counts
from tests.e2e.test_input_limits import entry

LAST = "2027-11-28"  # 2026-11-27 + 366 days
BEYOND = "2027-11-29"
ITEMS = [{"item_reference": 1, "position_type": "SALES_ARTICLE", "description": "x", "quantity": 1,
          "gross_unit_price": "1.00", "vat_rate": "19"}]  # fmt: skip
DOC = "/customers/C-1/orders/O-1"

# (name, method, path under the business code, body, field named in the 422): every body with an effective date
BOOKED_DATES: list[tuple[str, str, str, Any, str]] = [
    ("entry", "POST", "/entries", entry(BEYOND), "effective_date"),
    ("batch", "POST", "/entries/batch", {"entries": [entry("2026-11-20"), entry(BEYOND)]},
     "entries[1].effective_date"),
    ("reversal", "POST", "/entries/1/reversal", {"effective_date": BEYOND}, "effective_date"),
    ("order", "POST", "/customers/C-1/orders", {
        "order_reference": "O-1", "order_date": BEYOND, "items": ITEMS,
        "payment_method": {"checkout_session_id": "bd504926-f659-4ad7-a1a9-9a747aaf5275"}}, "order_date"),
    ("invoice", "POST", f"{DOC}/invoices",
     {"invoice_reference": "I-1", "invoice_date": BEYOND, "items": [{"item_reference": 1}]}, "invoice_date"),
    ("cancellation", "POST", f"{DOC}/cancellations", {"cancellation_reference": "X-1", "cancellation_date": BEYOND,
     "reason": "OUT_OF_STOCK", "items": [{"item_reference": 1}]}, "cancellation_date"),
    ("return", "POST", f"{DOC}/returns", {"return_reference": "R-1", "return_date": BEYOND, "invoice_reference": "I-1",
     "reason": "CUSTOMER_RETURN", "items": [{"item_reference": 1}]}, "return_date"),
    ("goodwill", "POST", f"{DOC}/goodwills", {"goodwill_reference": "G-1", "goodwill_date": BEYOND,
     "reason": "OTHER", "gross_amount": "1.00"}, "goodwill_date"),
    ("payment", "POST", f"{DOC}/payments",
     {"payment_reference": "P-1", "payment_date": BEYOND, "amount": "1.00"}, "payment_date"),
    ("exception resolution", "POST", "/reconciliation/exceptions/1/resolution",
     {"action": "dismiss", "reason": "x", "booking_date": BEYOND}, "booking_date"),
    ("collection status", "POST", "/collection/status", {"customer": "C-1", "status": 99, "on": BEYOND,
     "amount": "1.00"}, "on"),
    ("dunning run", "POST", "/dunning/runs", {"as_of": BEYOND, "dry_run": False}, "as_of"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "method", "path", "body", "field"), BOOKED_DATES, ids=[d[0] for d in BOOKED_DATES])
async def test_effective_dates_beyond_the_horizon_are_422_naming_the_field(
    pool: asyncpg.Pool, tenant: Tenant, name: str, method: str, path: str, body: Any, field: str
) -> None:
    before = await counts(pool, tenant.merchant_id)
    r = await tenant.client.request(
        method, tenant.url(path), json=body, headers=tenant.headers(tenant.admin_key, idem=str(uuid.uuid4()))
    )
    assert r.status_code == 422, (name, r.text)
    problem = r.json()
    assert problem["code"] == "date_beyond_horizon", problem
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert f"{BEYOND} is after {LAST}, today (2026-11-27) + 366 days" in problem["detail"]
    assert await counts(pool, tenant.merchant_id) == before


async def test_the_last_day_of_the_horizon_is_booked(tenant: Tenant) -> None:
    r = await tenant.post_entry(entry(LAST)["lines"], date=LAST)
    assert (r.status_code, r.json()["effective_date"]) == (201, LAST), r.text
    refused = await tenant.post_entry(entry(BEYOND)["lines"], date=BEYOND)
    assert (refused.status_code, refused.json()["code"]) == (422, "date_beyond_horizon"), refused.text


async def test_dates_that_are_not_booked_are_not_limited_by_the_horizon(tenant: Tenant) -> None:
    r = await tenant.client.put(
        tenant.url("/customers/C-1/dunning-pause"),
        json={"reason": "agreed instalments", "until": "2030-01-31"},
        headers=tenant.headers(tenant.poster_key),
    )
    assert r.status_code == 204, r.text
    entries = await tenant.get("/entries", to="2030-12-31")  # queries read any date of the ledger's range
    assert entries.status_code == 200, entries.text


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("30", True), ("3660", True), ("-1", False), ("3661", False)])
def test_the_horizon_setting_is_range_checked(value: str, ok: bool) -> None:
    environ = {"KONTOR_POSTING_HORIZON_DAYS": value}
    if ok:
        assert Settings.from_env(environ).posting_horizon_days == int(value)
        return
    with pytest.raises(SystemExit, match=f"KONTOR_POSTING_HORIZON_DAYS='{value}' must be between 0 and 3660"):
        Settings.from_env(environ)


def test_the_service_does_not_start_with_a_horizon_out_of_range(tmp_path: Any) -> None:
    env = {"KONTOR_POSTING_HORIZON_DAYS": "100000", "KONTOR_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    started = subprocess.run(  # the test's own interpreter
        [sys.executable, "-m", "ledger.cli", "serve", "--data-dir", str(tmp_path / "kontor")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1, started.stderr
    assert "KONTOR_POSTING_HORIZON_DAYS='100000' must be between 0 and 3660" in started.stderr
    assert not (tmp_path / "kontor").exists()


@pytest.mark.parametrize(
    ("code", "status", "problem"),
    [("4242", 404, "business_not_found"), ("217124", 400, "request_invalid"), ("0", 400, "request_invalid")],
)
async def test_a_business_code_that_is_not_the_callers_is_refused_whatever_the_date(
    tenant: Tenant, code: str, status: int, problem: str
) -> None:
    """404 (or 400 for no business code at all) before anything about the body: not 422, not a 500."""
    r = await tenant.client.post(
        f"/v1/businesses/{code}/entries", json=entry(BEYOND), headers=tenant.headers(tenant.poster_key, idem="x-1")
    )
    assert (r.status_code, r.json()["code"]) == (status, problem), r.text
