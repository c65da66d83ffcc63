"""Operations and the outer walls: health, readiness, metrics, OpenAPI, problem+json, rate limits, route guards.

The route-guard test enumerates the routes of the running app, so a new route without the auth middleware, or
without declared roles, fails it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace

import asyncpg
import httpx
import pytest
from litestar import Litestar

from ledger.app import create_app
from ledger.config import Settings
from ledger.http.auth import AuthMiddleware
from ledger.migrate import load_migrations
from ledger.problem_codes import codes_for
from tests.conftest import OPERATOR_KEY, Simulator, Tenant, client_for, make_tenant, running
from tests.e2e.amazon import item, make_shop, shared_key

# open without an API key: health and metrics; Amazon Pay IPNs authenticate by their SNS signature instead
# (tests/e2e/test_ipn.py refuses forged ones)
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/v1/amazon-pay/ipn"}
SIGN_IN_PATHS = {"/ui/sign-in", "/ui/sign-out"}  # the web pages' own entrance; every other /ui page needs a session


async def test_health_and_ready(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/health")).json() == {"status": "ok"}
    ready = await app_client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["schema_version"] == len(load_migrations())  # the latest migration the database records


async def test_metrics_count_requests_and_postings(tenant: Tenant, app_client: httpx.AsyncClient) -> None:
    await tenant.sale("C-1", "119.00", "100.00", "19.00")
    text = (await app_client.get("/metrics")).text
    assert "kontor_entries_posted_total" in text
    assert "kontor_http_requests_total" in text
    assert "kontor_http_request_duration_seconds" in text


async def test_openapi_documents_every_route(app: Litestar, app_client: httpx.AsyncClient) -> None:
    doc = (await app_client.get("/schema/openapi.json")).json()
    assert doc["info"]["title"] == "Kontor"
    assert doc["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not handler.resolve_include_in_schema() or route.path.startswith("/schema"):
                continue
            for method in handler.http_methods:
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
                assert (path, method) in documented, (path, method)
    post = doc["paths"]["/v1/businesses/{business_code}/entries"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"] for p in post["parameters"])
    assert (await app_client.get("/schema")).status_code == 200  # the interactive UI
    # each documented problem answer names the catalogue's codes of its status (ledger.problem_codes)
    conflict = post["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"]
    assert conflict == "#/components/schemas/Problem409"
    schemas = doc["components"]["schemas"]
    assert schemas["Problem409"]["properties"]["status"]["const"] == 409
    listed, family = schemas["Problem409"]["properties"]["code"]["anyOf"]
    assert set(listed["enum"]) == {p.code for p in codes_for(409) if not p.is_family}
    assert {"period_closed", "entry_already_reversed"} <= set(listed["enum"])
    assert re.fullmatch(family["pattern"], "amazon_pay_invalid_charge_status")
    assert "period_closed" not in schemas["Problem422"]["properties"]["code"]["anyOf"][0]["enum"]
    assert schemas["Problem401"]["properties"]["code"]["enum"] == ["api_key_missing", "api_key_invalid", "unauthorized"]


async def test_problem_details_and_request_ids(tenant: Tenant, app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/v1/does-not-exist", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "req-123"
    body = r.json()
    assert body["type"].startswith("urn:kontor:problem:")
    assert {"title", "status", "detail", "instance", "code"} <= body.keys()
    r = await app_client.put(tenant.url("/entries"), headers=tenant.headers())
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len((await app_client.get("/health")).headers["x-request-id"]) == 32


def guarded_routes(app: Litestar) -> list[tuple[str, str, object]]:
    out = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                out.append((route.path, method, handler))
    return out


def concrete(path: str) -> str:
    out = re.sub(r"\{business_code:int\}", "1001", path)
    out = re.sub(r"\{\w+:int\}", "999999999", out)  # no such id: never revokes the keys in use
    out = re.sub(r"\{\w+:str\}", "x1", out)
    return re.sub(r"\{\w+:date\}", "2026-01-01", out)


async def test_every_route_is_guarded_except_the_public_ones(app: Litestar) -> None:
    routes = guarded_routes(app)
    assert len(routes) > 20
    for path, method, handler in routes:
        if method == "OPTIONS":
            continue  # generated by Litestar; the middleware lets it list the allowed methods (tested below)
        public = path in PUBLIC_PATHS or path.startswith(("/schema", "/ui"))  # /ui: a session, tested below
        guarded = any(isinstance(m, AuthMiddleware) for m in handler.resolve_middleware())  # type: ignore[attr-defined]
        if public:
            assert not guarded, path
            continue
        assert guarded, f"{method} {path} has no AuthMiddleware"
        roles = handler.opt.get("roles")  # type: ignore[attr-defined]
        assert roles, f"{method} {path} declares no roles"


async def test_every_guarded_route_refuses_requests_without_a_key(app: Litestar, app_client: httpx.AsyncClient) -> None:
    for path, method, _ in guarded_routes(app):
        if path in PUBLIC_PATHS or path.startswith(("/schema", "/ui")) or method in ("HEAD", "OPTIONS"):
            continue
        r = await app_client.request(method, concrete(path), json={})
        assert r.status_code == 401, (method, path, r.status_code)


async def test_every_web_page_needs_a_session(app: Litestar, app_client: httpx.AsyncClient) -> None:
    pages = [(p, m) for p, m, _ in guarded_routes(app) if p.startswith("/ui") and p not in SIGN_IN_PATHS]
    assert len(pages) >= 10
    for path, method in pages:
        if method in ("HEAD", "OPTIONS"):
            continue
        for cookie in ["", "kontor_session=forged-token"]:
            r = await app_client.request(
                method, concrete(path.replace("{code:int}", "1001")), headers={"Cookie": cookie}
            )
            assert (r.status_code, r.headers.get("location", "")[:19]) == (303, "/ui/sign-in?next=%2"), (path, cookie)


async def test_every_route_admits_only_its_roles(
    app: Litestar, app_client: httpx.AsyncClient, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    """Each role's key against every guarded route: a role the route does not declare gets 403 and changes nothing;
    a declared role gets past the guard (whatever the handler then says about the empty request)."""
    keys = {
        "admin": tenant.admin_key,
        "poster": tenant.poster_key,
        "accountant": tenant.accountant_key,
        "operator": OPERATOR_KEY,
    }
    before = await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id)
    checked = 0
    for path, method, handler in guarded_routes(app):
        roles = handler.opt.get("roles")  # type: ignore[attr-defined]
        if not roles or method in ("HEAD", "OPTIONS"):
            continue
        for role, key in keys.items():
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"guard-{role}-{method}-{path}"}
            r = await app_client.request(method, concrete(path), json={}, headers=headers)
            if role in roles:
                assert r.status_code not in (401, 403), (role, method, path, r.text)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code, r.text)
                assert r.json()["code"] == "role_forbidden"
            checked += 1
    assert checked > 250
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id) == before


async def test_options_lists_methods_without_a_key(tenant: Tenant, app_client: httpx.AsyncClient) -> None:
    r = await app_client.options(tenant.url("/entries"))
    assert r.status_code == 204
    assert "POST" in r.headers["allow"]


async def test_rate_limit_per_key(settings: Settings) -> None:
    limited = create_app(replace(settings, rate_limit_per_second=5))
    async with running(limited), client_for(limited) as client:
        t = await make_tenant(client)
        for _ in range(5):  # the budget is per one-second window: fire the burst within one window
            await asyncio.sleep(1 - time.monotonic() % 1 + 0.01)
            window = int(time.monotonic())
            results = await asyncio.gather(*(t.get("/accounts", key=t.accountant_key) for _ in range(12)))
            if int(time.monotonic()) == window:
                break
        statuses = [r.status_code for r in results]
        assert statuses.count(200) == 5
        assert statuses.count(429) == 7
        refused = next(r for r in results if r.status_code == 429)
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["retry-after"] == "1"
        # another key of the same merchant has its own budget
        assert (await t.get("/accounts", key=t.poster_key)).status_code == 200


async def test_secrets_never_reach_the_logs(
    tenant: Tenant, app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await app_client.post("/v1/api-keys", headers=tenant.headers(), json={"name": "n", "role": "poster"})
    secret_key = created.json()["key"]
    await tenant.get("/entries", key=secret_key)
    await app_client.get(tenant.url("/entries"), headers={"Authorization": "Bearer kontor_1_1_guessing-secret"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request" in logged
    for secret in (secret_key, secret_key.split("_", 3)[3], tenant.admin_key.split("_", 3)[3], "guessing-secret"):
        assert secret not in logged


async def test_merchant_secrets_never_reach_responses_or_logs(
    tenant: Tenant, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The MWS auth token and a webhook signing secret: written once, never shown again, never logged, even at
    DEBUG while Kontor calls Amazon Pay with the token and signs a delivery with the secret."""
    caplog.set_level(logging.DEBUG)
    shop = await make_shop(tenant, simulator)
    settings_shown = await tenant.client.get(tenant.url("/amazon-pay/settings"), headers=tenant.headers())
    callback = await tenant.client.post(
        "/v1/notification-callbacks",
        headers=tenant.headers(),
        json={"url": "http://127.0.0.1:9/hook", "types": ["balance.updated"]},
    )
    assert callback.status_code == 201, callback.text
    secret = callback.json()["secret"]
    assert (await shop.create_order("sec-1", [item(1, "11.90")])).status_code == 201
    listed = await tenant.client.get("/v1/notification-callbacks", headers=tenant.headers())
    assert secret not in listed.text
    private_key_body = shared_key()[0].splitlines()[5]  # a line of the PEM's base64 body
    assert "PRIVATE KEY" not in settings_shown.text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "sec-1" in logged or "orders" in logged  # the calls were logged at all
    assert private_key_body not in logged
    assert "PRIVATE KEY" not in logged
    assert secret not in logged
