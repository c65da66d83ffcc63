"""The posting fast path: `POST /v1/businesses/{code}/entries` answered without Litestar's per-request layers.

Why: single-entry postings are what payment services send at full speed, and on them the framework's own work
(routing, the exception and middleware layers, the kwargs and signature models, the response object) cost more
CPU than Kontor's (py-spy under P1, README, Performance). This layer sits inside the access layer (request id,
access line, metrics and safe headers stay the same for every request) and answers the plain case itself with
the same functions the Litestar route uses (`ledger.http.journal.book_entry`): a valid API key of a role that
may book, within its rate limit, a business code of its merchant, a valid Idempotency-Key, no query string and a
body that decodes into the entry. Headers are read as the route reads them: the first of a repeated header.

Anything else is handed to the Litestar app, so that Litestar and its exception handlers answer it: a caller the
route refuses (no key, a bad key, a role that may not book, over its rate limit, another merchant's business
code) is handed over before its body is read, as the route would refuse it before the body; a body too large,
or one that does not decode, is handed over with the body as read. Once the entry was tried, the answer is the
route's own: booked or replayed (201), or whatever `book_entry` raised, answered by the app's exception
handlers (`ledger.http.problems.answer_for`), so a refusal, a database timeout or a bug reads and logs alike.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.serialization import encode_json
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from ledger import metrics
from ledger.audit import acting
from ledger.context import Kontor
from ledger.domain import Business
from ledger.http.auth import BOOK, RATE_COUNTED, RateLimiter, bearer_token
from ledger.http.deps import idempotency_key_valid, request_fingerprint
from ledger.http.inputs import JSON_DEPTH_MAX, json_depth
from ledger.http.journal import book_entry
from ledger.http.problems import answer_for
from ledger.http.replay import REPLAY_HEADER
from ledger.schemas import POSTING_HORIZON, CorrectionIn
from ledger.tenancy import Principal, authenticate, get_business

__all__ = ["ENTRIES_TEMPLATE", "posting_fast_path"]

ENTRIES_TEMPLATE = "/v1/businesses/{business_code}/entries"  # the route's path template, as metrics label it
_ENTRIES = re.compile(r"/v1/businesses/([0-9]{4})/entries")
_JSON = (b"content-type", b"application/json")
_REPLAYED = (REPLAY_HEADER.lower().encode(), b"true")
_ANSWERED, _HANDED_OVER = metrics.POST_FAST_PATH.labels("answered"), metrics.POST_FAST_PATH.labels("handed_over")

Caller = tuple[Kontor, Principal, Business, str]  # context, the key's principal, its business code, Idempotency-Key
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body


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
        caller = await _caller(http, int(matched[1]))
        if caller is None:
            _HANDED_OVER.inc()
            await app(scope, receive, send)
            return
        chunks, ended = await _read(receive, body_bytes_max)
        data = _decode(caller[0], b"".join(chunks)) if ended is None else None
        if data is None:
            _HANDED_OVER.inc()
            await app(scope, _replaying(chunks, ended, receive), send)
            return
        _ANSWERED.inc()
        http["auth"] = caller[1]
        http["path_template"] = ENTRIES_TEMPLATE
        status, headers, body = await _book(http, caller, data)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return layer


async def _caller(scope: Any, code: int) -> Caller | None:
    """Who posts, checked as the route checks it before reading a body; None when the route should answer."""
    app: Any = scope["app"]
    ctx: Kontor | None = getattr(app.state, "kontor", None)
    token = bearer_token(scope)
    idem_key = next((v for k, v in scope["headers"] if k == b"idempotency-key"), b"").decode("latin-1")
    if ctx is None or token is None or not idempotency_key_valid(idem_key):  # the first of a repeated header
        return None
    try:
        principal = await authenticate(ctx, token)
        if principal.role not in BOOK or principal.merchant_id is None:
            return None
        business = await get_business(ctx, principal.merchant_id, code)
        limiter: RateLimiter = app.state.rate_limiter
        limiter.check(principal)
    except Exception:  # refused (401, 404, 429, a lost connection): the route refuses it the same way
        return None
    scope[RATE_COUNTED] = (principal.merchant_id, principal.key_id)  # counted: not again if handed over
    return ctx, principal, business, idem_key


def _decode(ctx: Kontor, body: bytes) -> CorrectionIn | None:
    """The entry, decoded under the posting horizon as the route decodes it; None when the route should word
    why it does not decode."""
    if json_depth(body) > JSON_DEPTH_MAX:
        return None
    horizon = POSTING_HORIZON.set(ctx.horizon())
    try:
        return msgspec.json.decode(body, type=CorrectionIn, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    finally:
        POSTING_HORIZON.reset(horizon)


async def _book(scope: Any, caller: Caller, data: CorrectionIn) -> Answer:
    """201 with the entry booked (or replayed), or the app's answer to what `book_entry` raised."""
    ctx, principal, business, idem_key = caller
    path = scope.get("root_path", "") + scope["path"]
    try:
        with acting(principal):
            posted = await book_entry(
                ctx, business, principal.role, data, idem_key, request_fingerprint("POST", path, data)
            )
    except Exception as exc:
        response = answer_for(scope, exc)
        content = response.content
        headers = [(b"content-type", str(response.media_type).encode()), _length(content)]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        return response.status_code or 500, headers, content
    content = encode_json(posted.entries[0])
    return 201, [_JSON, _length(content), *([_REPLAYED] if posted.replayed else [])], content


def _length(content: bytes) -> tuple[bytes, bytes]:
    return b"content-length", str(len(content)).encode()


async def _read(receive: Receive, limit: int) -> tuple[list[bytes], ReceiveMessage | None]:
    """The body's chunks as received, and what ended the reading early (None: the body is whole and within
    `limit` bytes; the disconnect; the last chunk's message when the body grew beyond `limit`)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return chunks, message  # disconnected: the route sees the same
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit and message.get("more_body", False):
            return chunks, message
        if not message.get("more_body", False):
            return chunks, None if size <= limit else message


def _replaying(chunks: list[bytes], ended: ReceiveMessage | None, receive: Receive) -> Receive:
    """A receive that gives the chunks read already, then what ended the reading (a disconnect) or what the
    client sends on."""
    pending = list(chunks)
    # the client sends on (or hung up): the last chunk read is not the body's last
    more = ended is not None and (ended["type"] != "http.request" or bool(ended.get("more_body", False)))

    async def replay() -> ReceiveMessage:
        if pending:
            chunk = pending.pop(0)
            message: HTTPRequestEvent = {"type": "http.request", "body": chunk, "more_body": bool(pending) or more}
            return message
        if ended is not None and ended["type"] != "http.request":
            return ended
        return await receive()

    return replay
