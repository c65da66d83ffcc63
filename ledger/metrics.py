"""Prometheus metrics of the ledger's use cases (HTTP request metrics come from Litestar's middleware).

With several worker processes, `kontor serve` sets PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client, and /metrics aggregates the workers' files.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "CHAIN_LINKED",
    "ENTRIES_POSTED",
    "POST_BATCHES_SPLIT",
    "POST_BATCH_ENTRIES",
    "POST_FAST_PATH",
    "POST_QUEUE_WAIT",
]

ENTRIES_POSTED = Counter("kontor_entries_posted_total", "Journal entries posted (replays not counted)")
CHAIN_LINKED = Counter("kontor_chain_linked_total", "Journal entries linked into the hash chain")
# coalesced postings (ledger/coalesce.py): how many requests shared a commit, how long they waited to be sent
POST_BATCH_ENTRIES = Histogram(
    "kontor_post_batch_entries",
    "Posting requests per coalesced commit",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
POST_QUEUE_WAIT = Histogram(
    "kontor_post_queue_wait_seconds",
    "Time a posting request waited in its process's queue before its batch was sent",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)
POST_BATCHES_SPLIT = Counter(
    "kontor_post_batches_split_total",
    "Coalesced batches refused whole by the database and posted again one request at a time",
)
# ledger/http/fastpath.py: single-entry postings it answered, and those it handed to the Litestar route
POST_FAST_PATH = Counter(
    "kontor_post_fast_path_total",
    "Single-entry posting requests by who answered them: the fast path, or the Litestar route it handed them to",
    ["outcome"],
)
