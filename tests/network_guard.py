"""A watch for outbound HTTP while the same task holds a database transaction open.

Why: a transaction held across a network call keeps its row locks and a pooled connection for as long as the
remote side takes (Amazon Pay, a merchant's webhook endpoint); under load the pool fills with sessions "idle in
transaction" and everything behind them waits. Kontor's rule is: read and fetch first, then a short transaction.

How: every asyncpg transaction (or savepoint) started records itself in a context variable of the task that
started it; every request sent by an httpx connection transport (what Kontor's Amazon Pay client, the SNS
certificate fetch and webhook deliveries use; the tests' in-process ASGI clients are another transport and are
not watched) looks at that variable and records a violation when one of those transactions is still open.
A task spawned inside a transaction inherits the variable, so its network calls count as well.
"""

from __future__ import annotations

import contextvars
import traceback
from dataclasses import dataclass

import asyncpg.transaction
import httpx

__all__ = ["Violation", "describe", "drain", "install"]


@dataclass(frozen=True, slots=True)
class Violation:
    method: str
    url: str
    opened_at: str  # where the open transaction was started
    called_at: str  # where the request was sent

    def __str__(self) -> str:
        return (
            f"{self.method} {self.url} sent inside a database transaction\n"
            f"--- transaction started at:\n{self.opened_at}--- request sent from:\n{self.called_at}"
        )


_open: contextvars.ContextVar[tuple[tuple[asyncpg.transaction.Transaction, traceback.StackSummary], ...]] = (
    contextvars.ContextVar("kontor_test_open_transactions", default=())
)
_seen: list[Violation] = []


def _ours(stack: traceback.StackSummary) -> str:
    """The frames of Kontor's own packages (the rest is asyncio, asyncpg and httpx)."""
    frames = [f for f in stack if any(f"/{p}/" in f.filename for p in ("ledger", "payments", "dunning", "desk"))]
    return "".join(traceback.format_list(frames[-8:] or list(stack)[-8:]))


def install() -> None:
    """Wrap asyncpg's Transaction.start and httpx's connection transport (idempotent; for the test process)."""
    if getattr(httpx.AsyncHTTPTransport.handle_async_request, "kontor_watched", False):
        return
    started = asyncpg.transaction.TransactionState.STARTED
    original_start = asyncpg.transaction.Transaction.start
    original_send = httpx.AsyncHTTPTransport.handle_async_request

    async def start(self: asyncpg.transaction.Transaction) -> None:
        await original_start(self)
        still_open = tuple(entry for entry in _open.get() if entry[0]._state is started)
        _open.set((*still_open, (self, traceback.extract_stack()[:-1])))

    async def handle_async_request(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        for tx, opened_at in _open.get():
            if tx._state is started:
                _seen.append(
                    Violation(request.method, str(request.url), _ours(opened_at), _ours(traceback.extract_stack()))
                )
                break
        return await original_send(self, request)

    handle_async_request.kontor_watched = True  # type: ignore[attr-defined]
    asyncpg.transaction.Transaction.start = start  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


def drain() -> list[Violation]:
    """The violations recorded since the last call (a background task's may come after its test ended: the
    next test reports it)."""
    found = list(_seen)
    _seen.clear()
    return found


def describe(found: list[Violation]) -> str:
    return "\n\n".join(str(v) for v in found)
