"""Background tasks are bounded: at most `limit` exist, at most `concurrency` run at once, a refused one is never
run (nor left un-awaited), a failing one does not stop the others, and closing waits for all and refuses more."""

from __future__ import annotations

import asyncio
import warnings

from payments.runtime import BackgroundTasks


async def test_background_tasks_are_bounded_and_awaited_on_close() -> None:
    background = BackgroundTasks(limit=3, concurrency=2)
    release = asyncio.Event()
    running, most, done = 0, 0, []

    async def work(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        if n == 0:
            raise RuntimeError("a defect in one task")
        done.append(n)

    refused = work(3)
    assert [background.spawn(work(n)) for n in range(3)] == [True, True, True]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would be an error: the refused one is closed
        assert background.spawn(refused) is False
    for _ in range(5):
        await asyncio.sleep(0)
    assert (running, len(background.tasks)) == (2, 3)  # two run, the third waits for a slot

    release.set()
    await background.aclose()
    assert (sorted(done), most, background.tasks) == ([1, 2], 2, set())
    late = work(9)
    assert background.spawn(late) is False  # closed: left to the scheduled job
