"""The one answer of a request that creates something, first time or replayed.

A request sent again (the same Idempotency-Key and request for a posting; the same order, document, settlement
or bank statement for the payments routes) answers what the first one answered: the same status (201) and body,
plus `Idempotent-Replayed: true`, so that a client cannot tell a retry from the original by its status and
need not handle a second success status.
"""

from __future__ import annotations

from typing import Any

from litestar import Response

__all__ = ["REPLAY_HEADER", "created"]

REPLAY_HEADER = "Idempotent-Replayed"
_REPLAYED = {REPLAY_HEADER: "true"}


def created(content: Any, *, replayed: bool) -> Response[Any]:
    """201 with `content`; with `Idempotent-Replayed: true` when `replayed` (the stored answer, nothing new)."""
    return Response(content, status_code=201, headers=_REPLAYED if replayed else None)
