"""Prometheus metrics of the ledger's use cases (HTTP request metrics come from Litestar's middleware).

With several worker processes, `kontor serve` sets PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client, and /metrics aggregates the workers' files.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["CHAIN_LINKED", "ENTRIES_POSTED"]

ENTRIES_POSTED = Counter("kontor_entries_posted_total", "Journal entries posted (replays not counted)")
CHAIN_LINKED = Counter("kontor_chain_linked_total", "Journal entries linked into the hash chain")
