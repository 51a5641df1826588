"""core.aio.wait_at_most: a bounded wait that never loses its caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from core.aio import wait_at_most


def test_it_says_whether_the_awaited_completed_in_time() -> None:
    async def body() -> tuple[bool, bool]:
        done = asyncio.Event()
        done.set()
        never = asyncio.Event()
        return await wait_at_most(done.wait(), 1), await wait_at_most(never.wait(), 0.01)

    assert asyncio.run(body()) == (True, False)


def test_a_timed_out_wait_cancels_what_it_awaited() -> None:
    async def body() -> bool:
        inner = asyncio.ensure_future(asyncio.sleep(10))
        await wait_at_most(inner, 0.01)
        await asyncio.sleep(0)
        return inner.cancelled()

    assert asyncio.run(body()) is True


def test_a_cancellation_that_comes_as_the_wait_completes_is_not_lost() -> None:
    # asyncio.wait_for on 3.11 returns the result here and the loop below runs on for
    # ever (CPython gh-86296): a websocket watcher outlived its socket this way.
    async def body() -> bool:
        wakeup = asyncio.Event()

        async def watcher() -> None:
            while True:
                await wait_at_most(wakeup.wait(), 5)
                wakeup.clear()

        task = asyncio.create_task(watcher())
        await asyncio.sleep(0.01)
        wakeup.set()
        task.cancel()
        await asyncio.sleep(0.05)
        ended = task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ended

    assert asyncio.run(body()) is True
