"""The posting fast path (ledger/http/fastpath.py) answers exactly as the Litestar route does.

Method: the same requests go to the service under test (fast path on) and to a service of its own with the fast
path off, each for a tenant of its own; the answers must agree in status, headers and body (ids, times and
request ids aside), and the fast path's counter says which requests it answered and which it handed over.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from ledger import metrics
from ledger.app import create_app
from ledger.config import Settings
from tests.conftest import FixedClock, Tenant, client_for, make_tenant, running

VOLATILE_HEADERS = {"date", "x-request-id", "content-length"}
VOLATILE_FIELDS = {"id", "recorded_at", "request_id", "key_id"}
ENTRY = {
    "effective_date": "2026-11-20",
    "description": "Order 1",
    "reference": "order-1",
    "lines": [
        {"account": "1400", "customer": "C-1", "debit": "119.00"},
        {"account": "8400", "credit": "100.00"},
        {"account": "1776", "credit": "19.00"},
    ],
}


@pytest.fixture
async def routed(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    """A service that sends every posting through the Litestar route."""
    application = create_app(replace(settings, post_fast_path=False), clock=clock, plugins=[])
    async with running(application), client_for(application) as client:
        yield client


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def answer(r: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in r.headers.items() if k not in VOLATILE_HEADERS}
    body = normalized(r.json()) if r.headers.get("content-type", "").endswith("json") else r.text
    return r.status_code, headers, body


def counted() -> tuple[float, float]:
    return (
        metrics.POST_FAST_PATH.labels("answered")._value.get(),
        metrics.POST_FAST_PATH.labels("handed_over")._value.get(),
    )


async def test_the_fast_path_answers_as_the_route_does(
    app_client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    fast, slow = await make_tenant(app_client), await make_tenant(routed)
    reused, replayed = str(uuid.uuid4()), str(uuid.uuid4())
    deep: Any = ENTRY["lines"]
    for _ in range(40):
        deep = [deep]
    cases: list[tuple[str, str, dict[str, Any] | bytes, str | None, str, bool | None]] = [
        # (name, path, body, Idempotency-Key, key role, answered by the fast path: None = not its route)
        ("booked", "/v1/businesses/1001/entries", ENTRY, replayed, "poster", True),
        ("replayed", "/v1/businesses/1001/entries", ENTRY, replayed, "poster", True),
        ("key reused", "/v1/businesses/1001/entries", {**ENTRY, "description": "other"}, replayed, "poster", True),
        ("admin key", "/v1/businesses/1001/entries", ENTRY, reused, "admin", True),
        ("accountant without reason", "/v1/businesses/1001/entries", ENTRY, None, "accountant", True),
        ("accountant", "/v1/businesses/1001/entries", {**ENTRY, "reason": "typo"}, None, "accountant", True),
        ("no key", "/v1/businesses/1001/entries", ENTRY, None, "", False),
        ("bad key", "/v1/businesses/1001/entries", ENTRY, None, "forged", False),
        ("no idempotency key", "/v1/businesses/1001/entries", ENTRY, "", "poster", False),
        ("bad idempotency key", "/v1/businesses/1001/entries", ENTRY, "two words", "poster", False),
        ("foreign business code", "/v1/businesses/9998/entries", ENTRY, None, "poster", False),
        ("query string", "/v1/businesses/1001/entries?x=1", ENTRY, None, "poster", None),
        ("unbalanced", "/v1/businesses/1001/entries", {**ENTRY, "lines": ENTRY["lines"][:2]}, None, "poster", True),
        (
            "unknown account",
            "/v1/businesses/1001/entries",
            {**ENTRY, "lines": [{"account": "1", "debit": "1"}, {"account": "2", "credit": "1"}]},
            None,
            "poster",
            True,
        ),
        (
            "beyond the horizon",
            "/v1/businesses/1001/entries",
            {**ENTRY, "effective_date": "2099-01-01"},
            None,
            "poster",
            False,
        ),
        ("not JSON", "/v1/businesses/1001/entries", b"{", None, "poster", False),
        ("too deep", "/v1/businesses/1001/entries", {**ENTRY, "metadata": {"x": deep}}, None, "poster", False),
        ("unknown field", "/v1/businesses/1001/entries", {**ENTRY, "colour": "red"}, None, "poster", False),
    ]
    for name, path, body, idem, role, fast_answers in cases:
        idem_key = str(uuid.uuid4()) if idem is None else idem
        answers = []
        before = counted()
        for tenant, client in ((fast, app_client), (slow, routed)):
            token = {
                "poster": tenant.poster_key,
                "admin": tenant.admin_key,
                "accountant": tenant.accountant_key,
                "forged": f"kontor_{tenant.merchant_id}_1_forged",
            }.get(role)
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            if idem_key:
                headers["Idempotency-Key"] = idem_key
            content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
            answers.append(answer(await client.post(path, content=content, headers=headers)))
        after = counted()
        assert answers[0] == answers[1], name
        expected = {True: (1, 0), False: (0, 1), None: (0, 0)}[fast_answers]
        assert (after[0] - before[0], after[1] - before[1]) == expected, name


async def test_a_large_body_is_handed_over_whole(tenant: Tenant) -> None:
    """A body beyond KONTOR_REQUEST_BODY_BYTES_MAX is refused by the route (413), read by the fast path first."""
    big = {**ENTRY, "description": "x" * 2_000_000}
    r = await tenant.post("/entries", big, key=tenant.poster_key)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large"), r.text
    ok = await tenant.post("/entries", ENTRY, key=tenant.poster_key)
    assert ok.status_code == 201, ok.text


@pytest.fixture
async def limited(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(replace(settings, rate_limit_per_second=3), clock=clock, plugins=[])
    async with running(application), client_for(application) as client:
        yield client


async def test_a_fast_posting_counts_once_against_the_rate_limit(limited: httpx.AsyncClient) -> None:
    t = await make_tenant(limited)
    await asyncio.sleep(1 - time.monotonic() % 1)  # at most 3 per second (a window): start early in one
    answers = [await t.post("/entries", ENTRY, key=t.poster_key) for _ in range(4)]
    assert [r.status_code for r in answers] == [201, 201, 201, 429], [r.text for r in answers]
    assert answers[3].json()["code"] == "rate_limited"
