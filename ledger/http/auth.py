"""Authentication, authorization and rate limiting for every /v1 route, in one router middleware.

Each route declares the roles it admits in `opt={"roles": ...}`; routes that declare none are refused
(fail closed). The key (Authorization: Bearer ...) resolves to a `Principal` bound to one merchant,
which handlers read through the `call` dependency; every query is scoped by that merchant id.

Why a middleware and not a Litestar guard: Litestar copies the route handler for every guard call
(~0.25 ms of CPU per request, measured), and the posting path is CPU-bound on two shared cores.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from ledger.audit import acting
from ledger.context import Kontor
from ledger.errors import BadRequest, FieldError, Forbidden, InvariantViolation, RateLimited, Unauthorized
from ledger.tenancy import Principal, authenticate

__all__ = [
    "ADMIN",
    "BOOK",
    "CLOSE",
    "OPERATOR",
    "POST",
    "RATE_COUNTED",
    "READ",
    "AuthMiddleware",
    "RateLimiter",
    "bearer_token",
    "current_principal",
    "query_names",
]

RATE_COUNTED = "kontor.rate_counted"  # scope key: the (merchant, key) this request was counted for (fastpath)
READ = frozenset({"accountant", "poster", "admin"})
POST = frozenset({"poster", "admin"})
# book by hand: payment services, and accountants posting corrections, reversing, resolving exceptions
BOOK = frozenset({"accountant", "poster", "admin"})
CLOSE = frozenset({"accountant", "admin"})
ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"operator"})


class RateLimiter:
    """Per-key budget of `per_second` requests in each one-second window, in this process.

    A dict of counters, reset when the second changes. (The `limits` library's async memory storage
    takes a per-key asyncio lock and costs ~0.18 ms per request; this needs no lock in one event loop.)
    """

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._window = 0
        self._counts: dict[tuple[int | None, int | None], int] = {}

    def check(self, principal: Principal) -> None:
        window = int(time.monotonic())
        if window != self._window:
            self._window, self._counts = window, {}
        key = (principal.merchant_id, principal.key_id)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > self.per_second:
            raise RateLimited(
                "rate_limited",
                f"more than {self.per_second} requests per second with this key",
                headers={"Retry-After": "1"},
            )


def bearer_token(scope: Any) -> str | None:
    """The key of the first `Authorization: Bearer <key>` header (as a repeated header is read), or None."""
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _bearer(scope: Scope) -> str:
    token = bearer_token(scope)
    if token is None:
        raise Unauthorized(
            "api_key_missing",
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="kontor"'},
        )
    return token


class AuthMiddleware(ASGIMiddleware):
    """Resolve the caller's key, check the route's roles and the key's rate limit, then go on."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler: Any = scope["route_handler"]
        if handler.http_methods == {"OPTIONS"}:
            await next_app(scope, receive, send)  # Litestar's generated answer lists the allowed methods
            return
        roles = handler.opt.get("roles")
        if not roles:
            raise InvariantViolation(f"route {handler} declares no roles: refusing (fail closed)")
        app: Any = scope["litestar_app"]
        ctx: Kontor = app.state.kontor
        principal = await authenticate(ctx, _bearer(scope))
        if principal.role not in roles:
            raise Forbidden(
                "role_forbidden",
                f"a key with role {principal.role!r} may not do this; needs one of {', '.join(sorted(roles))}",
            )
        if scope.get(RATE_COUNTED) != (principal.merchant_id, principal.key_id):
            limiter: RateLimiter = app.state.rate_limiter
            limiter.check(principal)
        if scope["query_string"]:
            _refuse_unknown_query(scope, app.state.query_names.get(id(handler), frozenset()))
        scope["auth"] = principal
        with acting(principal if principal.key_id is not None else None):
            await next_app(scope, receive, send)


def query_names(app: Any) -> dict[int, frozenset[str]]:
    """The query parameters each route handler reads, by handler id (computed once when the app is built)."""
    names: dict[int, frozenset[str]] = {}
    for route in app.routes:
        for handler, kwargs_model in getattr(route, "route_handler_map", {}).values():
            names[id(handler)] = frozenset(p.field_alias for p in kwargs_model.expected_query_params)
    return names


def _refuse_unknown_query(scope: Scope, known: frozenset[str]) -> None:
    """A misspelt parameter (`?asof=` for `?as_of=`) must not silently give another report than was asked for."""
    given = {name for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)}
    unknown = sorted(given - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise BadRequest(
            "query_parameter_unknown",
            f"unknown query parameter {', '.join(map(repr, unknown))}; this route reads: {expected}",
            [FieldError(name, "unknown query parameter") for name in unknown],
        )


def current_principal(scope: Scope) -> Principal:
    principal = scope.get("auth")
    if not isinstance(principal, Principal):
        raise InvariantViolation("handler ran without the auth middleware")
    return principal
