"""Django's ASGI handler, serving sync views the way a WSGI server does.

Why not Django's own ``ASGIHandler`` as it is: under it every HTTP request

- gets a brand-new thread (a per-request ``ThreadSensitiveContext``), so a new database
  connection per request — ``CONN_MAX_AGE`` cannot help, connections are per thread;
- crosses between the event loop and that thread four times when the middleware chain is
  sync (loop → middleware → loop → view → loop), as ours is (WhiteNoise is sync-only).

ScriptOps' views are sync except the server-sent-event streams. Here a sync request is
read on the loop, then the whole of it (``request_started``, middleware, view) runs in one
hop on a thread lent from a small pool; the thread and its database connection stay for
the next request. At most ``SYNC_REQUESTS_AT_ONCE`` sync requests run at a time (a WSGI
server's thread count), the others wait on the loop. Async views (SSE) keep Django's
async path, on a lent thread too. Measured under daphne on this 2-CPU machine:
``/api/health`` 7.5 → 3.2 ms, a run's logs 14.9 → 8.4 ms (see ``docs/architecture.md``).

A sync streaming response (a log download) is pulled from its iterator on the request's
thread a batch at a time, where Django's ASGI handler would read it whole into memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any, cast

from asgiref.sync import AsyncToSync, ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import FileResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix

from core.flow import transport_buffered

logger = logging.getLogger(__name__)

# Idle request threads kept (each may hold one database connection): enough for the
# usual handful of concurrent requests of a dashboard and its API clients; a burst beyond
# it gets fresh threads, closed again afterwards.
IDLE_THREADS = 8
# Sync requests run at most this many at a time; the others wait their turn on the loop.
# Python runs one thread at a time and SQLite writes one transaction at a time: past a
# few, more threads at once only finish every request later (a burst of launches all
# returning at the end, their SQLite writers sleeping in its busy handler).
SYNC_REQUESTS_AT_ONCE = 4
# A sync streaming response is pulled from its thread in batches of about this size.
STREAM_BATCH_BYTES = 256 * 1024
# A streamed async response (server-sent events) waits while its client has more than
# PACE_HIGH bytes unread, until PACE_LOW, looking every PACE_RECHECK seconds.
PACE_HIGH = 256 * 1024
PACE_LOW = 64 * 1024
PACE_RECHECK = 0.05


class ThreadLender:
    """One-thread executors, each lent to one request at a time.

    Only ever used from the server's event loop thread, so it needs no lock.
    """

    def __init__(self, keep: int = IDLE_THREADS):
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []

    def lend(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="scriptops-http")

    def give_back(self, executor: ThreadPoolExecutor, *, clean: bool) -> None:
        """Keep ``executor`` for the next request, unless the pool is full or the request
        ended while its thread was still busy (a cancelled request): such a thread is
        retired once its work is done, with its database connections."""
        if clean and len(self.idle) < self.keep:
            self.idle.append(executor)
            return
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)

    def close(self) -> None:
        """Retire the idle threads, closing their database connections (tests, shutdown)."""
        while self.idle:
            executor = self.idle.pop()
            executor.submit(connections.close_all).result()
            executor.shutdown(wait=True)


def _take(iterator: Iterator[bytes], limit: int = STREAM_BATCH_BYTES) -> list[bytes]:
    """The next parts of ``iterator``, about ``limit`` bytes of them; [] when exhausted."""
    parts: list[bytes] = []
    size = 0
    for part in iterator:
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return parts


def _log_failure(future: Future[None]) -> None:
    if (exc := future.exception()) is not None:
        logger.error("Closing a response failed", exc_info=exc)


async def _pulled(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    take = sync_to_async(_take)  # thread-sensitive: the request's own thread
    while parts := await take(iterator):
        for part in parts:
            yield part


def _transport_of(send: Any) -> Any:
    """The TCP transport behind daphne's ``send`` (``partial(server.handle_reply,
    request)``; the request's channel holds the transport), or None."""
    if isinstance(send, partial) and send.args:
        return getattr(getattr(send.args[0], "channel", None), "transport", None)
    return None


def _paced(send: Any) -> Any:
    """``send`` for a streamed response (server-sent events) that waits, after a body
    part, while the client has more than ``PACE_HIGH`` bytes unread, until it is down to
    ``PACE_LOW``: a client that stops reading pauses the stream (its watch reads the
    store again only when it goes on) instead of growing daphne's buffer without bound."""
    transport = _transport_of(send)
    if transport is None:
        return send

    async def paced(message: dict[str, Any]) -> None:
        await send(message)
        if message.get("type") != "http.response.body" or not message.get("more_body"):
            return
        buffered = transport_buffered(transport)
        if buffered is None or buffered <= PACE_HIGH:
            return
        while not getattr(transport, "disconnected", True):
            await asyncio.sleep(PACE_RECHECK)
            buffered = transport_buffered(transport)
            if buffered is None or buffered <= PACE_LOW:
                return

    return paced


class ScriptOpsASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()  # the async middleware chain, for async views
        self.sync_handler = BaseHandler()
        self.sync_handler.load_middleware(is_async=False)
        self.threads = ThreadLender()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def _gate(self) -> asyncio.Semaphore:
        """The sync requests' semaphore of the running loop (one per loop: tests run several)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(SYNC_REQUESTS_AT_ONCE)
        return gate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        if getattr(AsyncToSync.executors, "current", None) is not None:
            # Called from a sync thread through async_to_sync (tests drive the app so):
            # Django's rule stands, the request's sync work goes back to that thread.
            async with ThreadSensitiveContext():
                if self._is_async_view(scope):
                    await self.handle(scope, receive, send)
                else:
                    await self.handle_sync(scope, receive, send)
            return
        if self._is_async_view(scope):
            async with self._lent_thread():
                await self.handle(scope, receive, _paced(send))
        else:
            await self.handle_sync(scope, receive, send, pooled=True)

    @contextlib.asynccontextmanager
    async def _lent_thread(self) -> AsyncIterator[ThreadPoolExecutor]:
        """A thread of the pool for the request's thread-sensitive work, kept if it ends
        cleanly (a cancelled request's thread may still be busy: it is retired)."""
        executor = self.threads.lend()
        clean = False
        try:
            async with ThreadSensitiveContext(executor=executor):
                yield executor
            clean = True
        finally:
            self.threads.give_back(executor, clean=clean)

    @staticmethod
    def _is_async_view(scope: dict[str, Any]) -> bool:
        script_name = get_script_prefix(scope)
        path = scope["path"].removeprefix(script_name) if script_name else scope["path"]
        return _async_view_at(get_resolver(), path)

    async def handle_sync(
        self, scope: dict[str, Any], receive: Any, send: Any, *, pooled: bool = False
    ) -> None:
        """Read the body on the loop, run the request's sync part in one hop (on a lent
        thread once its turn comes, when ``pooled``), then send the response."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            if not pooled:
                response = await sync_to_async(self._respond)(scope, body_file)
                await self._send(response, send)
                await sync_to_async(response.close)()
                return
            gate = self._gate()
            await gate.acquire()
            released = False
            try:
                async with self._lent_thread() as executor:
                    try:
                        response = await sync_to_async(self._respond)(scope, body_file)
                    finally:
                        gate.release()  # sending the response needs no turn
                        released = True
                    await self._send(response, send)
                    # The client has its response: close it (request_finished) on the
                    # request's thread without waiting, so the thread is free for the next
                    # request at once. Anything that thread runs next queues behind this.
                    executor.submit(response.close).add_done_callback(_log_failure)
            finally:
                if not released:
                    gate.release()
        finally:
            body_file.close()

    async def _send(self, response: HttpResponseBase, send: Any) -> None:
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            # Not async, so a sync iterator of bytes (the union is for async responses).
            response.streaming_content = _pulled(cast(Iterator[bytes], response.streaming_content))
        await self.send_response(response, send)

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The request's sync part, on its lent thread: what a WSGI server would run."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request returns one or the other
            return error_response
        response = self.sync_handler.get_response(request)
        # Django's own handler marks its responses so (test clients read it); not in the stubs.
        setattr(response, "_handler_class", self.__class__)  # noqa: B010
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response


@lru_cache(maxsize=1024)
def _async_view_at(resolver: Any, path: str) -> bool:
    """Is the view at ``path`` async? Kept per path and URL resolver (a new URLconf is a new
    resolver): resolving every request once more than Django does cost ~1.5 % of daphne's
    CPU in bursts of launches (py-spy), and clients ask for the same few paths."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return False  # a static file or a 404: both served by the sync chain
    return iscoroutinefunction(match.func)
