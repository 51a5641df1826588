"""Websocket consumers (seed 002's protocol): every message is {"type", "data", "timestamp"}.

- ``/ws/runs/``: the feed (``run_created``, ``run_updated``, ``stats``) and commands
  ``subscribe``/``unsubscribe`` (one run's detail stream on the same socket),
  ``get_status`` and ``ping`` (answered by ``pong`` with the same timestamp).
- ``/ws/runs/<id>/``: one run: ``log_entry`` lines (``?after=<offset>`` resumes;
  ``?format=batch``: one ``log_batch`` message per batch of lines instead),
  ``status``, ``event`` and finally ``execution_completed``, after which the client
  closes (the server does after ``CLOSE_GRACE`` seconds).

A socket is sent messages at the pace its client reads them: while daphne's write
buffer for the connection is full (Twisted asks its producer to pause), the consumer
stops pulling from the run's stream, so nothing more is read from the store for it.

Unauthenticated sockets are closed with 4401 and unauthorised ones with 4403,
before anything is sent; a path with no route is closed with 4404 (``NotFoundConsumer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from core.aio import live_read, wait_at_most
from core.flow import transport_buffered
from core.roles import Capability, role_allows
from runs.events import (
    Message,
    PongMessage,
    StatusData,
    connection_established_message,
    error_message,
    pong_message,
    status_message,
    subscribed_message,
    unsubscribed_message,
)
from runs.live import STATUS_FIELDS, RunsFeed, RunWatch, run_exists, status_data
from runs.models import Run

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# After ``execution_completed`` the server waits this long for the client to close
# before closing itself. Closing at once loses lines: daphne (autobahn) aborts a
# connection whose peer has not answered a close frame within one second, discarding
# whatever is still buffered for a client that is behind (a 100,000-line burst). The
# same tolerance as daphne's ping timeout, which drops clients that far behind anyway.
CLOSE_GRACE = 30.0


@live_read
def _get_run(run_id: str) -> Run | None:
    """The run, if there is one (unsaved: only its id, a watch needs no more and reads the
    rest itself); a malformed id is simply "not found"."""
    return Run(pk=uuid.UUID(run_id)) if run_exists(run_id) else None


# A paused writer looks at the transport's buffer this often, and goes on below this.
GATE_RECHECK = 0.05
GATE_LOW = 64 * 1024


class WriteGate:
    """Twisted's push-producer interface for daphne's transport of one websocket: the
    transport pauses us when its write buffer is over its limit (64 KiB) and resumes us
    when it has drained. ``open`` is set while writing may go on."""

    def __init__(self, transport: Any = None) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.transport = transport

    def buffered(self) -> int | None:
        """Bytes waiting in the TCP transport's write buffer, or None if it does not say."""
        return transport_buffered(self.transport)

    async def wait(self) -> None:
        """Until writing may go on. Twisted's resume does not always come (seen with
        1 MiB messages: the socket drained, the gate stayed shut), so the buffer itself is
        also looked at: below ``GATE_LOW`` bytes the gate opens whatever Twisted said."""
        while not self.open.is_set():
            await wait_at_most(self.open.wait(), GATE_RECHECK)
            buffered = self.buffered()
            if buffered is None or buffered < GATE_LOW:
                self.open.set()

    def pauseProducing(self) -> None:  # Twisted's interface
        self.open.clear()

    def resumeProducing(self) -> None:
        self.open.set()

    def stopProducing(self) -> None:  # the connection is gone
        self.open.set()


def _flow_of(send: Any) -> Any:
    """What pauses the writer of a daphne websocket, or None (another server, tests).

    daphne's ``send`` is ``partial(server.handle_reply, protocol)`` (wrapped by Channels'
    session middleware, which keeps it as ``real_send``). The websocket protocol was
    upgraded from twisted.web's ``HTTPChannel``, which stays the TCP transport's producer
    and hands pause/resume on to the producer registered with it (a Twisted transport
    takes one producer)."""
    for _ in range(5):
        if isinstance(send, partial):
            transport = getattr(send.args[0], "transport", None) if send.args else None
            channel = getattr(transport, "producer", None)
            return channel if hasattr(channel, "_requestProducer") else transport
        send = getattr(getattr(send, "__self__", None), "real_send", None)
    return None


class LiveConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels ships no type information
    """Shared connect/auth and the pump that forwards a message stream to the socket."""

    required = Capability.READ
    gate: WriteGate | None = None

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        # Channels' send has no backpressure: daphne would buffer whatever we send a
        # client that stops reading. Register as the transport's producer to be paused.
        flow = _flow_of(getattr(self, "base_send", None))
        taken = getattr(flow, "_requestProducer", None) or getattr(flow, "producer", None)
        if flow is not None and taken is None:
            gate = WriteGate(getattr(flow, "transport", None))
            try:
                flow.registerProducer(gate, True)
            except Exception:  # noqa: BLE001 - no flow control rather than no socket
                return
            self.gate = gate

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``aclose_old_connections`` (a trip to a thread
        for every message: connect, each client frame, disconnect). Every database access
        of these consumers goes through ``core.aio.live_read``, which closes old
        connections around its own work."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def authorise(self) -> bool:
        role = self.scope.get("role")
        user = self.scope.get("user")
        if role is None or user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        if not role_allows(role, self.required):
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        return True

    def query(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode()).get(name)
        return values[0] if values else None

    async def send_json(self, payload: Message | PongMessage) -> None:
        await self.send(text_data=json.dumps(payload, default=str))

    async def send_paced(self, payload: Message) -> None:
        """Send once the client has taken what was sent before (see ``WriteGate``)."""
        if self.gate is not None:
            await self.gate.wait()
        await self.send_json(payload)

    def batch_requested(self, value: object) -> bool:
        return value == "batch"

    async def pump(self, stream: AsyncIterator[Message]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            async for item in stream:
                await self.send_paced(item)


class RunConsumer(LiveConsumer):
    """``/ws/runs/<id>/``."""

    task: asyncio.Task[None] | None = None
    watch: RunWatch | None = None

    async def connect(self) -> None:
        if not await self.authorise():
            return
        after_raw = self.query("after") or "0"
        after = int(after_raw) if after_raw.isdigit() else 0
        try:
            run = Run(pk=uuid.UUID(self.scope["url_route"]["kwargs"]["run_id"]))
        except ValueError:
            run = None
        # The watch's first read of the run says whether it exists (no read of its own).
        watch = RunWatch(run, after=after, batch=self.batch_requested(self.query("format"))) if run else None
        if watch is None or not await watch.open():
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.watch = watch
        await self.accept()
        await self.send_json(connection_established_message({"run_id": watch.run_id, "after": after}))
        self.task = asyncio.create_task(self._follow(watch))

    async def _follow(self, watch: RunWatch) -> None:
        # Not pump(): a cancellation (the client left) must end this task, not only the loop.
        async for item in watch.messages():
            await self.send_paced(item)
        # The client has everything once it reads execution_completed; let it close.
        await asyncio.sleep(CLOSE_GRACE)
        await self.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await handle_common(self, text_data)

    async def disconnect(self, code: int) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.watch is not None:
            # Its channel is left here even if the task never started (closed at once).
            await self.watch.close()


class RunsFeedConsumer(LiveConsumer):
    """``/ws/runs/``."""

    feed_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if not await self.authorise():
            return
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        await self.accept()
        await self.send_json(connection_established_message({"channel": "runs"}))
        self.feed_task = asyncio.create_task(self.pump(RunsFeed().messages()))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        command = await handle_common(self, text_data)
        if command is None:
            return
        kind, data = command
        run_id = str(data.get("run_id") or data.get("execution_id") or "")
        if kind == "subscribe":
            run = await _get_run(run_id)
            if run is None:
                await self.send_json(error_message({"error_message": f"No run {run_id!r}."}))
                return
            current = self.subscriptions.get(run_id)
            # A subscription whose run has finished (execution_completed sent) is over:
            # subscribing again replays the run instead of being silently ignored.
            if current is None or current.done():
                raw_after = data.get("after")
                after = raw_after if isinstance(raw_after, int) else 0
                watch = RunWatch(run, after=max(0, after), batch=self.batch_requested(data.get("format")))
                self.subscriptions[run_id] = asyncio.create_task(self.pump(watch.messages()))
            await self.send_json(subscribed_message({"run_id": run_id}))
        elif kind == "unsubscribe":
            task = self.subscriptions.pop(run_id, None)
            if task is not None:
                task.cancel()
            await self.send_json(unsubscribed_message({"run_id": run_id}))
        else:
            await self.send_json(error_message({"error_message": f"Unknown command {kind!r}."}))

    async def disconnect(self, code: int) -> None:
        for task in [self.feed_task, *getattr(self, "subscriptions", {}).values()]:
            if task is not None:
                task.cancel()


class NotFoundConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels ships no type information
    """Any websocket path without a route (``/ws/executions``): closed with 4404.

    Without it Channels' router raises, and daphne answers the handshake with a 500.
    """

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)


@live_read
def _status_of(run_id: str) -> StatusData | None:
    try:
        row = Run.objects.filter(pk=run_id).values(*STATUS_FIELDS).first()
    except Exception:  # noqa: BLE001 - malformed id
        return None
    return status_data(row, run_id) if row else None


async def handle_common(consumer: LiveConsumer, text_data: str | None) -> tuple[str, dict[str, Any]] | None:
    """ping and get_status for both consumers; returns other commands to the caller."""
    try:
        payload = json.loads(text_data or "")
    except ValueError:
        await consumer.send_json(error_message({"error_message": "Messages must be JSON objects."}))
        return None
    if not isinstance(payload, dict):
        await consumer.send_json(error_message({"error_message": "Messages must be JSON objects."}))
        return None
    kind = payload.get("type")
    raw_data = payload.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    if kind == "ping":
        await consumer.send_json(pong_message(payload.get("timestamp")))
        return None
    if kind == "get_status":
        run_id = str(data.get("run_id") or data.get("execution_id") or "")
        if not run_id:
            route = consumer.scope.get("url_route", {}).get("kwargs", {})
            run_id = str(route.get("run_id") or "")
        status = await _status_of(run_id) if run_id else None
        if status is None:
            await consumer.send_json(error_message({"error_message": f"No run {run_id!r}."}))
        else:
            await consumer.send_json(status_message(status))
        return None
    if (
        isinstance(kind, str)
        and kind in ("subscribe", "unsubscribe")
        and isinstance(consumer, RunsFeedConsumer)
    ):
        return kind, data
    await consumer.send_json(error_message({"error_message": f"Unknown command {kind!r}."}))
    return None
