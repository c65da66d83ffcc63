"""Input limits every route shares, checked where the HTTP layer decodes a request, before a handler runs.

- JSON bodies nest at most `JSON_DEPTH_MAX` levels (Kontor's deepest body has 4: batch, entries, lines, a
  line). msgspec decodes recursively and raises RecursionError near Python's recursion limit, which is no
  client error; `KontorRequest.json()` refuses deeper bodies first with 400 `request_invalid` ("body:
  nesting too deep"), for every route, so nothing is stored and nothing is logged as an error.
- Dates in query and path parameters lie in the ledger's range (`ledger.domain.DATE_MIN`..`DATE_MAX`), as
  dates in bodies do (`ledger.schemas.DatedBody`): `check_date_parameters` (the app's before-request hook)
  answers 422 `date_out_of_range` naming the parameter.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, get_args

from litestar import Litestar, Request
from litestar.enums import ParamType

from ledger.domain import check_date
from ledger.errors import BadRequest, FieldError

__all__ = ["JSON_DEPTH_MAX", "KontorRequest", "check_date_parameters", "date_parameters", "json_depth"]

JSON_DEPTH_MAX = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not count).

    Linear in the body; bodies with fewer brackets than the limit are not scanned at all."""
    if body.count(b"[") + body.count(b"{") <= JSON_DEPTH_MAX:
        return 0
    depth = deepest = 0
    for bracket in _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class KontorRequest(Request[Any, Any, Any]):
    """The app's request class: a JSON body nested deeper than JSON_DEPTH_MAX is a 400 before it is decoded."""

    async def json(self) -> Any:
        if json_depth(await self.body()) > JSON_DEPTH_MAX:
            raise BadRequest(
                "request_invalid",
                f"body: nesting too deep (JSON arrays and objects nest at most {JSON_DEPTH_MAX} levels)",
                [FieldError("body", f"nesting too deep: at most {JSON_DEPTH_MAX} levels")],
            )
        return await super().json()


def _is_date(annotation: Any) -> bool:
    """`date` or an optional `date` (`date | None`)."""
    return annotation is date or date in get_args(annotation)


def date_parameters(app: Litestar) -> dict[int, tuple[tuple[str, ParamType], ...]]:
    """The date-typed query and path parameters of each route handler, by handler id (computed once)."""
    found: dict[int, tuple[tuple[str, ParamType], ...]] = {}
    for route in app.routes:
        for handler, kwargs_model in getattr(route, "route_handler_map", {}).values():
            params = [*kwargs_model.expected_query_params, *kwargs_model.expected_path_params]
            signature = handler.parsed_fn_signature.parameters
            dated = tuple(
                (p.field_alias, p.param_type)
                for p in params
                if p.field_name in signature and _is_date(signature[p.field_name].annotation)
            )
            if dated:
                found[id(handler)] = dated
    return found


async def check_date_parameters(request: Request[Any, Any, Any]) -> None:
    """Before-request hook of the app: 422 `date_out_of_range` for a date parameter outside the ledger's range.

    Values that are not YYYY-MM-DD are left to the parameter's own validation (400 request_invalid)."""
    dated = request.app.state.date_parameters.get(id(request.route_handler), ())
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
