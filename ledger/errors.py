"""The one error hierarchy of Kontor, with stable machine codes.

Every error a client can cause is a `KontorError` carrying an HTTP status, a stable `code` (documented
in the README and used in the problem `type`), a human `detail`, and for validation errors the field
paths (`lines[2].debit`). `ledger.http.problems` maps them to RFC 9457 problem+json in one place.
Programmer errors are not `KontorError`s: `invariant()` raises `InvariantViolation`, which becomes a
500 with a log line and no internals in the body; `present()` states that a value is not None (and narrows
its type). Production code uses these, never `assert`, which `python -O` would remove.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "BadRequest",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvariantViolation",
    "KontorError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "invariant",
    "present",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: a JSON path into the request and what is wrong with it."""

    field: str
    message: str


@dataclass
class KontorError(Exception):
    """Base of every error a client can cause; `status` and `code` are part of the API contract."""

    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    status = 400
    title = "Bad request"

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class BadRequest(KontorError):
    status = 400
    title = "Bad request"


class Unauthorized(KontorError):
    status = 401
    title = "Unauthorized"


class Forbidden(KontorError):
    status = 403
    title = "Forbidden"


class NotFound(KontorError):
    status = 404
    title = "Not found"


class Conflict(KontorError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(KontorError):
    status = 413
    title = "Payload too large"


class Unprocessable(KontorError):
    status = 422
    title = "Unprocessable content"


class RateLimited(KontorError):
    status = 429
    title = "Too many requests"


class Unavailable(KontorError):
    """The service cannot take the request now (a queue is full); the client retries after Retry-After."""

    status = 503
    title = "Service unavailable"


class InvariantViolation(AssertionError):
    """A broken internal invariant: a bug in Kontor, never the client's fault."""


def invariant(condition: bool, why: str) -> None:
    """Assert an internal invariant that must hold whatever the input (kept on in production)."""
    if not condition:
        raise InvariantViolation(why)


def present(value: T | None, why: str) -> T:
    """`value`, which an invariant says is not None (a row `INSERT ... RETURNING` gives, a field set before);
    InvariantViolation with `why` otherwise. Narrows the type, where `invariant(x is not None, ...)` cannot."""
    if value is None:
        raise InvariantViolation(why)
    return value


class UnsupportedMediaType(KontorError):
    status = 415
    title = "Unsupported media type"
