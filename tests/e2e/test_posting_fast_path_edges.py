"""The posting fast path (ledger/http/fastpath.py) at its edges: repeated headers, the rate limit, metrics and
access lines, callers refused before their body is read.

Method as in test_posting_fast_path.py: two services on the same database, one with the fast path and one with
KONTOR_POST_FAST_PATH=false (every request through the Litestar route); the same request goes to both and the
answers (or what was booked) must agree. One tenant serves both (each request gets its own Idempotency-Key unless
the test says otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from prometheus_client import REGISTRY

from ledger.app import create_app
from ledger.config import Settings
from tests.conftest import OPERATOR_KEY, FixedClock, Tenant, client_for, free_port, make_tenant, running, serving
from tests.e2e.test_posting_fast_path import ENTRY, answer

PATH = "/v1/businesses/1001/entries"
BODY = json.dumps(ENTRY).encode()


@pytest.fixture(scope="module")
async def services(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[Litestar, Litestar]]:
    """(fast path on, fast path off), both running on the test database."""
    fast = create_app(settings, clock=clock, plugins=[])
    routed = create_app(replace(settings, post_fast_path=False), clock=clock, plugins=[])
    async with running(fast), running(routed):
        yield fast, routed


@pytest.fixture(scope="module")
async def clients(services: tuple[Litestar, Litestar]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with client_for(services[0]) as fast, client_for(services[1]) as routed:
        yield fast, routed


@pytest.fixture
async def shop(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> Tenant:
    return await make_tenant(clients[0])


def headers(key: str, idem: str | None = None) -> list[tuple[bytes, bytes]]:
    return [
        (b"authorization", f"Bearer {key}".encode()),
        (b"idempotency-key", (idem or str(uuid.uuid4())).encode()),
        (b"content-type", b"application/json"),
    ]


async def both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], hdrs: Any, body: bytes = BODY, path: str = PATH
) -> tuple[Any, Any]:
    """The answer of the fast-path service and of the routed service to the same request (fresh keys each)."""
    fast, routed = clients
    return (
        answer(await fast.post(path, content=body, headers=hdrs())),
        answer(await routed.post(path, content=body, headers=hdrs())),
    )


async def references(client: httpx.AsyncClient, t: Tenant, reference: str) -> int:
    r = await client.get(
        f"/v1/businesses/{t.business}/entries", params={"reference": reference}, headers=t.headers(t.admin_key)
    )
    assert r.status_code == 200, r.text
    return len(r.json()["items"] if isinstance(r.json(), dict) else r.json())


# --- a repeated Authorization header: the first counts, as in AuthMiddleware ---------------------------------------
async def test_two_authorization_headers_bogus_first(clients: Any, shop: Tenant) -> None:
    """401 api_key_invalid: the first key is checked, a valid second one does not help."""
    fast, routed = await both(
        clients, lambda: [(b"authorization", b"Bearer kontor_1_1_forged"), *headers(shop.poster_key)]
    )
    assert fast == routed


async def test_two_authorization_headers_accountant_first(clients: Any, shop: Tenant) -> None:
    """422 reason_required: the first key is an accountant's, whatever the second is."""
    fast, routed = await both(
        clients, lambda: [(b"authorization", f"Bearer {shop.accountant_key}".encode()), *headers(shop.poster_key)]
    )
    assert fast == routed


async def test_two_authorization_headers_book_into_the_same_merchant(clients: Any, shop: Tenant) -> None:
    """Keys of two merchants: booked into the first key's merchant."""
    other = await make_tenant(clients[0])
    booked = {}
    for name, client in zip(("fast", "routed"), clients, strict=True):
        reference = f"dup-auth-{name}-{uuid.uuid4().hex[:8]}"
        body = json.dumps({**ENTRY, "reference": reference}).encode()
        hdrs = [(b"authorization", f"Bearer {other.poster_key}".encode()), *headers(shop.poster_key)]
        r = await client.post(PATH, content=body, headers=hdrs)
        assert r.status_code == 201, r.text
        booked[name] = (await references(client, other, reference), await references(client, shop, reference))
    assert booked["fast"] == booked["routed"], "(entries in the first key's merchant, in the last key's merchant)"


# --- a repeated Idempotency-Key header: the first counts, as in Litestar's header parameter -------------------------
async def test_two_idempotency_keys_invalid_first(clients: Any, shop: Tenant) -> None:
    """400 request_invalid: the first key has a space."""
    fast, routed = await both(clients, lambda: [(b"idempotency-key", b"two words"), *headers(shop.poster_key)])
    assert fast == routed


async def test_two_idempotency_keys_retry_with_the_first_is_booked_once(clients: Any, shop: Tenant) -> None:
    """Sent with keys k1, k2 and retried with k1: the retry replays (k1 was bound), nothing is booked twice."""
    replayed = {}
    for name, client in zip(("fast", "routed"), clients, strict=True):
        k1, k2 = f"k1-{uuid.uuid4()}", f"k2-{uuid.uuid4()}"
        first = await client.post(
            PATH, content=BODY, headers=[(b"idempotency-key", k1.encode()), *headers(shop.poster_key, k2)]
        )
        retry = await client.post(PATH, content=BODY, headers=headers(shop.poster_key, k1))
        assert (first.status_code, retry.status_code) == (201, 201), (first.text, retry.text)
        replayed[name] = (retry.headers.get("idempotent-replayed"), retry.json()["id"] == first.json()["id"])
    assert replayed["fast"] == replayed["routed"] == ("true", True), replayed


# --- the rate limit: counted once, for the key that posts ------------------------------------------------------------
@pytest.fixture(scope="module")
async def limited(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    s = replace(settings, rate_limit_per_second=3)
    fast, routed = (
        create_app(s, clock=clock, plugins=[]),
        create_app(replace(s, post_fast_path=False), clock=clock, plugins=[]),
    )
    async with running(fast), running(routed), client_for(fast) as f, client_for(routed) as r:
        yield f, r


async def test_rate_limit_cannot_be_skipped_with_a_second_authorization_header(limited: Any) -> None:
    """[Authorization: key of A, Authorization: key of B (B has no business 1001)], 6 times in one second, limit 3:
    201, 201, 201, 429, 429, 429 (a key counted by the fast path is not one the route may then skip)."""
    statuses = {}
    for name, client in zip(("fast", "routed"), limited, strict=True):
        a = await make_tenant(client)
        b = await make_tenant(client, businesses=[{"code": 2002, "country": "DE", "currency": "EUR"}])
        await asyncio.sleep(1 - time.monotonic() % 1)  # start early in a one-second window
        first_key = (b"authorization", f"Bearer {a.poster_key}".encode())
        statuses[name] = [
            (await client.post(PATH, content=BODY, headers=[first_key, *headers(b.poster_key)])).status_code
            for _ in range(6)
        ]
    assert statuses["fast"] == statuses["routed"] == [201, 201, 201, 429, 429, 429], statuses


# --- metrics: one series per route -------------------------------------------------------------------------------
async def test_metrics_path_label_is_the_routes(clients: Any, shop: Tenant) -> None:
    """kontor_http_requests_total{path="/v1/businesses/{business_code}/entries"} (Litestar's path template) either
    way. The registry is the process's, shared by both services here, so the label that grew is compared."""

    def samples() -> dict[str, float]:
        return {
            s.labels["path"]: s.value
            for metric in REGISTRY.collect()
            if metric.name == "kontor_http_requests"
            for s in metric.samples
            if s.name == "kontor_http_requests_total" and s.labels["method"] == "POST" and s.labels["status"] == "201"
        }

    grown = {}
    for name, client in zip(("fast", "routed"), clients, strict=True):
        before = samples()
        r = await client.post(PATH, content=BODY, headers=headers(shop.poster_key))
        assert r.status_code == 201, r.text
        after = samples()
        grown[name] = sorted(path for path, value in after.items() if value > before.get(path, 0))
    assert grown["fast"] == grown["routed"] == ["/v1/businesses/{business_code}/entries"], grown


def _posting_scope(hdrs: list[tuple[bytes, bytes]]) -> Any:
    """The ASGI scope of `POST PATH` with `hdrs`, as a server would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": hdrs,
        "client": ("127.0.0.1", 1),
        "server": ("kontor.test", 80),
        "state": {},
    }


# --- a caller the route refuses before its body is refused before its body ---------------------------------------
async def _stalled(app: Litestar, hdrs: list[tuple[bytes, bytes]]) -> int | None:
    """Send the headers and 50 bytes of a longer body, then nothing more; the status answered within 2 s."""
    sent: list[Any] = []
    first = [{"type": "http.request", "body": BODY[:50], "more_body": True}]

    async def receive() -> Any:
        if first:
            return first.pop()
        await asyncio.Event().wait()  # the client is slow (or never sends the rest)
        return None

    async def send(message: Any) -> None:
        sent.append(message)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app(_posting_scope(hdrs), receive, send), 2)
    return next((m["status"] for m in sent if m["type"] == "http.response.start"), None)


@pytest.mark.parametrize("who", ["no key", "forged key", "operator key"])
async def test_refused_callers_are_answered_before_the_body(services: Any, shop: Tenant, who: str) -> None:
    """401/401/403 at once, without waiting for the body (up to KONTOR_REQUEST_BODY_BYTES_MAX) of a caller refused."""
    auth = {
        "no key": [],
        "forged key": [(b"authorization", b"Bearer kontor_1_1_forged")],
        "operator key": [(b"authorization", f"Bearer {OPERATOR_KEY}".encode())],
    }[who]
    hdrs = [*auth, *headers(shop.poster_key)[1:]]
    fast, routed = services
    assert (
        await _stalled(fast, hdrs)
        == await _stalled(routed, hdrs)
        == {"no key": 401, "forged key": 401, "operator key": 403}[who]
    )


async def test_expect_100_continue_without_a_key_is_refused_at_once(services: Any) -> None:
    """Over uvicorn, `Expect: 100-continue` without a key: `401 Unauthorized` at once, never `100 Continue` (the
    unauthenticated client is not invited to upload its 5 MB)."""
    first_lines = []
    for app in services:
        async with serving(app, free_port()) as url:
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST {PATH} HTTP/1.1\r\nHost: kontor.test\r\nContent-Type: application/json\r\n"
                "Content-Length: 5000000\r\nExpect: 100-continue\r\nIdempotency-Key: abc\r\n\r\n".encode()
            )
            await writer.drain()
            try:
                first_lines.append((await asyncio.wait_for(reader.readline(), 2)).strip())
            except TimeoutError:
                first_lines.append(b"<no answer>")
            writer.close()
    assert first_lines[0] == first_lines[1] == b"HTTP/1.1 401 Unauthorized", first_lines


# --- access lines: a refused request names no key --------------------------------------------------------------------
async def test_access_line_of_a_refused_request_names_no_key(
    clients: Any, shop: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """[Authorization: forged, Authorization: valid poster key] on another merchant's code: 401, and the access
    line names no merchant and no key."""
    caplog.set_level(logging.INFO, logger="kontor.access")
    logged = {}
    for name, client in zip(("fast", "routed"), clients, strict=True):
        caplog.clear()
        hdrs = [(b"authorization", b"Bearer kontor_1_1_forged"), *headers(shop.poster_key)]
        r = await client.post("/v1/businesses/9998/entries", content=BODY, headers=hdrs)
        line = next(rec for rec in caplog.records if rec.name == "kontor.access")
        logged[name] = (r.status_code, line.status, line.merchant_id, line.key_id)  # type: ignore[attr-defined]
    assert logged["fast"] == logged["routed"] == (401, 401, None, None), logged


async def _disconnected(app: Litestar, hdrs: list[tuple[bytes, bytes]]) -> int | None:
    """Send the headers and 50 bytes of a longer body, then close the connection; the status answered."""
    sent: list[Any] = []
    first: list[Any] = [{"type": "http.request", "body": BODY[:50], "more_body": True}]

    async def receive() -> Any:
        return first.pop() if first else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(_posting_scope(hdrs), receive, send)
    return next((m["status"] for m in sent if m["type"] == "http.response.start"), None)


async def test_a_client_gone_mid_body_is_no_server_error(
    services: Any, shop: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """The client closes the connection halfway through its body: 400 client_disconnected (never read by anyone),
    logged at INFO, never an error or a 500 in the metrics; nothing is booked."""
    caplog.set_level(logging.INFO)
    for app in services:
        assert await _disconnected(app, headers(shop.poster_key)) == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    assert [r.getMessage() for r in caplog.records if r.name == "kontor.http"] == ["client disconnected"] * 2
