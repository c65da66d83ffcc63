"""What the payments routes share: path parameters, the `state` query parameter, the plugin's runtime."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.params import PathParameter, QueryParameter

from ledger.errors import BadRequest, FieldError
from ledger.http.deps import BusinessCodePath, Call
from payments.runtime import Payments

__all__ = ["Code", "CustomerPath", "OrderPath", "SettlementPath", "runtime", "state_parameter", "state_value"]

Code = BusinessCodePath
CustomerPath = Annotated[str, PathParameter(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")]
OrderPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
SettlementPath = Annotated[str, PathParameter(min_length=1, max_length=64)]


def runtime(call: Call) -> Payments:
    runtime: Payments = call.request.app.state.payments
    return runtime


def state_value(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """The `state` query parameter, one of `allowed` (checked here so that the problem names `state`: the handler's
    argument has another name, as Litestar reserves `state`)."""
    if value is not None and value not in allowed:
        raise BadRequest(
            "request_invalid",
            f"the request does not match the schema: state: one of {', '.join(allowed)}",
            [FieldError("state", f"one of {', '.join(allowed)}")],
        )
    return value


def state_parameter(allowed: tuple[str, ...], default: str | None = None) -> Any:
    """The `state` query parameter: its values in the OpenAPI document, checked by `state_value` (after the business
    code, so another merchant's code stays a 404)."""
    extra = f" (default {default})" if default else ""
    return QueryParameter(
        name="state", max_length=16, description=" | ".join(allowed) + extra, schema_extra={"enum": list(allowed)}
    )
