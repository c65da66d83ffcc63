"""Every error leaves the service as RFC 9457 problem+json: mapped here, in one place.

`type` is a stable URN per machine code (`urn:kontor:problem:period_closed`), `code` repeats the
code for clients that switch on it, `errors` lists field paths for validation problems. Unexpected
exceptions become a 500 with a log line (and its request id) and no internals in the body.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from ledger.errors import FieldError, KontorError

__all__ = ["EXCEPTION_HANDLERS", "problem"]

log = logging.getLogger("kontor.http")
PROBLEM_MEDIA_TYPE = "application/problem+json"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def problem(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {
        "type": f"urn:kontor:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    request_id = request.scope.get("kontor.request_id")
    if request_id:
        body["request_id"] = request_id
    return Response(
        content=msgspec.json.encode(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _kontor_error(request: Request[Any, Any, Any], exc: KontorError) -> Response[bytes]:
    return problem(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers or None,
    )


def _validation_errors(extra: Any) -> list[FieldError]:
    """Field paths from Litestar's validation details (msgspec messages end in "- at `$.a[0].b`")."""
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        match = _MSGSPEC_PATH.search(message)
        if match:
            errors.append(FieldError(match["path"] or "body", message[: match.start()]))
        else:  # Litestar already gives the path within the body, or the name of the header/query parameter
            errors.append(FieldError(str(item.get("key") or item.get("source") or "body"), message))
    return errors


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        detail = "the request does not match the schema: " + "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem(
            request,
            status=400,
            code="request_invalid",
            title="Invalid request",
            detail=detail if errors else str(exc.detail),
            errors=errors,
        )
    code = _HTTP_CODES.get(status, f"http_{status}")
    return problem(
        request,
        status=status,
        code=code,
        title=code.replace("_", " ").capitalize(),
        detail=str(exc.detail),
        headers=exc.headers,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request.scope.get("kontor.request_id"), "path": request.url.path},
    )
    return problem(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="the request failed unexpectedly. A posting may be retried with the same "
        "Idempotency-Key: it is booked at most once.",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    KontorError: _kontor_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
