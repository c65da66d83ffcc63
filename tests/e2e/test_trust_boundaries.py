"""What a browser or another site may do with the service (cases security-21, -22, -23): no cross-site sign-in,
answers that are not cached or sniffed, a dunning letter with one charset and the pages' CSP, no CDN scripts on
the service's origin by default, and only real countries for business codes.
"""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from desk.web import COOKIE
from ledger.app import create_app
from ledger.config import Settings
from ledger.http.docs import SWAGGER_UI_VERSION
from tests.conftest import OPERATOR_KEY, Tenant, client_for, running


@pytest.fixture
async def web(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")


CROSS_SITE = [
    {"Origin": "https://evil.example", "Referer": "https://evil.example/page", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},  # a browser without Fetch Metadata
    {"Origin": "null"},  # a page with Referrer-Policy: no-referrer, or a sandboxed frame
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.kontor.test"},
    {"Referer": "https://evil.example/x"},  # an older browser that sends only the Referer
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_sign_in_is_refused(tenant: Tenant, web: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await web.post("/ui/sign-in", data={"key": tenant.accountant_key, "next": "/ui/"}, headers=headers)
    assert r.status_code == 403
    assert not [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert "own sign-in page" in r.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://kontor.test", "Sec-Fetch-Site": "same-origin"},  # a browser on the form
        {"Origin": "http://kontor.test"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://kontor.example"},  # behind a proxy that rewrites Host
        {},  # curl, scripts: no browser, nothing to forge
    ],
)
async def test_a_same_site_sign_in_works(tenant: Tenant, web: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await web.post("/ui/sign-in", data={"key": tenant.accountant_key, "next": "/ui/"}, headers=headers)
    assert (r.status_code, r.headers["location"]) == (303, "/ui/")


async def test_a_cross_site_sign_out_is_refused(tenant: Tenant, web: httpx.AsyncClient) -> None:
    assert (await web.post("/ui/sign-in", data={"key": tenant.accountant_key})).status_code == 303
    r = await web.post("/ui/sign-out", headers=CROSS_SITE[0])
    assert r.status_code == 403
    assert (await web.get("/ui/")).status_code == 200  # still signed in


async def test_api_answers_are_not_cached_or_sniffed(tenant: Tenant) -> None:
    created = await tenant.client.post(
        "/v1/api-keys", json={"name": "k", "role": "accountant"}, headers=tenant.headers()
    )
    refused = await tenant.get("/accounts/0000")
    for r in (created, await tenant.get("/reports/trial-balance"), refused):
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert r.headers["x-content-type-options"] == "nosniff"
    assert refused.status_code == 404
    health = await tenant.client.get("/health")
    assert health.headers["x-content-type-options"] == "nosniff"


async def test_the_dunning_letter_has_one_charset_and_the_pages_csp(tenant: Tenant) -> None:
    policy = {"levels": [{"days": 1, "payment_term_days": 14, "fee": "0.00"}]}
    assert (await tenant.client.put(tenant.url("/dunning/policy"), json=policy, headers=tenant.headers())).is_success
    await tenant.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-01")
    run = await tenant.post("/dunning/runs", {"as_of": "2026-11-02"}, key=tenant.poster_key, idem=None)
    assert run.status_code == 200, run.text
    (notice,) = (await tenant.get("/dunning/notices")).json()["items"]
    r = await tenant.get(f"/dunning/notices/{notice['notice_id']}/document")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


async def test_no_cdn_script_runs_on_the_service_origin_by_default(app_client: httpx.AsyncClient) -> None:
    for path in ("/schema", "/schema/swagger", "/schema/openapi.json"):
        r = await app_client.get(path)
        assert "<script" not in r.text, path
    assert (await app_client.get("/schema")).json()["openapi"].startswith("3.")


async def test_interactive_docs_are_pinned_with_subresource_integrity(settings: Settings) -> None:
    docs = create_app(Settings(**{**settings.__dict__, "api_docs": True}), plugins=[])
    async with running(docs), client_for(docs) as client:
        page = (await client.get("/schema")).text
    assert f"swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui-bundle.js" in page
    assert page.count('integrity="sha384-') == 3
    assert "@latest" not in page


@pytest.mark.parametrize("country", ["XX", "EU", "ZZ", "XK", "QO"])
async def test_a_business_code_needs_an_iso_3166_country(tenant: Tenant, country: str) -> None:
    r = await tenant.client.post(
        "/v1/businesses", json={"code": 1700, "country": country, "currency": "EUR"}, headers=tenant.headers()
    )
    assert (r.status_code, r.json()["code"]) == (422, "country_unknown"), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["country"]
    merchant = await tenant.client.post(
        "/v1/merchants",
        json={"name": "x", "businesses": [{"code": 1001, "country": country, "currency": "EUR"}]},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
    )
    assert [e["field"] for e in merchant.json()["errors"]] == ["businesses[0].country"]
    ok = await tenant.client.post(
        "/v1/businesses", json={"code": 1700, "country": "AT", "currency": "EUR"}, headers=tenant.headers()
    )
    assert ok.status_code == 201, ok.text
