"""Coalescing: concurrent requests of one process share one round trip and one commit.

Why: a posting's cost in PostgreSQL is dominated by what every transaction pays (a function call, the
commit and its WAL flush, a round trip), not by its rows. Requests that arrive while others are on their
way are gathered into one batch (`ledger.journal` sends a batch as one call of `kontor_post_coalesced`).

How: `submit` queues an item and waits for its own outcome. A batch leaves when it holds `size_max`
items, or `window_s` after its first item arrived, or at once when a batch in flight finishes and items
are waiting (they already waited for it). At most `in_flight_max` batches are in flight per process; while
they all are, items queue, at most `depth_max` of them (beyond: `QueueFull`). Each item gets its own
result or exception; a batch's failure is the sender's to split into per-item outcomes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from ledger import metrics

__all__ = ["Coalescer", "QueueFull"]

T = TypeVar("T")
R = TypeVar("R")

# the sender: one outcome (a result, or the exception for that item) per item, in order
Sender = Callable[[Sequence[T]], Awaitable[Sequence["R | BaseException"]]]


class QueueFull(Exception):
    """More items are waiting than `depth_max`: the caller answers 503 with Retry-After."""


class Coalescer(Generic[T, R]):
    """Batches items for `send`; one instance per process and event loop (see the module's docstring)."""

    def __init__(
        self, send: Sender[T, R], *, window_s: float, size_max: int, depth_max: int, in_flight_max: int
    ) -> None:
        self._send = send
        self.window_s, self.size_max, self.depth_max, self.in_flight_max = window_s, size_max, depth_max, in_flight_max
        self._waiting: list[tuple[T, asyncio.Future[R], float]] = []
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once its batch has been committed, or raise its error."""
        if len(self._waiting) >= self.depth_max:
            raise QueueFull(f"{len(self._waiting)} postings are waiting in this process")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future, time.perf_counter()))
        if len(self._waiting) >= self.size_max or self.window_s <= 0:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._window_over)
        return await future

    def _window_over(self) -> None:
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        """Send what waits, in batches of at most size_max, while fewer than in_flight_max are in flight."""
        while self._waiting and self._in_flight < self.in_flight_max:
            batch, self._waiting = self._waiting[: self.size_max], self._waiting[self.size_max :]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _run(self, batch: list[tuple[T, asyncio.Future[R], float]]) -> None:
        now = time.perf_counter()
        metrics.POST_BATCH_ENTRIES.observe(len(batch))
        for _, _, queued in batch:
            metrics.POST_QUEUE_WAIT.observe(now - queued)
        try:
            outcomes: Sequence[R | BaseException] = await self._send([item for item, _, _ in batch])
        except Exception as exc:  # the sender splits refusals itself: this is a failure of the whole batch
            outcomes = [exc] * len(batch)
        except BaseException:  # cancelled (shutdown): so are the requests waiting for it
            for _, future, _ in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
        self._settle(batch, outcomes)
        if self._waiting:
            self._flush()

    @staticmethod
    def _settle(batch: list[tuple[T, asyncio.Future[R], float]], outcomes: Sequence[R | BaseException]) -> None:
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (client gone): its entry stays booked if it was
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
