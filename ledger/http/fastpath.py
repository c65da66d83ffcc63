"""The posting fast path: `POST /v1/businesses/{code}/entries` answered without Litestar's per-request layers.

Why: single-entry postings are what payment services send at full speed, and on them the framework's own work
(routing, the exception and middleware layers, the kwargs and signature models, the response object) cost more
CPU than Kontor's (py-spy under P1, README, Performance). This layer sits inside the access layer (request id,
access line, metrics and safe headers stay the same for every request) and answers the plain case itself with
the same functions the Litestar route uses (`ledger.http.journal.book_entry`): a valid API key of a role that
may book, a business code of its merchant, a valid Idempotency-Key and a body that decodes into the entry.

Anything else (a query string, a missing or bad key or header, a foreign business code, a body that does not
decode) is handed to the Litestar app with the body as read, so that Litestar and its exception handlers word
it. A refusal of the entry itself (404 account_not_found, 409 period_closed, 422 idempotency_key_reused, ...)
is answered here with the same problem body (`ledger.http.problems.problem_content`); any other failure while
posting is handed over too, which is safe because the request carries its Idempotency-Key: the route books it
once or replays what was booked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.serialization import encode_json
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from ledger import metrics
from ledger.audit import acting
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import KontorError
from ledger.http.auth import BOOK, RATE_COUNTED, RateLimiter
from ledger.http.deps import idempotency_key_valid, request_fingerprint
from ledger.http.inputs import JSON_DEPTH_MAX, json_depth
from ledger.http.journal import book_entry
from ledger.http.problem_docs import PROBLEM_MEDIA_TYPE
from ledger.http.problems import problem_content
from ledger.http.replay import REPLAY_HEADER
from ledger.schemas import POSTING_HORIZON, CorrectionIn
from ledger.tenancy import Principal, authenticate, get_business

__all__ = ["ENTRIES_TEMPLATE", "posting_fast_path"]

ENTRIES_TEMPLATE = "/v1/businesses/{business_code:int}/entries"  # the Litestar route's path template (metrics)
_ENTRIES = re.compile(r"/v1/businesses/([0-9]{4})/entries")
_JSON = (b"content-type", b"application/json")
_PROBLEM = (b"content-type", PROBLEM_MEDIA_TYPE.encode())
_REPLAYED = (REPLAY_HEADER.lower().encode(), b"true")
_ANSWERED, _HANDED_OVER = metrics.POST_FAST_PATH.labels("answered"), metrics.POST_FAST_PATH.labels("handed_over")


def posting_fast_path(app: ASGIApp, *, body_bytes_max: int) -> ASGIApp:
    """Wrap `app` (Litestar's ASGI handler, under the access layer); see the module's docstring."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        http: Any = scope  # an HTTP scope, once the type is checked
        matched = (
            _ENTRIES.fullmatch(http["path"])
            if http["type"] == "http" and http["method"] == "POST" and not http["query_string"]
            else None
        )
        if matched is None:
            await app(scope, receive, send)
            return
        chunks, complete = await _read(receive, body_bytes_max)
        answer = await _answer(scope, int(matched[1]), b"".join(chunks)) if complete else None
        if answer is None:
            _HANDED_OVER.inc()
            await app(scope, _replaying(chunks, complete, receive), send)
            return
        _ANSWERED.inc()
        status, headers, body = answer
        http["path_template"] = ENTRIES_TEMPLATE
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return layer


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body


@dataclass(frozen=True, slots=True)
class _Plain:
    ctx: Kontor
    principal: Principal
    business: Business
    data: CorrectionIn
    idem_key: str
    path: str


async def _answer(scope: Any, code: int, body: bytes) -> Answer | None:
    """The answer to a plain posting: 201 with the entry booked (or replayed), or the problem of its refusal
    (as the route's exception handler words it, `ledger.http.problems`); None when the request is not plain."""
    plain = await _plain(scope, code, body)
    if plain is None:
        return None
    try:
        with acting(plain.principal):
            posted = await book_entry(
                plain.ctx,
                plain.business,
                plain.principal.role,
                plain.data,
                plain.idem_key,
                request_fingerprint("POST", plain.path, plain.data),
            )
    except KontorError as exc:
        request_id = scope.get("kontor.request_id")
        content = problem_content(plain.path, request_id, exc.status, exc.code, exc.title, exc.detail, exc.errors)
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
        return exc.status, [_PROBLEM, _length(content), *extra], content
    except Exception:  # not a refusal (the database, say): the route retries it under the same key and words it
        return None
    content = encode_json(posted.entries[0])
    return 201, [_JSON, _length(content), *([_REPLAYED] if posted.replayed else [])], content


async def _plain(scope: Any, code: int, body: bytes) -> _Plain | None:
    """What a plain posting carries, checked as the route checks it; None for anything else."""
    app: Any = scope["app"]
    ctx: Kontor | None = getattr(app.state, "kontor", None)
    headers = dict(scope["headers"])
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    idem_key = headers.get(b"idempotency-key", b"").decode("latin-1")
    if ctx is None or scheme.lower() != "bearer" or not token.strip() or not idempotency_key_valid(idem_key):
        return None
    if json_depth(body) > JSON_DEPTH_MAX:
        return None
    try:
        principal = await authenticate(ctx, token.strip())
        if principal.role not in BOOK or principal.merchant_id is None:
            return None
        limiter: RateLimiter = app.state.rate_limiter
        limiter.check(principal)
        scope[RATE_COUNTED] = True
        scope["auth"] = principal
        business = await get_business(ctx, principal.merchant_id, code)
        horizon = POSTING_HORIZON.set(ctx.horizon())
        try:
            data = msgspec.json.decode(body, type=CorrectionIn, strict=False)
        finally:
            POSTING_HORIZON.reset(horizon)
    except Exception:  # the route words it; nothing was tried
        return None
    return _Plain(ctx, principal, business, data, idem_key, scope.get("root_path", "") + scope["path"])


def _length(content: bytes) -> tuple[bytes, bytes]:
    return b"content-length", str(len(content)).encode()


async def _read(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The body's chunks as received, and whether it is whole and within `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return chunks, False  # disconnected: the app sees the same
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return chunks, False
        if not message.get("more_body", False):
            return chunks, True


def _replaying(chunks: list[bytes], complete: bool, receive: Receive) -> Receive:
    """A receive that gives the chunks read already, then (if the body was not whole) what the client sends on."""
    pending = list(chunks)

    async def replay() -> ReceiveMessage:
        if pending:
            chunk = pending.pop(0)
            message: HTTPRequestEvent = {
                "type": "http.request",
                "body": chunk,
                "more_body": bool(pending) or not complete,
            }
            return message
        return await receive()

    return replay
