"""Identifiers read from outside take ASCII digits only (cases security-05, -06, -08): a superscript two or an
Arabic-Indic digit passes `str.isdigit()` and `int()`, and made keys, session cookies, periods and cursors a 500.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import click
import httpx
import pytest
from litestar import Litestar

from desk.web import COOKIE
from ledger.cli import _parse_business
from ledger.domain import parse_period
from ledger.errors import Unprocessable
from tests.conftest import Tenant
from tests.e2e.test_web_pages import sign_in

NON_ASCII_DIGITS = ["\u00b2", "\u0663", "\uff11", "\u0967"]  # superscript 2, Arabic-Indic 3, fullwidth 1, Devanagari 1


@pytest.mark.parametrize("digit", NON_ASCII_DIGITS)
async def test_a_bearer_key_with_a_non_ascii_digit_is_401(app_client: httpx.AsyncClient, digit: str) -> None:
    for token in (f"kontor_{digit}_1_abcdef", f"kontor_1_{digit}_abcdef"):
        r = await app_client.get("/v1/businesses", headers={"Authorization": f"Bearer {token}".encode()})
        assert (r.status_code, r.json()["code"]) == (401, "api_key_invalid"), r.text


async def test_the_sign_in_form_refuses_such_a_key_as_invalid(app: Litestar) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test") as web:
        r = await sign_in(web, "kontor_\u00b2_1_abcdef")
        assert r.status_code == 401
        assert "This key is not valid." in r.text


@pytest.mark.parametrize("digit", NON_ASCII_DIGITS)
async def test_a_session_cookie_with_a_non_ascii_digit_is_no_session(app: Litestar, digit: str) -> None:
    cookie = f"{COOKIE}={digit}.abcdefghijklmnopqrstuvwxyz".encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test") as web:
        for method, path in (("GET", "/ui/"), ("GET", "/ui/1001/trial-balance"), ("POST", "/ui/sign-out")):
            r = await web.request(method, path, headers={"Cookie": cookie})
            assert r.status_code == 303, (path, r.text)
            assert r.headers["location"].startswith("/ui/sign-in")


async def test_a_period_with_a_non_ascii_digit_is_refused_on_the_pages(app: Litestar, tenant: Tenant) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test") as web:
        assert (await sign_in(web, tenant.accountant_key)).status_code == 303
        for path in ("/ui/1001/periods/2026-1\u0661", "/ui/1001/periods/2026-1\u0661/gl-report?format=csv"):
            r = await web.get(path)
            assert r.status_code == 422, (path, r.status_code)  # period_invalid, as the API answers
        assert (await web.get("/ui/1001/periods/2026-11")).status_code == 200


@pytest.mark.parametrize("text", ["e\u0663", "e\u00b2", "e12\u0663"])
async def test_a_journal_cursor_with_non_ascii_digits_is_400(tenant: Tenant, text: str) -> None:
    cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    r = await tenant.get("/entries", cursor=cursor)
    assert (r.status_code, r.json()["code"]) == (400, "cursor_invalid"), r.text


async def test_a_register_cursor_with_non_ascii_digits_is_400(tenant: Tenant) -> None:
    cursor = base64.urlsafe_b64encode("r2026-11-20/\u0663/1/0".encode()).decode().rstrip("=")
    r = await tenant.get("/accounts/1200/register", cursor=cursor)
    assert (r.status_code, r.json()["code"]) == (400, "cursor_invalid"), r.text


@pytest.mark.parametrize("period", ["\u0662\u0660\u0662\u0666-\u0661\u0661", "2026-1\u0661", "2026-13", "0001-01"])
def test_periods_are_ascii_and_in_range(period: str) -> None:
    with pytest.raises(Unprocessable, match="not a period"):
        parse_period(period)


def test_the_cli_business_option_takes_ascii_digits_only() -> None:
    with pytest.raises(click.BadParameter):
        _parse_business("\u00b2001:DE:EUR")
    assert _parse_business("1001:de:eur") == {"code": 1001, "country": "DE", "currency": "EUR"}


async def test_datev_takes_ascii_account_numbers_only(tenant: Tenant) -> None:
    """An alternative number written with other digits ('²') would pass isdigit() into the DATEV file."""
    r = await tenant.client.patch(
        tenant.url("/accounts/1200"), json={"alt_number": "12\u00b2"}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    await tenant.post_entry([{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}])
    settings = {"consultant_number": 1001, "client_number": 1}
    assert (await tenant.client.put(tenant.url("/datev/settings"), json=settings, headers=tenant.headers())).is_success
    r = await tenant.get("/periods/2026-11/datev")
    assert (r.status_code, r.json()["code"]) == (422, "datev_account_invalid"), r.text


@pytest.mark.parametrize(
    "code", ["\u0661\u0660\u0660\u0661", "\uff11\uff10\uff10\uff11", "1_001", "+1001", " 1001", "1001 "]
)
async def test_a_number_in_the_path_is_written_in_ascii_digits_only(tenant: Tenant, code: str) -> None:
    """The router reads int() numbers: each of these was business code 1001 (case security-08's kind)."""
    r = await tenant.client.get(f"/v1/businesses/{quote(code)}/accounts", headers=tenant.headers(tenant.accountant_key))
    assert (r.status_code, r.json()["code"]) == (400, "path_parameter_invalid"), r.text
    entry = await tenant.client.get("/v1/businesses/1001/entries/\u0663", headers=tenant.headers(tenant.admin_key))
    assert (entry.status_code, entry.json()["code"]) == (400, "path_parameter_invalid"), entry.text
    assert (await tenant.get("/accounts")).status_code == 200
