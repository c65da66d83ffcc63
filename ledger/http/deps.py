"""Dependencies shared by the controllers: the context, the caller, the business code, request hashes."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, QueryParameter

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Forbidden, NotFound
from ledger.http.auth import current_principal
from ledger.tenancy import Principal, get_business

__all__ = [
    "DEPENDENCIES",
    "BusinessDep",
    "Caller",
    "Ctx",
    "Cursor",
    "IdempotencyKey",
    "PageLimit",
    "merchant_of",
    "request_sha256",
]

Ctx = NamedDependency[Kontor]
Caller = NamedDependency[Principal]
BusinessDep = NamedDependency[Business]

PAGE_SIZE_MAX = 500
PageLimit = Annotated[int, QueryParameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")]
Cursor = Annotated[str | None, QueryParameter(max_length=200, description="next_cursor of the previous page")]
IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per state-changing request (e.g. a UUID). A retry with the same key and body gets "
        "the original response; the same key with another body gets 422.",
    ),
]


def provide_kontor(state: State) -> Kontor:
    kontor: Kontor = state.kontor
    return kontor


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return current_principal(request)


def merchant_of(principal: Principal) -> int:
    if principal.merchant_id is None:
        raise Forbidden("merchant_key_required", "this route needs a merchant's API key")
    return principal.merchant_id


async def provide_business(business_code: FromPath[int], ctx: Ctx, principal: Caller) -> Business:
    if not 1000 <= business_code <= 9999:
        raise NotFound("business_not_found", f"business code {business_code} not found")
    return await get_business(ctx, merchant_of(principal), business_code)


def request_sha256(request: Request[Any, Any, Any], body: msgspec.Struct | None) -> bytes:
    """Fingerprint of a state-changing request: method, path and the body in canonical form."""
    canonical = b"" if body is None else msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + canonical).digest()


DEPENDENCIES = {
    "ctx": Provide(provide_kontor, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "business": Provide(provide_business),
}
