"""Operational routes, open without a key: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusController

__all__ = ["MetricsController", "health", "ready"]

PUBLIC = {"public": True}


@get(
    "/health",
    opt=PUBLIC,
    security=[{}],  # no key: an empty requirement overrides the global BearerAuth
    tags=["ops"],
    operation_id="health",
    summary="Liveness: the process answers",
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    opt=PUBLIC,
    security=[{}],  # no key: an empty requirement overrides the global BearerAuth
    responses={503: ResponseSpec(dict[str, str], description="the database does not answer", generate_examples=False)},
    tags=["ops"],
    operation_id="ready",
    summary="Readiness: the database answers and the schema is applied",
)
async def ready(state: State) -> Response[dict[str, Any]]:
    try:
        # the latest migration the database records (ledger.migrate): readiness fails while there is none
        version = await state.kontor.pool.fetchval("SELECT max(version) FROM schema_migrations", timeout=2)
    except Exception as exc:  # readiness reports any failure instead of raising it
        return Response({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    return Response({"status": "ready", "schema_version": version})


class MetricsController(PrometheusController):
    path = "/metrics"
    opt = PUBLIC
    include_in_schema = False
