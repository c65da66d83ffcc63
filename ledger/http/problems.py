"""Every error leaves the service as RFC 9457 problem+json: mapped here, in one place.

`type` is a stable URN per machine code (`urn:kontor:problem:period_closed`), `code` repeats the
code for clients that switch on it, `errors` lists field paths for validation problems. Unexpected
exceptions become a 500 with a log line (and its request id) and no internals in the body. How the OpenAPI
document describes these answers is `ledger.http.problem_docs`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap, Scope

from ledger.db import CONNECTION_LOST, TEXT_REFUSED
from ledger.errors import FieldError, KontorError
from ledger.http.problem_docs import PROBLEM_MEDIA_TYPE, also_files
from ledger.money import AmountError
from ledger.schemas import DATE_HORIZON_ERROR, DATE_RANGE_ERROR

# also_files is re-exported for dunning.http, which imports it from here
__all__ = ["EXCEPTION_HANDLERS", "also_files", "answer_for", "problem"]

log = logging.getLogger("kontor.http")
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
_CLIENT_GONE = "client disconnected prematurely"  # Litestar's InternalServerException while a body is read
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_DATE_OUT_OF_RANGE = re.compile(rf"(?:{DATE_RANGE_ERROR}|{DATE_HORIZON_ERROR}): `(?P<name>[^`]*)` (?P<text>.*)")


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


def _wire_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name a parameter is sent as (`from`), where Litestar names the handler's argument (`from_date`)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except (AttributeError, KeyError):  # no route matched
        return key
    alias = getattr(getattr(parameter, "kwarg_definition", None), "name", None)
    return alias if isinstance(alias, str) and alias else key


def _validation_errors(extra: Any, request: Request[Any, Any, Any] | None = None) -> list[FieldError]:
    """Field paths from Litestar's validation details (msgspec messages end in "- at `$.a[0].b`"); a query, path
    or header parameter is named as it is sent (`from`), not by the handler's argument (`from_date`)."""
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        match = _MSGSPEC_PATH.search(message)
        if match:
            path, text = match["path"], message[: match.start()]
        else:  # Litestar already gives the path within the body ("data" for the body itself), or the parameter
            path, text = str(item.get("key") or item.get("source") or ""), message
            path = "" if path == "data" else path
            if request is not None and item.get("key") and item.get("source") != "body":
                path = _wire_name(request, path)
        named = _UNKNOWN_FIELD.fullmatch(text) or _DATE_OUT_OF_RANGE.fullmatch(text)
        if named:  # name the field itself, not the object that holds it
            path = f"{path}.{named['name']}" if path else named["name"]
        errors.append(FieldError(path or "body", text))
    return errors


def _date_problem(errors: list[FieldError]) -> str | None:
    """`date_out_of_range` when every error is a well-formed date outside the ledger's range, `date_beyond_horizon`
    when every error is an effective date after the posting horizon (ledger.schemas.DatedBody): a 422."""
    for prefix, code in ((DATE_RANGE_ERROR, "date_out_of_range"), (DATE_HORIZON_ERROR, "date_beyond_horizon")):
        if errors and all(e.message.startswith(prefix) for e in errors):
            return code
    return None


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 500 and exc.detail == _CLIENT_GONE:  # nobody reads this answer: no error, no 500 in the metrics
        log.info("client disconnected", extra={"request_id": request.scope.get("kontor.request_id")})
        return problem(
            request,
            status=400,
            code="client_disconnected",
            title="Client disconnected",
            detail="the connection was closed before the whole body was sent; nothing was done",
        )
    if status >= 500:
        return _unexpected(request, exc)
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra, request)
        date_code = _date_problem(errors)
        if date_code is not None:
            return problem(
                request,
                status=422,
                code=date_code,
                title="Unprocessable content",
                detail="; ".join(f"{e.field}: {e.message}" for e in errors),
                errors=errors,
            )
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


def _text_refused(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # the whole use case ran in one transaction, which the refusal rolled back: nothing was stored
    return problem(
        request,
        status=422,
        code="text_invalid",
        title="Unprocessable content",
        detail="a text field contains a NUL character (\\u0000) or a character PostgreSQL cannot store",
    )


def _amount_refused(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return problem(request, status=422, code="amount_invalid", title="Unprocessable content", detail=str(exc))


def _retry_advice(request: Request[Any, Any, Any]) -> str:
    """What a client may do after a failure that is not its own: only a request that carried an Idempotency-Key
    is promised to be booked at most once when retried with it (other routes take no such key)."""
    if request.headers.get("idempotency-key"):
        return "A posting retried with the same Idempotency-Key is booked at most once."
    return "Quote the request_id when reporting it."


def _database_problem(
    code: str, title: str, detail: str, retry_after: str
) -> Callable[[Request[Any, Any, Any], Exception], Response[bytes]]:
    """A database failure that is not the client's: logged, 503 with Retry-After, never 500."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        log.warning(
            title,
            extra={"request_id": request.scope.get("kontor.request_id"), "path": request.url.path, "error": repr(exc)},
        )
        return problem(
            request,
            status=503,
            code=code,
            title=title,
            detail=f"{detail} {_retry_advice(request)}",
            headers={"Retry-After": retry_after},
        )

    return handle


_database_unavailable = _database_problem(
    "database_unavailable", "Database unavailable", "the connection to the database was lost; retry shortly.", "1"
)
_database_timeout = _database_problem(
    "database_timeout",
    "Database timeout",
    "the database did not answer in time (KONTOR_DB_COMMAND_TIMEOUT_S); retry shortly.",
    "5",
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
        detail=f"the request failed unexpectedly. {_retry_advice(request)}",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    KontorError: _kontor_error,
    HTTPException: _http_exception,
    **dict.fromkeys(CONNECTION_LOST, _database_unavailable),
    TimeoutError: _database_timeout,  # asyncpg's command timeout
    asyncpg.QueryCanceledError: _database_timeout,  # the server's statement_timeout
    **dict.fromkeys(TEXT_REFUSED, _text_refused),
    AmountError: _amount_refused,
    Exception: _unexpected,
}


def answer_for(scope: Scope, exc: Exception) -> Response[bytes]:
    """The answer `EXCEPTION_HANDLERS` give `exc` (its nearest class), for a request answered outside Litestar's
    routing (ledger.http.fastpath): the same problem, status, headers and log line as the route's."""
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    response: Response[bytes] = handler(Request(scope), exc)
    return response
