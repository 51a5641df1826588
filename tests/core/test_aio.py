"""core.aio: ``wait_at_most``, a bounded wait that never loses its caller's cancellation;
``live_read``, the live views' database reads on a pool of their own."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.db import connection

from core import aio
from core.aio import live_read, live_reads_local, wait_at_most


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


@pytest.mark.parametrize(
    ("redis_url", "vendor", "local"),
    [("", "sqlite", True), ("redis://127.0.0.1:6379/0", "sqlite", False), ("", "postgresql", False)],
)
def test_live_reads_are_local_only_on_sqlite_without_redis(
    settings: Any, monkeypatch: pytest.MonkeyPatch, redis_url: str, vendor: str, local: bool
) -> None:
    settings.REDIS_URL = redis_url
    monkeypatch.setattr(connection, "vendor", vendor)
    assert live_reads_local() is local


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.django_db(transaction=True)
def test_a_live_read_reads_the_database_on_its_threads(monkeypatch: pytest.MonkeyPatch, local: bool) -> None:
    """Local: asgiref's one thread for all (nothing to wait on in parallel). Otherwise
    the live views' pool, several reads at once."""
    monkeypatch.setattr(aio, "live_reads_local", lambda: local)

    def read(x: int) -> tuple[str, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s + 1", [x])
            (value,) = cursor.fetchone()
        return threading.current_thread().name, value

    async def body() -> list[tuple[str, int]]:
        fn = live_read(read)
        return list(await asyncio.gather(*(fn(x) for x in range(8))))

    got = asyncio.run(body())
    assert [value for _, value in got] == [x + 1 for x in range(8)]
    names = {name for name, _ in got}
    if local:
        assert len(names) == 1 and not any(n.startswith("scriptops-live") for n in names)
    else:
        assert all(n.startswith("scriptops-live") for n in names)
        assert aio._live_reads is not None and aio._live_reads._max_workers == aio.LIVE_READ_THREADS
