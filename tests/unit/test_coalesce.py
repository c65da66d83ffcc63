"""The posting queue (ledger/coalesce.py): when batches leave, how many are in flight, and that every item gets
its own outcome. Pure asyncio: the sender is a function of the test."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ledger.coalesce import Coalescer, QueueFull


class Recorder:
    """A sender that records its batches; a batch waits until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.in_flight = 0
        self.in_flight_seen = 0

    async def send(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.in_flight += 1
        self.in_flight_seen = max(self.in_flight_seen, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]


async def test_a_full_batch_leaves_at_once_and_each_item_gets_its_own_outcome() -> None:
    rec = Recorder()
    rec.release.set()
    queue: Coalescer[int, int] = Coalescer(rec.send, window_s=3600, size_max=4, depth_max=100, in_flight_max=2)
    results = await asyncio.gather(*(queue.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True)
    assert rec.batches == [[1, 2, -3, 4]]  # it did not wait for the hour-long window
    assert results[:2] == [10, 20]
    assert results[3] == 40
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "refused -3"


async def test_a_partial_batch_leaves_when_the_window_is_over() -> None:
    rec = Recorder()
    rec.release.set()
    queue: Coalescer[int, int] = Coalescer(rec.send, window_s=0.05, size_max=64, depth_max=100, in_flight_max=2)
    assert await asyncio.gather(queue.submit(1), queue.submit(2)) == [10, 20]
    assert rec.batches == [[1, 2]]


async def test_batches_in_flight_are_bounded_and_items_queue_meanwhile() -> None:
    rec = Recorder()
    queue: Coalescer[int, int] = Coalescer(rec.send, window_s=0, size_max=3, depth_max=100, in_flight_max=2)
    tasks = [asyncio.create_task(queue.submit(i)) for i in range(10)]
    await asyncio.sleep(0.01)
    assert len(rec.batches) == 2
    assert queue.waiting == 10 - sum(map(len, rec.batches))
    rec.release.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(10)]
    assert rec.in_flight_seen == 2
    assert sorted(i for batch in rec.batches for i in batch) == list(range(10))
    assert all(len(batch) <= 3 for batch in rec.batches)


async def test_a_full_queue_refuses_and_a_failed_batch_fails_each_of_its_items() -> None:
    rec = Recorder()
    queue: Coalescer[int, int] = Coalescer(rec.send, window_s=0, size_max=1, depth_max=2, in_flight_max=1)
    first = asyncio.create_task(queue.submit(1))  # in flight
    waiting = [asyncio.create_task(queue.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await queue.submit(4)
    rec.release.set()
    assert [await first, *(await asyncio.gather(*waiting))] == [10, 20, 30]

    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionResetError("gone")

    failing: Coalescer[int, int] = Coalescer(broken, window_s=0, size_max=8, depth_max=8, in_flight_max=1)
    outcomes = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert all(isinstance(o, ConnectionResetError) for o in outcomes)
