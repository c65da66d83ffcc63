"""Authentication, authorization and rate limiting: one guard on every /v1 route.

Each route declares the roles it admits in `opt={"roles": ...}`; the guard fails closed when a route
declares none. The key (Authorization: Bearer ...) resolves to a `Principal` bound to one merchant,
which handlers read through the `principal` dependency; every query is scoped by that merchant id.
Rate limits are per key and per process (fixed one-second windows, the `limits` library).
"""

from __future__ import annotations

from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ledger.context import Kontor
from ledger.errors import Forbidden, InvariantViolation, RateLimited, Unauthorized
from ledger.tenancy import Principal, authenticate

__all__ = ["ADMIN", "CLOSE", "OPERATOR", "POST", "READ", "RateLimiter", "guard"]

READ = frozenset({"accountant", "poster", "admin"})
POST = frozenset({"poster", "admin"})
CLOSE = frozenset({"accountant", "admin"})
ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"operator"})


class RateLimiter:
    """Per-key request budget: `per_second` requests in each one-second window."""

    def __init__(self, per_second: int) -> None:
        self._item = RateLimitItemPerSecond(per_second)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def check(self, identity: str) -> None:
        if not await self._limiter.hit(self._item, identity):
            raise RateLimited(
                "rate_limited",
                f"more than {self._item.amount} requests per second with this key",
                headers={"Retry-After": "1"},
            )


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "api_key_missing",
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="kontor"'},
        )
    return token.strip()


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if getattr(handler, "http_methods", None) == {"OPTIONS"}:
        return  # Litestar's generated OPTIONS answer lists the allowed methods and reads no data
    roles = handler.opt.get("roles")
    if not roles:
        raise InvariantViolation(f"route {handler} declares no roles: refusing (fail closed)")
    ctx: Kontor = connection.app.state.kontor
    principal = await authenticate(ctx, _bearer(connection))
    if principal.role not in roles:
        raise Forbidden(
            "role_forbidden",
            f"a key with role {principal.role!r} may not do this; needs one of {', '.join(sorted(roles))}",
        )
    limiter: RateLimiter = connection.app.state.rate_limiter
    await limiter.check(f"{principal.merchant_id}:{principal.key_id}")
    connection.scope["auth"] = principal


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("auth")
    if not isinstance(principal, Principal):
        raise InvariantViolation("handler ran without the guard")
    return principal
