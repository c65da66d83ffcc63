"""The outermost layer of every HTTP request: request id, access log line, request metrics, safe headers.

It wraps Litestar's whole ASGI handler, so requests that match no route (404, 405) get an id, a log
line and a metric too. One layer instead of three keeps the per-request cost small (measured).

Every answer carries `X-Content-Type-Options: nosniff` (a browser never guesses another type than the one
sent), and every API answer `Cache-Control: no-store` (keys, webhook secrets and books are not kept by
browsers or proxies), unless the route set its own. HTML documents (the /ui pages, dunning letters) send
`HTML_HEADERS`: no caching, no framing, no scripts.
"""

from __future__ import annotations

import logging
import time
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Histogram

__all__ = ["HTML_HEADERS", "access_layer"]

HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")

log = logging.getLogger("kontor.access")
REQUESTS = Counter("kontor_http_requests_total", "HTTP requests", ["method", "path", "status"])
DURATION = Histogram(
    "kontor_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "path"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_UNMATCHED = "<unmatched>"


def access_layer(app: ASGIApp, *, log_requests: bool = True) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        scope["kontor.request_id"] = request_id  # type: ignore[typeddict-unknown-key]
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_safe_headers(
                    [*message.get("headers", []), (b"x-request-id", request_id.encode())], scope["path"]
                )
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            path = scope.get("path_template") or _UNMATCHED  # templates only: ids would explode the labels
            REQUESTS.labels(method, path, str(status)).inc()
            DURATION.labels(method, path).observe(elapsed)
            if log_requests:
                principal = scope.get("auth")
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "request_id": request_id,
                        "duration_ms": round(elapsed * 1000, 2),
                        "merchant_id": getattr(principal, "merchant_id", None),
                        "key_id": getattr(principal, "key_id", None),
                    },
                )

    return middleware


def _with_safe_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    if _NOSNIFF[0] not in names:
        headers.append(_NOSNIFF)
    if _NO_STORE[0] not in names and path.startswith(("/v1/", "/schema")):
        headers.append(_NO_STORE)
    return headers
