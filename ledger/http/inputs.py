"""Input limits every route shares, checked where the HTTP layer decodes a request, before a handler runs.

- JSON bodies nest at most `JSON_DEPTH_MAX` levels (Kontor's deepest body has 4: batch, entries, lines, a
  line). msgspec decodes recursively and raises RecursionError near Python's recursion limit, which is no
  client error; `KontorRequest.json()` refuses deeper bodies first with 400 `request_invalid` ("body:
  nesting too deep"), for every route, so nothing is stored and nothing is logged as an error.
- Dates in query and path parameters lie in the ledger's range (`ledger.domain.DATE_MIN`..`DATE_MAX`), as
  dates in bodies do (`ledger.schemas.DatedBody`): `check_date_parameters` answers 422 `date_out_of_range`
  naming the parameter. On routes of a business code it runs once the business code is known to be the
  caller's (`ledger.http.deps.Call.business`, the web pages' `_page`): another merchant's code stays a 404
  whatever the query; other routes check in the app's before-request hook (`before_request`).
- Effective dates in bodies (`ledger.schemas.EffectiveDate`) lie at most KONTOR_POSTING_HORIZON_DAYS after
  today: the before-request hook (`before_request`) sets the request's `POSTING_HORIZON`, which `DatedBody`
  checks when the body is decoded (422 `date_beyond_horizon` naming the field) — on a business code's route only
  once the code is known to be the caller's, so that another merchant's code stays a 404 whatever the body.
  `horizon_layer` gives every request a fresh value and takes it away afterwards. Files that carry booking dates
  (bank statements, settlement reports) check theirs against the same horizon (`Kontor.horizon`, `Horizon.check`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, get_args

import msgspec
from litestar import Litestar, Request
from litestar.enums import ParamType, ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from ledger.domain import Horizon, check_date
from ledger.errors import BadRequest, FieldError, NotFound
from ledger.schemas import POSTING_HORIZON
from ledger.tenancy import get_business

__all__ = [
    "BUSINESS_PARAMETERS",
    "JSON_DEPTH_MAX",
    "KontorRequest",
    "before_request",
    "check_date_parameters",
    "check_path_numbers",
    "date_parameters",
    "horizon_layer",
    "json_depth",
]

JSON_DEPTH_MAX = 32
BUSINESS_PARAMETERS = frozenset({"business_code", "code"})  # the path parameter of a business code's routes
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_SEGMENT = re.compile(
    r"[0-9A-Za-z.:-]*[A-Za-z.:-][0-9A-Za-z.:-]*|[0-9]+"
)  # int() refuses these or reads them plainly


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not count), counted up
    to JSON_DEPTH_MAX + 1.

    Cheap first (all work in C): the brackets of the whole body, strings included; only when they nest too
    deep are strings taken out and the count repeated, so a text such as "[[[[" never refuses a body. (Brackets
    in strings that hide a deeper nesting leave it to the schema or to KontorRequest's RecursionError guard.)"""
    if body.count(b"[") + body.count(b"{") <= JSON_DEPTH_MAX:
        return 0
    apparent = _nesting(body.translate(None, _NOT_BRACKETS))
    if apparent <= JSON_DEPTH_MAX:
        return apparent
    return _nesting(_STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS))


def _nesting(brackets: bytes) -> int:
    """Depth of a text of brackets: each pass removes the innermost pairs (one regex scan), at most the limit+1."""
    depth = 0
    while brackets and depth <= JSON_DEPTH_MAX:
        inner = _INNERMOST.sub(b"", brackets)
        if len(inner) == len(brackets):
            break  # unbalanced: not JSON, decoding says so
        brackets, depth = inner, depth + 1
    return depth


class KontorRequest(Request[Any, Any, Any]):
    """The app's request class: a JSON body nested deeper than JSON_DEPTH_MAX is a 400 before it is decoded.

    A body the handler takes as one msgspec Struct (`data: JSONBody[EntryIn]`) is decoded straight into it:
    Litestar would decode it into dicts and lists and then convert those, which costs several times the decoding
    (18 ms of a 1,000-entry batch's 20; the converted Struct is passed through unchanged). A body the typed
    decoding refuses, for whatever reason, takes Litestar's own way, so every error is worded as before.
    """

    async def json(self) -> Any:
        body = await self.body()
        if json_depth(body) > JSON_DEPTH_MAX:
            raise _too_deep()
        target = _struct_body(self.route_handler)
        if target is not None:
            try:
                return msgspec.json.decode(body, type=target, strict=False)
            except Exception:  # noqa: S110  # decoded again below: Litestar words the error
                pass
        try:
            return await super().json()
        except RecursionError:  # nesting hidden from json_depth by brackets in strings
            raise _too_deep() from None


_STRUCT_BODIES: dict[int, type[msgspec.Struct] | None] = {}


def _struct_body(handler: Any) -> type[msgspec.Struct] | None:
    """The Struct a route handler's `data` is (not optional, not a union), by handler id; None for any other."""
    key = id(handler)
    if key not in _STRUCT_BODIES:
        data = handler.parsed_fn_signature.parameters.get("data")
        annotation = None if data is None or data.is_optional else data.annotation
        is_struct = isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
        _STRUCT_BODIES[key] = annotation if is_struct else None
    return _STRUCT_BODIES[key]


def _too_deep() -> BadRequest:
    return BadRequest(
        "request_invalid",
        f"body: nesting too deep (JSON arrays and objects nest at most {JSON_DEPTH_MAX} levels)",
        [FieldError("body", f"nesting too deep: at most {JSON_DEPTH_MAX} levels")],
    )


def _is_date(annotation: Any) -> bool:
    """`date` or an optional `date` (`date | None`)."""
    return annotation is date or date in get_args(annotation)


DateParameters = tuple[tuple[tuple[str, ParamType], ...], bool]  # (name, where) of each date; business-scoped


def date_parameters(app: Litestar) -> dict[int, DateParameters]:
    """The date-typed query and path parameters of each route handler, and whether the route is a business
    code's, by handler id (computed once when the app is built)."""
    found: dict[int, DateParameters] = {}
    for route in app.routes:
        for handler, kwargs_model in getattr(route, "route_handler_map", {}).values():
            params = [*kwargs_model.expected_query_params, *kwargs_model.expected_path_params]
            signature = handler.parsed_fn_signature.parameters
            dated = tuple(
                (p.field_alias, p.param_type)
                for p in params
                if p.field_name in signature and _is_date(signature[p.field_name].annotation)
            )
            scoped = any(p.field_alias in BUSINESS_PARAMETERS for p in kwargs_model.expected_path_params)
            if dated:
                found[id(handler)] = (dated, scoped)
    return found


async def before_request(request: Request[Any, Any, Any]) -> None:
    """Before-request hook of the app: `check_date_parameters` for routes that name no business code; the
    posting horizon the request's body is decoded under."""
    check_path_numbers(request.scope["path"])
    _, scoped = request.app.state.date_parameters.get(id(request.route_handler), ((), True))
    if not scoped:
        check_date_parameters(request)
    if request.method not in ("GET", "HEAD"):
        POSTING_HORIZON.set(await _horizon_of(request))


async def _horizon_of(request: Request[Any, Any, Any]) -> Horizon | None:
    """The service's horizon; None (decoded without one) on a business code that is not the API key's: the
    handler answers it 404 (`ledger.http.deps.Call.business`) before anything about the body. Requests without
    an API key (the web pages' forms) always get the horizon."""
    ctx = getattr(request.app.state, "kontor", None)
    if ctx is None:
        return None
    code = next((request.path_params[n] for n in BUSINESS_PARAMETERS if n in request.path_params), None)
    principal = request.scope.get("auth")  # an API key's (ledger.http.auth); the web pages sign in by session
    if code is not None and principal is not None:
        merchant_id = getattr(principal, "merchant_id", None)
        if merchant_id is None or not isinstance(code, int) or not 1000 <= code <= 9999:
            return None
        try:
            await get_business(ctx, merchant_id, code)
        except NotFound:
            return None
    horizon: Horizon = ctx.horizon()
    return horizon


def check_path_numbers(path: str) -> None:
    """400 `path_parameter_invalid` for a path segment that Python's int() reads as a number but that is not
    plain ASCII digits (other scripts' digits, full-width digits, `+`, `_`, spaces): the router would take
    Arabic-Indic digits in `/businesses/<code>` for business 1001, so a rule written for the plain path could
    be sidestepped. Ids are written one way only."""
    for segment in path.split("/"):
        if segment and not _PLAIN_SEGMENT.fullmatch(segment):
            try:
                int(segment)
            except ValueError:
                continue
            raise BadRequest(
                "path_parameter_invalid", f"{segment!r} in the path: numbers in a path are ASCII digits 0-9 only"
            )


def check_date_parameters(request: Request[Any, Any, Any]) -> None:
    """422 `date_out_of_range` for a date parameter of the request outside the ledger's range.

    Values that are not YYYY-MM-DD are left to the parameter's own validation (400 request_invalid)."""
    dated, _ = request.app.state.date_parameters.get(id(request.route_handler), ((), False))
    for name, where in dated:
        raw = request.query_params.get(name) if where is ParamType.QUERY else request.path_params.get(name)
        if isinstance(raw, date):
            check_date(raw, name)
        elif isinstance(raw, str) and _ISO_DATE.fullmatch(raw):
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                continue
            check_date(value, name)


def horizon_layer(asgi: ASGIApp) -> ASGIApp:
    """Wrap the app so that each HTTP request starts without a posting horizon (`before_request` sets it) and
    nothing outside the request sees the one it set."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await asgi(scope, receive, send)
            return
        token = POSTING_HORIZON.set(None)
        try:
            await asgi(scope, receive, send)
        finally:
            POSTING_HORIZON.reset(token)

    return layer
