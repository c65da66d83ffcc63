"""The problems in the OpenAPI document: every operation's problem responses, with the codes each status can
carry (ledger.problem_codes), and the schema plugin that writes those codes and date patterns into it.

Answering with a problem is `ledger.http.problems`'s; this module only describes the answers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin  # not exported; pinned >= 2.25
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.typing import FieldDefinition

from ledger.problem_codes import codes_for, family_pattern
from ledger.schemas import DATE_PATTERN, DatedBody

__all__ = ["PROBLEM_MEDIA_TYPE", "StrictStructSchemaPlugin", "also_files", "document_problems", "problem_response"]

PROBLEM_MEDIA_TYPE = "application/problem+json"


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
