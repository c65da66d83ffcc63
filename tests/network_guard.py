"""A watch for outbound HTTP while a database transaction is held open.

Why: a transaction held across a network call keeps its row locks and a pooled connection for as long as the
remote side takes (Amazon Pay, a merchant's webhook endpoint); under load the pool fills with sessions "idle in
transaction" and everything behind them waits. Kontor's rule is: read and fetch first, then a short transaction.

How: every asyncpg transaction (or savepoint) started is recorded, with the task that started it and where.
Every request sent by an httpx connection transport (what Kontor's Amazon Pay client, the SNS certificate fetch
and webhook deliveries use; the tests' in-process ASGI clients are another transport and are not watched) checks:
- the sending task's own open transactions (a context variable, so a task spawned inside a transaction
  inherits them and its calls count as well): any one is a violation;
- every other task's open transaction that sits idle, its task suspended somewhere else than in asyncpg (not
  waiting for the database), both when the request is sent and when its answer came, with no query on its
  connection in between: that transaction was held open, idle, for the whole call while its task waited for
  something else (another network call, an event, a thread) -- what pg_stat_activity shows as a session
  "idle in transaction" during the call.
"""

from __future__ import annotations

import contextvars
import traceback
from dataclasses import dataclass
from typing import Any

import asyncpg
import asyncpg.transaction
import httpx

__all__ = ["Violation", "describe", "drain", "install"]


@dataclass(frozen=True, slots=True)
class Violation:
    method: str
    url: str
    opened_at: str  # where the open transaction was started (and, for another task's, where that task waits)
    called_at: str  # where the request was sent

    def __str__(self) -> str:
        return (
            f"{self.method} {self.url} sent while a database transaction was held open\n"
            f"--- transaction started at:\n{self.opened_at}--- request sent from:\n{self.called_at}"
        )


@dataclass(frozen=True, slots=True)
class _Open:
    tx: asyncpg.transaction.Transaction
    task: Any  # asyncio.Task | None
    opened_at: traceback.StackSummary


_STARTED = asyncpg.transaction.TransactionState.STARTED
_mine: contextvars.ContextVar[tuple[_Open, ...]] = contextvars.ContextVar("kontor_test_transactions", default=())
_all: dict[int, _Open] = {}  # every transaction started and maybe still open, by id()
_seen: list[Violation] = []
_KONTOR = ("/ledger/", "/payments/", "/dunning/", "/desk/")


def _ours(stack: traceback.StackSummary) -> str:
    """The frames of Kontor's own packages (the rest is asyncio, asyncpg and httpx)."""
    frames = [f for f in stack if any(p in f.filename for p in _KONTOR)]
    return "".join(traceback.format_list(frames[-8:] or list(stack)[-8:]))


def _suspended_at(task: Any) -> traceback.StackSummary:
    """Where a suspended task waits: Task.get_stack gives one frame of a coroutine, so follow what it awaits."""
    frames, awaited = [], task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return traceback.StackSummary.extract(frames)


def _idle_elsewhere(current: Any) -> dict[int, tuple[_Open, int, traceback.StackSummary]]:
    """Other tasks' open transactions whose task waits outside asyncpg: (the transaction, its connection's query
    count, where the task waits), by id()."""
    found = {}
    for key, entry in list(_all.items()):
        if entry.tx._state is not _STARTED:
            del _all[key]
            continue
        if entry.task is None or entry.task is current or entry.task.done():
            continue
        waits = _suspended_at(entry.task)
        if not waits or "/asyncpg/" in waits[-1].filename:
            continue  # running, or waiting for the database: not idle
        found[key] = (entry, entry.tx._connection._protocol.queries_count, waits)
    return found


def install() -> None:
    """Wrap asyncpg's Transaction.start and httpx's connection transport (idempotent; for the test process)."""
    import asyncio

    if getattr(httpx.AsyncHTTPTransport.handle_async_request, "kontor_watched", False):
        return
    original_start = asyncpg.transaction.Transaction.start
    original_send = httpx.AsyncHTTPTransport.handle_async_request

    async def start(self: asyncpg.transaction.Transaction) -> None:
        await original_start(self)
        entry = _Open(self, asyncio.current_task(), traceback.extract_stack()[:-1])
        _all[id(self)] = entry
        _mine.set((*(e for e in _mine.get() if e.tx._state is _STARTED), entry))

    async def handle_async_request(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        sent_from = traceback.extract_stack()
        for entry in _mine.get():
            if entry.tx._state is _STARTED:
                _seen.append(Violation(request.method, str(request.url), _ours(entry.opened_at), _ours(sent_from)))
                break
        current = asyncio.current_task()
        before = _idle_elsewhere(current)
        response = await original_send(self, request)
        after = _idle_elsewhere(current) if before else {}
        for key, (entry, queries, _) in before.items():
            still = after.get(key)
            if still is not None and still[0] is entry and still[1] == queries:
                where = "".join(traceback.format_list(list(still[2])[-6:]))
                opened = f"{_ours(entry.opened_at)}  (another task; it waits, idle, at:)\n{where}"
                _seen.append(Violation(request.method, str(request.url), opened, _ours(sent_from)))
        return response

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
