"""What a Kontor plugin (payments, dunning) may contribute to the service, found by entry point.

A plugin is a Litestar `InitPluginProtocol` that may also provide any of:
- `route_handlers()`: routes behind the API-key middleware (they declare roles like ledger's);
- `public_route_handlers()`: routes without an API key, which authenticate otherwise (signed IPNs);
- `register_jobs(jobs)`: scheduled jobs;
- `async start(state, ctx)` / `async stop()`: resources that live as long as the service (HTTP clients);
- `commands()`: click commands added to the `kontor` command line (`kontor simulate amazon-pay`);
- `sealed_columns()`: the `ledger.secrets.SealedColumn`s of the tables it stores secrets in, sealed with
  `ctx.secrets`, so that `kontor secrets rotate` re-seals them.
Ledger calls these by name and imports nothing of the plugins (dependency rule: plugins -> ledger).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from litestar.datastructures import State

from ledger.context import Kontor
from ledger.secrets import SealedColumn

__all__ = ["Startable", "plugin_commands", "plugin_public_routes", "plugin_routes", "plugin_sealed_columns"]


@runtime_checkable
class Startable(Protocol):
    async def start(self, state: State, ctx: Kontor) -> None: ...

    async def stop(self) -> None: ...


def plugin_routes(plugins: list[Any]) -> list[Any]:
    return [handler for p in plugins for handler in (p.route_handlers() if hasattr(p, "route_handlers") else [])]


def plugin_public_routes(plugins: list[Any]) -> list[Any]:
    return [h for p in plugins for h in (p.public_route_handlers() if hasattr(p, "public_route_handlers") else [])]


def plugin_commands(plugins: list[Any]) -> list[Any]:
    return [c for p in plugins for c in (p.commands() if hasattr(p, "commands") else [])]


def plugin_sealed_columns(plugins: list[Any]) -> list[SealedColumn]:
    """Every plugin's sealed columns; ValueError if two plugins (or one twice) register the same column."""
    columns: list[SealedColumn] = [
        c for p in plugins for c in (p.sealed_columns() if hasattr(p, "sealed_columns") else [])
    ]
    names = [c.name for c in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"sealed columns registered twice: {', '.join(twice)}")
    return columns
