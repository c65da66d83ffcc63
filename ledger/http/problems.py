"""Every error leaves the service as RFC 9457 problem+json: mapped here, in one place.

`type` is a stable URN per machine code (`urn:kontor:problem:period_closed`), `code` repeats the
code for clients that switch on it, `errors` lists field paths for validation problems. Unexpected
exceptions become a 500 with a log line (and its request id) and no internals in the body.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import asyncpg
import msgspec
from litestar import Litestar, Request, Response
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin  # not exported; pinned >= 2.25
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.types import ExceptionHandlersMap
from litestar.typing import FieldDefinition

from ledger.db import CONNECTION_LOST, TEXT_REFUSED
from ledger.errors import FieldError, KontorError
from ledger.money import AmountError
from ledger.problem_codes import codes_for, family_pattern
from ledger.schemas import DATE_HORIZON_ERROR, DATE_PATTERN, DATE_RANGE_ERROR, DatedBody

__all__ = [
    "EXCEPTION_HANDLERS",
    "StrictStructSchemaPlugin",
    "also_files",
    "document_problems",
    "problem",
    "problem_response",
]

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


class ProblemField(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, as every error answers."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None = None
    errors: list[ProblemField] | None = None


_PROBLEMS = {
    400: "malformed request: not JSON, a parameter or a field does not match the schema",
    401: "API key missing or invalid",
    403: "the key's role may not do this",
    404: "the business code or resource does not exist (for this merchant)",
    409: "the request conflicts with the books' state (closed period, already reversed, ...)",
    413: "request body too large",
    415: "the body is not of a media type the route reads",
    422: "the request is well-formed but breaks a rule (unbalanced, unknown account, ...)",
    429: "rate limit of the key exceeded (Retry-After)",
}
_CODES_SCHEMA, _STATUS = "__kontor_code_schema__", "__kontor_status__"  # of the structs problem_schema() makes
_READ_STATUSES = (400, 401, 403, 404, 422, 429)
_WRITE_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429)


@functools.cache
def problem_schema(status: int) -> type[msgspec.Struct]:
    """`Problem` as answered with `status`, for the OpenAPI document: `status` is that number and `code` one of
    the catalogue's codes for it (ledger.problem_codes): an enum, and a pattern for a family (`amazon_pay_...`).
    StrictStructSchemaPlugin writes both into the schema."""
    entries = codes_for(status)
    names = [p.code for p in entries if not p.is_family]
    pattern = family_pattern(p for p in entries if p.is_family)
    choices = [Schema(type=OpenAPIType.STRING, enum=names)] if names else []
    if pattern is not None:
        choices.append(Schema(type=OpenAPIType.STRING, pattern=pattern))
    meanings = "; ".join(f"`{p.code}`: {p.meaning}" for p in entries)
    code = (choices[0] if len(choices) == 1 else Schema(any_of=choices)) if choices else Schema(type=OpenAPIType.STRING)
    code.description = f"the cause, one of: {meanings}" if entries else None
    return msgspec.defstruct(
        f"Problem{status}",
        [(f.name, f.type, f.default) for f in msgspec.structs.fields(Problem)],
        kw_only=True,
        module=__name__,
        namespace={
            "__doc__": f"RFC 9457 problem details, as answered with status {status}.",
            _CODES_SCHEMA: code,
            _STATUS: status,
        },
    )


def problem_response(status: int, description: str | None = None) -> ResponseSpec:
    """The OpenAPI answer of a problem with `status` (its schema names the status's codes)."""
    return ResponseSpec(
        data_container=problem_schema(status),
        media_type=PROBLEM_MEDIA_TYPE,
        description=description or _PROBLEMS[status],
        generate_examples=False,
    )


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's struct schemas, plus `additionalProperties: false` for request structs that refuse unknown
    fields (forbid_unknown_fields), so that the document says what the service does: an unknown field is a 400;
    and the ledger's date range as a pattern on the dates of request bodies (`DatedBody`)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        code_schema = getattr(struct, _CODES_SCHEMA, None)
        if isinstance(code_schema, Schema) and schema.properties is not None:  # a problem_schema(status)
            schema.properties["code"] = code_schema
            schema.properties["status"] = Schema(type=OpenAPIType.INTEGER, const=getattr(struct, _STATUS))
            schema.description = struct.__doc__
        if struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        hints = get_type_hints(struct, include_extras=True)
        if issubclass(struct, DatedBody):
            _date_patterns(schema, struct)
        for f in msgspec.structs.fields(struct):
            key = _constrained_key(hints[f.name])
            prop = (schema.properties or {}).get(f.encode_name)
            if key is None or prop is None:
                continue
            for target in [prop, *(getattr(prop, "one_of", None) or [])]:
                if isinstance(target, Schema) and target.type == OpenAPIType.OBJECT:
                    target.property_names = Schema(
                        type=OpenAPIType.STRING,
                        pattern=key.pattern,
                        min_length=key.min_length,
                        max_length=key.max_length,
                    )
        return schema


def _date_patterns(schema: Schema, struct: type[DatedBody]) -> None:
    for f in msgspec.structs.fields(struct):
        prop = (schema.properties or {}).get(f.encode_name)
        for target in [prop, *(getattr(prop, "one_of", None) or [])]:
            if isinstance(target, Schema) and target.format == OpenAPIFormat.DATE:
                target.pattern = DATE_PATTERN


def _constrained_key(annotation: Any) -> msgspec.Meta | None:
    """The Meta of a dict's key type (`dict[Annotated[str, Meta(pattern=...)], ...]`, optional or annotated)."""
    for candidate in get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,):
        inner = candidate
        while get_origin(inner) is Annotated:
            inner = get_args(inner)[0]
        if get_origin(inner) is dict:
            key = get_args(inner)[0]
            if get_origin(key) is Annotated:
                return next((m for m in get_args(key)[1:] if isinstance(m, msgspec.Meta)), None)
    return None


def document_problems(app: Litestar) -> None:
    """Declare the problem+json answers every route can give, so that the OpenAPI document is complete.

    Done once when the app is built (the document is generated on first request); a handler's own
    `responses` win. Routes without roles are public and declare their own answers.
    """
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            methods = set(handler.http_methods) - {"OPTIONS", "HEAD"}
            if not methods or not handler.opt.get("roles"):
                continue
            statuses = _READ_STATUSES if methods <= {"GET"} else _WRITE_STATUSES
            declared = dict(handler.responses or {})
            for status in statuses:
                declared.setdefault(status, problem_response(status))
            handler.responses = declared


def also_files(*media_types: str) -> type[Operation]:
    """The OpenAPI operation class of a route whose 200 is JSON or, with ?format=..., a file of these types."""

    @dataclass
    class AlsoFiles(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse) and ok.content is not None:
                for media_type in media_types:
                    ok.content[media_type] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))

    return AlsoFiles
