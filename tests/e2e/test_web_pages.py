"""The accountant's web pages over HTTP: sign-in, the session cookie, who sees what, and locale formatting.

The browser tests (test_web_browser.py) click through the pages in Chromium; these check what a browser
does not show: cookie attributes, status codes, redirects and the session's end.
"""

from __future__ import annotations

from datetime import date

import asyncpg
import httpx
import pytest
from litestar import Litestar

from desk.web import COOKIE, Formats, locale_of
from tests.conftest import Tenant, make_tenant


async def sign_in(client: httpx.AsyncClient, key: str, next_page: str = "/ui/") -> httpx.Response:
    return await client.post("/ui/sign-in", data={"key": key, "next": next_page})


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    parts = [p.strip() for p in header.split(";")]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts)}


@pytest.fixture
async def web(app: Litestar) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar), like one browser."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")


async def test_an_accountant_key_opens_a_session_with_a_safe_cookie(tenant: Tenant, web: httpx.AsyncClient) -> None:
    assert (await web.get("/ui/")).status_code == 303  # not signed in
    r = await sign_in(web, tenant.accountant_key, "/ui/1001/trial-balance")
    assert (r.status_code, r.headers["location"]) == (303, "/ui/1001/trial-balance")
    attributes = cookie_attributes(r)
    assert len(attributes[COOKIE]) >= 40  # 32 random bytes
    assert (attributes["path"], attributes["samesite"].lower(), attributes["max-age"]) == ("/ui", "lax", "28800")
    assert "httponly" in attributes
    assert "secure" not in attributes  # plain HTTP here; see the HTTPS test below
    page = await web.get("/ui/1001/trial-balance")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # the cookie alone opens the pages (another client, no key)
    rows = await tenant.client.get("/ui/", headers={"Cookie": f"{COOKIE}={attributes[COOKIE]}"})
    assert rows.status_code == 200


async def test_the_cookie_is_secure_over_https(app: Litestar, tenant: Tenant) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kontor.test") as web:
        r = await sign_in(web, tenant.accountant_key)
        assert r.status_code == 303
        assert "secure" in cookie_attributes(r)


async def test_bad_and_wrong_role_keys_get_no_session(tenant: Tenant, web: httpx.AsyncClient) -> None:
    for key, status, text in [
        ("kontor_1_1_nonsense", 401, "This key is not valid."),
        ("", 401, "This key is not valid."),
        (tenant.poster_key, 403, "Sign in with an accountant or admin key."),
    ]:
        r = await sign_in(web, key)
        assert r.status_code == status, key
        assert text in r.text
        assert not r.headers.get_list("set-cookie")
    assert (await sign_in(web, tenant.admin_key)).status_code == 303  # an admin may read too


async def test_pages_redirect_to_sign_in_and_back(tenant: Tenant, web: httpx.AsyncClient) -> None:
    r = await web.get("/ui/1001/customers", params={"after": "C-1"})
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/sign-in?next=%2Fui%2F1001%2Fcustomers%3Fafter%3DC-1"
    form = await web.get(r.headers["location"])
    assert 'name="next" value="/ui/1001/customers?after=C-1"' in form.text
    # only a page of this site may be the target
    for target in ["//evil.example/ui/", "https://evil.example/", "/v1/merchants", "/ui/\\evil"]:
        done = await sign_in(web, tenant.accountant_key, target)
        assert done.headers["location"] == "/ui/", target


async def test_another_merchants_business_code_is_not_found(tenant: Tenant, web: httpx.AsyncClient) -> None:
    other = await make_tenant(tenant.client, businesses=[{"code": 2002, "country": "AT", "currency": "EUR"}])
    await sign_in(web, tenant.accountant_key)
    for path in ["/ui/2002/trial-balance", "/ui/2002/customers", "/ui/2002/periods/2026-10/gl-report?format=csv"]:
        r = await web.get(path)
        assert r.status_code == 404, path
        assert "This business code does not exist, or it is not yours." in r.text
    assert (await web.get("/ui/1001/periods/2026-13x")).status_code == 422
    assert (await web.get("/ui/1001/trial-balance", params={"as_of": "yesterday"})).status_code == 400
    assert other.business == 2002


async def test_sign_out_and_revoking_the_key_end_the_session(tenant: Tenant, web: httpx.AsyncClient) -> None:
    await sign_in(web, tenant.accountant_key)
    token = web.cookies[COOKIE]
    out = await web.post("/ui/sign-out")
    assert (out.status_code, out.headers["location"]) == (303, "/ui/sign-in")
    assert cookie_attributes(out)["max-age"] == "0"
    # the old token is dead on the server, not only forgotten by this browser
    replay = await tenant.client.get("/ui/", headers={"Cookie": f"{COOKIE}={token}"})
    assert replay.status_code == 303
    # a revoked key ends its sessions at once
    await sign_in(web, tenant.accountant_key)
    assert (await web.get("/ui/")).status_code == 200
    key_id = int(tenant.accountant_key.split("_")[2])
    revoked = await tenant.client.delete(f"/v1/api-keys/{key_id}", headers=tenant.headers())
    assert revoked.status_code == 200, revoked.text
    assert (await web.get("/ui/")).status_code == 303


def test_amounts_are_written_in_the_business_codes_locale() -> None:
    assert (locale_of("DE"), locale_of("AT"), locale_of("US"), locale_of("GB")) == ("de_DE", "de_AT", "en_US", "en_GB")
    de = Formats("de_DE", "EUR")
    assert (de.amount("-1234567.50"), de.amount("0.00"), de.amount(None), de.amount("12", "JPY")) == (
        "-1.234.567,50", "0,00", "", "12",
    )  # fmt: skip
    assert Formats("en_US", "USD").amount("1234.5") == "1,234.50"
    assert Formats(locale_of("CH"), "CHF").amount("1234.50") == "1'234.50"


async def test_the_gl_report_downloads_through_the_session(tenant: Tenant, web: httpx.AsyncClient) -> None:
    t = tenant
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-05")
    await sign_in(web, t.accountant_key)
    page = "/ui/1001/periods/2026-10/gl-report"
    missing = await web.get(page, params={"format": "datev"})
    assert missing.status_code == 409
    assert "has no DATEV settings" in missing.text
    settings = {"consultant_number": 1234567, "client_number": 4711}
    assert (await t.client.put(t.url("/datev/settings"), json=settings, headers=t.headers())).status_code == 200
    for file_format, media_type in [
        ("csv", "text/csv; charset=utf-8"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("datev", "text/csv; charset=windows-1252"),
    ]:
        mine = await web.get(page, params={"format": file_format})
        api = await t.get("/periods/2026-10/gl-report", key=t.accountant_key, format=file_format)
        assert (mine.status_code, mine.headers["content-type"]) == (200, media_type), file_format
        assert mine.headers["content-disposition"] == api.headers["content-disposition"]
        if file_format != "xlsx":  # (XLSX files carry their creation time)
            assert mine.content.split(b"\r\n")[1:] == api.content.split(b"\r\n")[1:]  # DATEV: all but the header
    assert (await web.get(page, params={"format": "pdf"})).status_code == 400


async def test_the_trial_balance_and_balance_sheet_pages_name_an_imbalance_in_words(
    tenant: Tenant, web: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """What only a superuser could do (the balance rows have no trigger): one credit 0.10 more than the journal."""
    await tenant.sale("C-1", "119.00", "100.00", "19.00")
    await sign_in(web, tenant.accountant_key)
    page = await web.get(f"/ui/{tenant.business}/trial-balance", params={"as_of": "2026-11-30"})
    assert '<p id="balanced" class="ok">Soll und Haben stimmen überein.</p>' in page.text  # a German page
    key = (tenant.merchant_id, tenant.business, date(2026, 11, 20))
    bump = (
        "UPDATE balance_totals SET credit_minor = credit_minor + $4 WHERE ctid = (SELECT ctid FROM balance_totals "
        "WHERE merchant_id = $1 AND business = $2 AND day = $3::date AND credit_minor >= 10 LIMIT 1)"
    )
    await pool.execute(bump, *key, 10)
    try:
        page = await web.get(f"/ui/{tenant.business}/trial-balance", params={"as_of": "2026-11-30"})
        assert (
            '<p id="balanced" class="error">NICHT AUSGEGLICHEN: EUR Haben übersteigt Soll um 0,10.</p>' in page.text
        )  # German page
        sheet = await web.get(f"/ui/{tenant.business}/balance-sheet", params={"as_of": "2026-11-30"})
        assert (
            '<p id="balanced" class="error">NICHT AUSGEGLICHEN: Passiva übersteigen Aktiva um 0,10.</p>' in sheet.text
        )
    finally:
        await pool.execute(bump, *key, -10)
