"""asyncio helpers every live view shares.

``asyncio.wait_for`` on Python 3.11 loses a cancellation that arrives while the awaited
thing completes (CPython gh-86296, fixed in 3.12): it returns the result and the task
goes on. A websocket's watcher cancelled as its wake-up came then looped on with no one
to cancel it again. ``asyncio.timeout`` has no such race, so waits with a limit go
through :func:`wait_at_most`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_at_most(awaitable: Awaitable[object], seconds: float) -> bool:
    """Await ``awaitable`` for up to ``seconds``: True if it completed, False if the time
    ran out (it is then cancelled). A cancellation of the caller always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True
