"""asyncio helpers every live view shares.

``asyncio.wait_for`` on Python 3.11 loses a cancellation that arrives while the awaited
thing completes (CPython gh-86296, fixed in 3.12): it returns the result and the task
goes on. A websocket's watcher cancelled as its wake-up came then looped on with no one
to cancel it again. ``asyncio.timeout`` has no such race, so waits with a limit go
through :func:`wait_at_most`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


async def wait_at_most(awaitable: Awaitable[object], seconds: float) -> bool:
    """Await ``awaitable`` for up to ``seconds``: True if it completed, False if the time
    ran out (it is then cancelled). A cancellation of the caller always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


# The live views' database reads (a websocket's authentication, a run's existence and
# state, the fallback poll, the runs feed). Where a read waits on the network (Redis as
# the cache: the bad-key check is a round trip; PostgreSQL) they run on a pool of
# threads of their own. asgiref's default (``thread_sensitive``) queues them all on one
# thread, one after another: with Redis, 200 websockets opened at once each waited
# behind the others' round trips and their first message came ~250-300 ms (median)
# after the launch's answer; line -> client p99 over the storm went from 360-570 ms to
# 73-81 ms on 2 threads. 4 threads did no better and passed the GIL around so much that
# the launches took 0.4-0.6 s more CPU. Where every read is local (SQLite, no Redis)
# there is nothing to wait for in parallel: they stay on asgiref's one thread.
LIVE_READ_THREADS = 2
_live_reads: ThreadPoolExecutor | None = None
_live_reads_lock = threading.Lock()


def live_reads_local() -> bool:
    """Whether every live read is local: SQLite and no Redis."""
    from django.conf import settings
    from django.db import connections

    return not settings.REDIS_URL and connections["default"].vendor == "sqlite"


def _pool() -> ThreadPoolExecutor:
    global _live_reads
    with _live_reads_lock:
        if _live_reads is None:
            _live_reads = ThreadPoolExecutor(LIVE_READ_THREADS, thread_name_prefix="scriptops-live")
        return _live_reads


class _LiveRead(SyncToAsync[P, R]):
    """What Channels' ``database_sync_to_async`` does: old connections are closed around
    the call."""

    def thread_handler(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]  # asgiref leaves it untyped
        finally:
            close_old_connections()


def live_read(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` (a sync database read), awaitable from a live view: on asgiref's one
    thread where every read is local, else on the live views' pool of threads."""
    if live_reads_local():
        return _LiveRead(fn, thread_sensitive=True)
    return _LiveRead(fn, thread_sensitive=False, executor=_pool())
