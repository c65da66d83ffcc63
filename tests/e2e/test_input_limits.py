"""Out-of-range input is a clear 4xx, never a 500: dates outside the ledger's range, JSON nested too deep, and
postings that would take an account total past what the ledger represents (cases security-02, security-09,
bugs-13, bugs-14). Each refusal names the field or rule, and changes nothing.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.money import ACCOUNT_TOTAL_MINOR_MAX
from tests.conftest import OPERATOR_KEY, Tenant
from tests.e2e.test_bad_input import counts

MAX = "10000000000000.00"  # the largest amount of one line (10^15 minor units)


def entry(day: str, amount: str = "1.00", **extra: Any) -> dict[str, Any]:
    return {
        "effective_date": day,
        "description": "range",
        "lines": [{"account": "1200", "debit": amount}, {"account": "8400", "credit": amount}],
        **extra,
    }


# (name, method, path under the business code, body, field named in the 422)
DATED_BODIES: list[tuple[str, str, str, Any, str]] = [
    ("entry before 1900", "POST", "/entries", entry("1899-12-31"), "effective_date"),
    ("entry in 3000", "POST", "/entries", entry("3000-01-01"), "effective_date"),
    ("entry in year 1", "POST", "/entries", entry("0001-01-01"), "effective_date"),
    ("entry on 9999-12-31", "POST", "/entries", entry("9999-12-31"), "effective_date"),
    ("batch", "POST", "/entries/batch", {"entries": [entry("2026-11-20"), entry("3000-01-01")]},
     "entries[1].effective_date"),
    ("dunning run", "POST", "/dunning/runs", {"as_of": "9999-12-20", "dry_run": True}, "as_of"),
    ("customer pause", "PUT", "/customers/C-1/dunning-pause", {"reason": "x", "until": "3000-01-01"}, "until"),
    ("collection status", "POST", "/collection/status", {"customer": "C-1", "status": 97, "on": "0001-01-01"}, "on"),
    ("order payment", "POST", "/customers/C-1/orders/O-1/payments",
     {"payment_reference": "P-1", "payment_date": "9999-12-31", "amount": "1.00"}, "payment_date"),
    ("order", "POST", "/customers/C-1/orders", {
        "order_reference": "O-1", "order_date": "3000-01-01",
        "items": [{"item_reference": 1, "position_type": "SALES_ARTICLE", "description": "x", "quantity": 1,
                   "gross_unit_price": "1.00", "vat_rate": "19"}],
        "payment_method": {"checkout_session_id": "bd504926-f659-4ad7-a1a9-9a747aaf5275"}}, "order_date"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "method", "path", "body", "field"), DATED_BODIES, ids=[d[0] for d in DATED_BODIES])
async def test_dates_outside_the_ledgers_range_are_422_naming_the_field(
    pool: asyncpg.Pool, tenant: Tenant, name: str, method: str, path: str, body: Any, field: str
) -> None:
    before = await counts(pool, tenant.merchant_id)
    r = await tenant.client.request(method, tenant.url(path), json=body, headers=tenant.headers(idem=str(uuid.uuid4())))
    assert r.status_code == 422, (name, r.text)
    problem = r.json()
    assert problem["code"] == "date_out_of_range", problem
    assert field in [e["field"] for e in problem["errors"]], problem
    assert "1900-01-01" in problem["detail"]
    assert "2999-12-31" in problem["detail"]
    assert await counts(pool, tenant.merchant_id) == before


async def test_a_reversal_dated_outside_the_range_is_422(tenant: Tenant) -> None:
    posted = await tenant.post_entry(entry("2026-11-20")["lines"])
    r = await tenant.post(f"/entries/{posted.json()['id']}/reversal", {"effective_date": "3000-01-01"})
    assert (r.status_code, r.json()["code"]) == (422, "date_out_of_range"), r.text


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/accounts/1200/balance?as_of=0001-01-01", "as_of"),
        ("/accounts/1200/register?from=3000-01-01", "from"),
        ("/entries?to=9999-12-31", "to"),
        ("/reports/trial-balance?as_of=1899-12-31", "as_of"),
        ("/reports/income-statement?from=2026-01-01&to=9999-12-31", "to"),
        ("/customers/C-1/open-items?as_of=9999-12-31", "as_of"),
        ("/customers/C-1/account?as_of=0001-01-01", "as_of"),
    ],
)
async def test_dates_in_queries_have_the_same_range(tenant: Tenant, path: str, field: str) -> None:
    r = await tenant.client.get(tenant.url(path), headers=tenant.headers())
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["errors"][0]["field"]) == ("date_out_of_range", field)
    ok = await tenant.client.get(
        tenant.url(path.split("?", maxsplit=1)[0]), headers=tenant.headers(), params=_in_range(path)
    )
    assert ok.status_code == 200, ok.text


def _in_range(path: str) -> dict[str, str]:
    query = dict(p.split("=") for p in path.split("?")[1].split("&"))
    return dict.fromkeys(query, "2026-11-20")


async def test_a_base_rate_dated_outside_the_range_is_422(app_client: httpx.AsyncClient) -> None:
    r = await app_client.put(
        "/v1/base-rates/0001-01-01", json={"rate": "1.00"}, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert (r.status_code, r.json()["code"], r.json()["errors"][0]["field"]) == (422, "date_out_of_range", "valid_from")


@pytest.mark.parametrize(("method", "path"), [("POST", "/periods/0001-01/close"), ("GET", "/periods/0001-01/gl-report"),
                                              ("GET", "/periods/3000-01/datev"), ("GET", "/periods/1899-12/gl-report")])  # fmt: skip
async def test_periods_outside_the_range_are_422_at_once(tenant: Tenant, method: str, path: str) -> None:
    started = time.monotonic()
    r = await tenant.client.request(method, tenant.url(path), headers=tenant.headers(idem=str(uuid.uuid4())))
    assert (r.status_code, r.json()["code"]) == (422, "period_invalid"), r.text
    assert time.monotonic() - started < 5  # year 0001 was closed month by month until the statement timed out


# --- JSON nesting ---------------------------------------------------------------------------------------------
DEEP = b"[" * 1000 + b"]" * 1000
JSON_ROUTES = [
    ("POST", "/entries"),
    ("POST", "/entries/batch"),
    ("POST", "/v1/api-keys"),
    ("POST", "/v1/notification-callbacks"),
    ("PUT", "/dunning/policy"),
    ("POST", "/v1/merchants"),
    ("POST", "/accounts"),
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_json_nested_too_deep_is_400_naming_the_nesting_without_an_error_log(
    pool: asyncpg.Pool, tenant: Tenant, caplog: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    before = await counts(pool, tenant.merchant_id)
    url = path if path.startswith("/v1/") else tenant.url(path)
    key = OPERATOR_KEY if path == "/v1/merchants" else None
    caplog.set_level(logging.WARNING)
    hidden = b'["' + b"]" * 2000 + b'", ' + DEEP + b"]"  # closing brackets in a string hide the nesting
    for body in (DEEP, b'{"a": ' * 40 + b"1" + b"}" * 40, hidden):
        r = await tenant.client.request(
            method, url, content=body, headers={**tenant.headers(key, idem=str(uuid.uuid4())),
                                                "Content-Type": "application/json"}
        )  # fmt: skip
        assert r.status_code == 400, r.text
        problem = r.json()
        assert problem["code"] == "request_invalid"
        assert "nesting too deep" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == ["body"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert await counts(pool, tenant.merchant_id) == before


async def test_brackets_inside_strings_do_not_count_as_nesting(tenant: Tenant) -> None:
    r = await tenant.post_entry(entry("2026-11-20")["lines"], description="[" * 400 + "{" * 90)
    assert r.status_code == 201, r.text


# --- account totals -------------------------------------------------------------------------------------------
async def test_an_account_total_is_bounded_and_reports_keep_working(tenant: Tenant) -> None:
    """bugs-14: lines of the maximum add up; the posting that would take an account past the bound is refused
    with 422 naming the limit, and every report of the business still answers."""
    per_account = ACCOUNT_TOTAL_MINOR_MAX // 10**15  # maximum lines an account can take: 9
    for n in range(per_account):
        r = await tenant.post_entry(_max_lines(), date=f"2026-10-{n + 1:02d}")
        assert r.status_code == 201, r.text
    refused = await tenant.post_entry(_max_lines(), date="2026-10-20")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "account_total_exceeded"
    assert "9,000,000,000,000,000" in refused.json()["detail"]
    batch = await tenant.post("/entries/batch", {"entries": [entry("2026-10-21", MAX)] * 18}, key=tenant.poster_key)
    assert (batch.status_code, batch.json()["code"]) == (422, "account_total_exceeded"), batch.text
    await _every_report_answers(tenant, "2026-10")
    tb = (await tenant.get("/reports/trial-balance")).json()
    assert {r["account"]: r["debit"] for r in tb["rows"]}["1200"] == "90000000000000.00"


def _max_lines() -> list[dict[str, str]]:
    return [{"account": "1200", "debit": MAX}, {"account": "8400", "credit": MAX}]


async def _every_report_answers(tenant: Tenant, period: str) -> None:
    for path, params in [
        ("/accounts/1200/balance", {}),
        ("/accounts/1200/register", {}),
        ("/reports/trial-balance", {}),
        ("/reports/balance-sheet", {}),
        ("/reports/income-statement", {"from": f"{period}-01", "to": f"{period}-28"}),
        (f"/periods/{period}/gl-report", {"format": "json"}),
        (f"/periods/{period}/gl-report", {"format": "csv"}),
        (f"/periods/{period}/gl-report", {"format": "xlsx"}),
    ]:
        r = await tenant.get(path, **params)
        assert r.status_code == 200, (path, r.text)


async def test_reports_of_books_beyond_bigint_still_answer(pool: asyncpg.Pool, tenant: Tenant) -> None:
    """Books written before the bound existed may hold account sums beyond bigint: reports sum them exactly."""
    await tenant.post_entry(entry("2026-10-01")["lines"])
    account = await pool.fetchval(
        "SELECT account_id FROM accounts WHERE merchant_id = $1 AND business = $2 AND number = '1200'",
        tenant.merchant_id,
        tenant.business,
    )
    await pool.executemany(
        "INSERT INTO balance_totals (merchant_id, business, account_id, currency, day, slot, debit_minor, "
        "credit_minor) VALUES ($1, $2, $3, 'EUR', $4, 0, 9000000000000000000, 0)",
        [(tenant.merchant_id, tenant.business, account, date(2026, 10, d)) for d in (2, 3)],
    )
    await _every_report_answers(tenant, "2026-10")
    balance = (await tenant.get("/accounts/1200/balance")).json()["balances"][0]
    assert balance["debit_total"] == "180000000000000001.00"


async def test_another_merchants_business_code_is_404_whatever_the_dates(tenant: Tenant) -> None:
    """The range is checked once the business code is known to be the caller's: nothing is learnt about others."""
    r = await tenant.client.get("/v1/businesses/9999/accounts/1200/balance?as_of=0001-01-01", headers=tenant.headers())
    assert (r.status_code, r.json()["code"]) == (404, "business_not_found")


async def test_verify_checks_the_account_totals_against_the_lines(pool: asyncpg.Pool, tenant: Tenant) -> None:
    await tenant.post_entry(_max_lines(), date="2026-10-01")
    assert (await tenant.get("/journal/verify")).json()["balances_match_lines"] is True
    await pool.execute(
        "UPDATE account_totals SET debit_minor = 0 WHERE merchant_id = $1 AND debit_minor > 0", tenant.merchant_id
    )
    assert (await tenant.get("/journal/verify")).json()["balances_match_lines"] is False


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        # a register cursor: date / entry id / line number / running balance, each beyond its column
        ("/accounts/4970/register", b64("r2026-11-01/9999999999999999999/0/0")),
        ("/accounts/4970/register", b64("r2026-11-01/1/99999/0")),
        ("/accounts/4970/register", b64("r0001-01-01/1/1/0")),
        ("/accounts/4970/register", b64("r2026-11-01/1/1/-99999999999999999999")),
        # the find routes' cursors: a number beyond bigint, a NUL, a date outside the ledger's range
        ("/customers", b64("[99999999999999999999]")),
        ("/customers", b64('["C-1\\u0000"]')),
        ("/orders", b64('["0001-01-01","o-1"]')),
        ("/orders", b64('["2026-11-01","o-1\\u0000"]')),
        ("/bank-statements", b64('["2026-11-01","DE89370400440532013000",99999999999999999999]')),
    ],
)
async def test_a_cursor_out_of_range_is_400(tenant: Tenant, path: str, cursor: str) -> None:
    """A cursor is the client's input too: every value it carries is checked against the column it is compared
    with before any query (a crafted one was a 500)."""
    r = await tenant.get(path, cursor=cursor)
    assert (r.status_code, r.json()["code"]) == (400, "cursor_invalid"), r.text


async def test_a_statement_date_in_the_path_is_in_the_ledgers_range(tenant: Tenant) -> None:
    r = await tenant.get("/bank-statements/0001-01-01/ST-1")
    assert (r.status_code, r.json()["code"]) == (422, "date_out_of_range"), r.text
    assert (await tenant.get("/bank-statements/2026-11-01/ST-1")).status_code == 404
