"""What every handler receives: `call`, the request with its context, caller and business codes.

One dependency per handler on purpose: Litestar resolves independent dependencies concurrently in an
anyio task group, which costs more than the lookups themselves on the posting path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, PathParameter, QueryParameter

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Forbidden, NotFound
from ledger.http.auth import current_principal
from ledger.http.inputs import check_date_parameters
from ledger.tenancy import Principal, get_business

__all__ = [
    "DEPENDENCIES",
    "ID_MAX",
    "BusinessCodePath",
    "Call",
    "CallDep",
    "Cursor",
    "IdPath",
    "IdempotencyKey",
    "PageLimit",
    "idempotency_key_valid",
    "request_fingerprint",
]

PAGE_SIZE_MAX = 500
ID_MAX = 2**63 - 1  # bigint: larger ids cannot exist, and asyncpg would refuse to send them
BusinessCodePath = Annotated[int, PathParameter(ge=1000, le=9999, description="4-digit business code")]
IdPath = Annotated[int, PathParameter(ge=1, le=ID_MAX)]
PageLimit = Annotated[int, QueryParameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")]
Cursor = Annotated[str | None, QueryParameter(max_length=200, description="next_cursor of the previous page")]
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"  # printable ASCII without spaces
IDEMPOTENCY_KEY_LENGTH_MAX = 255
IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_LENGTH_MAX,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Unique per state-changing request (e.g. a UUID). A retry with the same key and body gets "
        "the original response; the same key with another body gets 422.",
    ),
]


_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key_valid(key: str) -> bool:
    """What `IdempotencyKey` admits (the header's own validation words the refusal)."""
    return 0 < len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX and _IDEMPOTENCY_KEY.fullmatch(key) is not None


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the use cases see it."""

    request: Request[Any, Any, Any]
    ctx: Kontor
    principal: Principal

    @property
    def merchant_id(self) -> int:
        if self.principal.merchant_id is None:
            raise Forbidden("merchant_key_required", "this route needs a merchant's API key")
        return self.principal.merchant_id

    async def business(self, code: int) -> Business:
        """The caller's business code `code`; another merchant's code is 404 like a missing one."""
        if not 1000 <= code <= 9999:
            raise NotFound("business_not_found", f"business code {code} not found")
        business = await get_business(self.ctx, self.merchant_id, code)
        check_date_parameters(self.request)  # once the code is known to be the caller's: 404 first, then 422
        return business

    def request_sha256(self, body: msgspec.Struct | None) -> bytes:
        return request_fingerprint(self.request.method, self.request.url.path, body)


def request_fingerprint(method: str, path: str, body: msgspec.Struct | None) -> bytes:
    """Fingerprint of a state-changing request (what an Idempotency-Key is bound to): SHA-256 of method, path
    and the body in canonical form (keys sorted)."""
    canonical = b"" if body is None else msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).digest()


def provide_call(request: Request[Any, Any, Any]) -> Call:
    return Call(request=request, ctx=request.app.state.kontor, principal=current_principal(request.scope))


CallDep = NamedDependency[Call]
DEPENDENCIES = {"call": Provide(provide_call, sync_to_thread=False)}
