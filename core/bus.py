"""A process-wide wake-up bus: "look again now" messages between processes.

``publish(channel, payload)`` (sync, cheap, never raises, never blocks; ``publish_many``
for several at once: one round trip on Redis) and
``subscribe(*channels)`` (an asyncio context manager yielding a :class:`Subscription`)
are the whole API. A message carries no data a reader depends on — live views read the
persisted state when woken and poll slowly anyway — so the bus may drop a message when
a queue is full; it never delays a publisher.

Two backends, chosen from the settings when first used:

- **default, no server** (``settings.REDIS_URL`` unset): Unix datagram sockets in
  ``<DATA_DIR>/bus/``. A process binds one socket there the first time one of its views
  subscribes (one per process, shared by all its views; messages are dispatched by
  channel inside the process by a reader thread). A publisher sends each message to
  every socket of its host in the directory: the listing is cached and re-read when the
  directory's mtime changes; a socket whose owner is gone (``ECONNREFUSED``) is
  unlinked. A full receiver (``EAGAIN``: Linux queues at most ``net.unix.max_dgram_qlen``
  datagrams, 10 by default) is not given up on: its messages wait, deduplicated, and are
  sent as one datagram by the next publish or by a retry a few ms later — a burst of
  wake-ups costs the reader one read, and none is lost. Sockets are per host (the
  name starts with a tag of the host name): several hosts sharing a data dir must use
  Redis.
- **Redis** (``settings.REDIS_URL``): ``PUBLISH``; each process keeps one subscriber
  connection (in a reader thread) and ``SUBSCRIBE``s a channel while one of its views
  follows it.

The reader thread is independent of any event loop: a subscription is woken on its own
loop with ``call_soon_threadsafe`` (once per loop per batch of messages).

A subscription is usable at once: ``subscribe`` never waits. On the default backend it
is live at once (every message reaches the process's socket). On Redis it is live once
Redis has confirmed its channels; until then a message may be missed, so the
confirmation itself wakes the subscription with :data:`LIVE` ("look again": what
changed between the subscriber's first read and the confirmation is read then). A
reconnection to Redis wakes every subscription with :data:`LIVE` too. Waiting for the
confirmation before the first read put it on the path of every websocket's first
message: ~420 ms (median) for the first line of 200 runs launched at once, against
~40 ms on the default backend (the reader thread, in a process whose GIL the launch
storm keeps busy, sent and confirmed one ``SUBSCRIBE`` at a time).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from core.aio import wait_at_most

logger = logging.getLogger(__name__)

# AF_UNIX paths longer than this cannot be bound or addressed directly: go through
# /proc/self/fd/<fd of the directory>/<name> instead.
_MAX_SUN_PATH = 100
# A directory listing is trusted only once its mtime is this old: two changes within one
# timestamp tick (a few ms on some file systems) would leave the same mtime.
_RACY_MTIME = 0.1
# The wake-up a subscription gets when it becomes live (Redis confirmed its channels, or
# the subscriber connection was made again): read everything again. No publisher sends it.
LIVE = "*live"


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


# Messages in one datagram are separated by NUL (never in a channel name or payload).
_SEP = b"\0"
# How soon messages held back by a full receiver are tried again.
_RETRY = 0.003
# Messages held back per receiver at most (distinct ones: the rest are duplicates).
_HELD_MAX = 5000


def _encode(channel: str, payload: str) -> bytes:
    return f"{channel}\n{payload}".encode()


def _decode(datagram: bytes) -> list[tuple[str, str]]:
    messages = []
    for raw in datagram.split(_SEP):
        channel, _, payload = raw.decode(errors="replace").partition("\n")
        messages.append((channel, payload))
    return messages


class Subscription:
    """Wake-ups of some channels, for one asyncio task.

    :meth:`take` returns the payloads received since the last call and forgets only
    those: a message that arrives while its subscriber is busy is kept for the next
    call, never cleared unhandled.
    """

    def __init__(self, channels: tuple[str, ...], loop: asyncio.AbstractEventLoop):
        self.channels = channels
        self.loop = loop
        self._event = asyncio.Event()
        self._pending: set[str] = set()
        # Channels not yet live (set by the hub as it registers the subscription).
        self._unconfirmed: set[str] = set()
        self._live = asyncio.Event()

    @property
    def live(self) -> bool:
        """Whether every message published on its channels from now on reaches it."""
        return not self._unconfirmed

    async def until_live(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :attr:`live`; returns it."""
        if self._unconfirmed:
            await wait_at_most(self._live.wait(), timeout)
        return self.live

    def _deliver(self, payload: str) -> None:  # on self.loop
        self._pending.add(payload)
        self._event.set()

    def _confirm(self, channel: str) -> None:  # on self.loop
        self._unconfirmed.discard(channel)
        if not self._unconfirmed:
            self._live.set()
        self._deliver(LIVE)

    def pending(self) -> bool:
        return bool(self._pending)

    def poke(self, payload: str) -> None:
        """A wake-up from within this process (a fallback poll that saw a change), as if
        it had come over the bus. On the subscription's own loop."""
        self._deliver(payload)

    def take(self) -> set[str]:
        got, self._pending = self._pending, set()
        self._event.clear()
        return got

    async def wait(self, timeout: float) -> set[str]:
        """The payloads received so far, waiting up to ``timeout`` seconds for one."""
        if not self._pending and timeout > 0:
            await wait_at_most(self._event.wait(), timeout)
        return self.take()


def _dispatch(batch: list[tuple[Subscription, str]]) -> None:
    for sub, payload in batch:
        sub._deliver(payload)


def _dispatch_live(batch: list[tuple[Subscription, str]]) -> None:
    for sub, channel in batch:
        sub._confirm(channel)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Hub:
    """This process's subscriptions, by channel, and the thread that feeds them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subs: dict[str, set[Subscription]] = {}
        # The channels that are live (Redis confirmed them); None: all are, at once (the
        # default backend). Under ``lock``.
        self.confirmed: set[str] | None = None

    def deliver(self, messages: list[tuple[str, str]]) -> None:
        """From the reader thread: wake the subscribers of each message's channel."""
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, str]]] = {}
        with self.lock:
            for channel, payload in messages:
                for sub in self.subs.get(channel, ()):
                    per_loop.setdefault(sub.loop, []).append((sub, payload))
        self._send(per_loop, _dispatch)

    def confirm(self, channels: list[str]) -> None:
        """From the reader thread: ``channels`` are live; wake their subscribers with LIVE."""
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, str]]] = {}
        with self.lock:
            if self.confirmed is not None:
                self.confirmed.update(channels)
            for channel in channels:
                for sub in self.subs.get(channel, ()):
                    per_loop.setdefault(sub.loop, []).append((sub, channel))
        self._send(per_loop, _dispatch_live)

    @staticmethod
    def _send(
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, str]]],
        dispatch: Callable[[list[tuple[Subscription, str]]], None],
    ) -> None:
        for loop, batch in per_loop.items():
            with contextlib.suppress(RuntimeError):  # a loop closed since: nobody to wake
                loop.call_soon_threadsafe(dispatch, batch)

    def add(self, sub: Subscription) -> list[str]:
        """Register ``sub``; returns the channels nobody in this process followed yet."""
        new = []
        with self.lock:
            for channel in sub.channels:
                holders = self.subs.setdefault(channel, set())
                if not holders:
                    new.append(channel)
                holders.add(sub)
            if self.confirmed is not None:
                sub._unconfirmed = {c for c in sub.channels if c not in self.confirmed}
        if not sub._unconfirmed:
            sub._live.set()
        return new

    def remove(self, sub: Subscription) -> list[str]:
        """Unregister ``sub``; returns the channels nobody in this process follows now."""
        gone = []
        with self.lock:
            for channel in sub.channels:
                holders = self.subs.get(channel)
                if holders is None:
                    continue
                holders.discard(sub)
                if not holders:
                    del self.subs[channel]
                    gone.append(channel)
                    if self.confirmed is not None:
                        self.confirmed.discard(channel)  # live again only once confirmed again
        return gone


# -- the default backend: Unix datagram sockets --------------------------------------------


class _Dir:
    """The bus directory, addressable however long its path is."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.short = len(str(path)) + 32 < _MAX_SUN_PATH  # + a socket's name
        # Joined as strings: this is on every wake-up's path (a pathlib join cost more than the send).
        self._prefix = os.path.join(str(path), "") if self.short else f"/proc/self/fd/{self.fd}/"

    def address(self, name: str) -> str:
        return self._prefix + name


class UnixPublisher:
    def __init__(self, path: Path):
        self.dir = _Dir(path)
        self.prefix = _host_tag() + "."
        self.lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0
        self._mtime = -1
        self._racy = True
        self._targets: list[str] = []
        self._held: dict[str, dict[bytes, None]] = {}  # per receiver: messages it had no room for
        self._retrying = 0  # the pid whose retry thread runs

    def _socket(self) -> socket.socket:
        if self._sock is None or self._pid != os.getpid():  # a fork: a socket of our own
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            self._sock, self._pid = sock, os.getpid()
        return self._sock

    def _listing(self) -> list[str]:
        mtime = os.stat(self.dir.fd).st_mtime_ns
        if mtime != self._mtime or self._racy:
            self._targets = [n for n in os.listdir(self.dir.path) if n.startswith(self.prefix)]
            self._mtime = mtime
            self._racy = time.time() - mtime / 1e9 < _RACY_MTIME
        return self._targets

    def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        for channel, payload in messages:
            self.publish(channel, payload)

    def publish(self, channel: str, payload: str) -> None:
        data = _encode(channel, payload)
        with self.lock:
            for name in self._listing():
                held = self._held.get(name)
                if held is not None:
                    # Behind already: this one joins the queue (order within a batch does
                    # not matter: each message only says "look again").
                    if len(held) < _HELD_MAX:
                        held[data] = None
                    self._send_held(name)
                else:
                    self._send(name, data, [data])
            if self._held:
                self._retry_soon()

    def _send(self, name: str, datagram: bytes, messages: list[bytes]) -> bool:
        """Send; on a full receiver hold ``messages`` for later. True if sent."""
        try:
            self._socket().sendto(datagram, self.dir.address(name))
            return True
        except BlockingIOError:
            held = self._held.setdefault(name, {})
            for message in messages:
                if len(held) < _HELD_MAX:
                    held[message] = None
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            # The owner is gone (killed without cleaning up): nobody reads it.
            if isinstance(exc, ConnectionRefusedError):
                with contextlib.suppress(OSError):
                    os.unlink(self.dir.path / name)
            self._racy = True
            self._held.pop(name, None)
        except OSError as exc:
            logger.debug("bus: send to %s failed: %s", name, exc)
        return False

    def _send_held(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held:
            messages = list(held)
            self._send(name, _SEP.join(messages), messages)

    def _retry_soon(self) -> None:  # under self.lock
        if self._retrying == os.getpid():
            return
        self._retrying = os.getpid()  # a forked child has no retry thread: it starts its own
        threading.Thread(target=self._retry_loop, name="scriptops-bus-retry", daemon=True).start()

    def _retry_loop(self) -> None:
        while True:
            time.sleep(_RETRY)
            with self.lock:
                for name in list(self._held):
                    self._send_held(name)
                if not self._held:
                    self._retrying = 0
                    return


class UnixReceiver:
    """This process's socket in the bus directory, and its reader thread."""

    def __init__(self, path: Path, hub: _Hub):
        self.dir = _Dir(path)
        self.hub = hub
        with hub.lock:
            hub.confirmed = None  # every channel is live at once
        self.name = f"{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.dir.address(self.name))
        atexit.register(self.close)
        self.thread = threading.Thread(target=self._read, name="scriptops-bus", daemon=True)
        self.thread.start()

    def subscribe(self, channels: list[str]) -> None:
        return None  # every message reaches the socket; the hub filters by channel

    def unsubscribe(self, channels: list[str]) -> None:
        return None

    def _read(self) -> None:
        while True:
            try:
                first = self.sock.recv(65536)
            except OSError:
                return  # closed
            if not first:
                return  # shut down (a message is never empty)
            messages = [first]
            # Take whatever else is queued too: one wake-up per loop for the lot.
            while len(messages) < 1000:
                try:
                    messages.append(self.sock.recv(65536, socket.MSG_DONTWAIT))
                except OSError:
                    break
            decoded = []
            for raw in messages:
                decoded += _decode(raw)
            self.hub.deliver(decoded)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.dir.path / self.name)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# -- Redis ------------------------------------------------------------------------------------


class RedisPublisher:
    def __init__(self, url: str):
        import redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=0.5)

    def publish(self, channel: str, payload: str) -> None:
        self.client.publish(channel, payload)

    def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """One round trip for all of them (a pipeline, not a transaction)."""
        pipe = self.client.pipeline(transaction=False)
        for channel, payload in messages:
            pipe.publish(channel, payload)
        pipe.execute()


class RedisReceiver:
    """One subscriber connection for the whole process, in a reader thread.

    redis-py's ``PubSub`` is not thread-safe, so subscriptions are requested through a
    queue the thread applies between reads: all the requests waiting then in one
    ``SUBSCRIBE`` and one ``UNSUBSCRIBE``, for what the hub wants by then. A request
    waits for the end of the thread's current read, at most ``POLL``: 10 ms (idle, the
    thread costs 0.33 % of a core, measured). A channel is live once Redis has answered
    the last ``SUBSCRIBE`` sent for it (:meth:`_Hub.confirm`).
    """

    POLL = 0.01

    def __init__(self, url: str, hub: _Hub):
        import redis

        self.hub = hub
        with hub.lock:
            hub.confirmed = set()
        client: Any = redis.Redis.from_url(url)
        self.pubsub: Any = client.pubsub()
        self.requests: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        # Only the reader thread touches these: the channels SUBSCRIBEd at Redis (asked
        # for, maybe not answered yet), and the SUBSCRIBE answers still due per channel.
        self.at_redis: set[str] = set()
        self.due: dict[str, int] = {}
        self.thread = threading.Thread(target=self._read, name="scriptops-bus-redis", daemon=True)
        self.thread.start()

    def subscribe(self, channels: list[str]) -> None:
        if channels:
            self.requests.put(channels)

    def unsubscribe(self, channels: list[str]) -> None:
        if channels:
            self.requests.put(channels)

    def _apply_requests(self) -> None:
        touched: set[str] = set()
        while True:
            try:
                touched.update(self.requests.get_nowait())
            except queue.Empty:
                break
        if not touched:
            return
        with self.hub.lock:
            # What the hub wants now: a subscribe racing an unsubscribe of the same
            # channel leaves it subscribed if someone still follows it.
            wanted = {channel for channel in touched if channel in self.hub.subs}
            confirmed = self.hub.confirmed or set()
            # Followed again before its UNSUBSCRIBE was sent: still live at Redis.
            still = [c for c in wanted if c in self.at_redis and c not in self.due and c not in confirmed]
        gone = sorted((touched - wanted) & self.at_redis)
        if gone:
            self.at_redis.difference_update(gone)
            self.pubsub.unsubscribe(*gone)
        new = sorted(wanted - self.at_redis)
        if new:
            for channel in new:
                self.due[channel] = self.due.get(channel, 0) + 1
            self.at_redis.update(new)
            self.pubsub.subscribe(*new)
        if still:
            self.hub.confirm(still)

    def _answered(self, channel: str, live: list[str]) -> None:
        """Redis answered a SUBSCRIBE of ``channel``: live once the last one is in."""
        due = self.due.get(channel, 0)
        if due > 1:
            self.due[channel] = due - 1
            return
        self.due.pop(channel, None)
        if channel in self.at_redis:
            live.append(channel)

    def _read(self) -> None:
        while True:
            try:
                self._apply_requests()
                batch: list[tuple[str, str]] = []
                live: list[str] = []
                message = self.pubsub.get_message(timeout=self.POLL)
                while message is not None and len(batch) < 1000:
                    channel = message["channel"].decode()
                    if message["type"] == "message":
                        data = message["data"]
                        batch.append((channel, data.decode() if isinstance(data, bytes) else str(data)))
                    elif message["type"] == "subscribe":
                        self._answered(channel, live)
                    message = self.pubsub.get_message(timeout=0)
                if live:
                    self.hub.confirm(live)
                if batch:
                    self.hub.deliver(batch)
            except Exception as exc:  # noqa: BLE001 - Redis away: retry; views poll meanwhile
                logger.debug("bus: redis subscriber error: %s", exc)
                time.sleep(0.5)
                with contextlib.suppress(Exception):
                    # Reconnect with the channels this process follows. Until Redis
                    # confirms them nothing is live: each confirmation wakes its
                    # subscribers (LIVE), which read what they may have missed.
                    self.pubsub.reset()
                    with self.hub.lock:
                        channels = list(self.hub.subs)
                        if self.hub.confirmed is not None:
                            self.hub.confirmed.clear()
                    self.at_redis, self.due = set(channels), dict.fromkeys(channels, 1)
                    if channels:
                        self.pubsub.subscribe(*channels)


# -- the process's bus -------------------------------------------------------------------------

_hub = _Hub()
_state_lock = threading.Lock()
_publisher: UnixPublisher | RedisPublisher | None = None
_receiver: UnixReceiver | RedisReceiver | None = None
_config: tuple[str | None, Path] | None = None


def _settings() -> tuple[str | None, Path]:
    if _config is not None:
        return _config
    from django.conf import settings

    return settings.REDIS_URL or None, Path(settings.DATA_DIR) / "bus"


def configure(*, redis_url: str | None, directory: Path) -> None:
    """Use these instead of the Django settings (tests; a process without Django)."""
    global _config
    reset()
    _config = (redis_url, directory)


def reset() -> None:
    """Forget the backend (the next call re-reads the settings). For tests."""
    global _publisher, _receiver, _config
    with _state_lock:
        if isinstance(_receiver, UnixReceiver):
            _receiver.close()
        _publisher = _receiver = None
        with _hub.lock:
            _hub.confirmed = None
        _config = None


def _get_publisher() -> UnixPublisher | RedisPublisher:
    global _publisher
    if _publisher is None:
        with _state_lock:
            if _publisher is None:
                redis_url, directory = _settings()
                _publisher = RedisPublisher(redis_url) if redis_url else UnixPublisher(directory)
    return _publisher


def _get_receiver() -> UnixReceiver | RedisReceiver:
    global _receiver
    if _receiver is None:
        with _state_lock:
            if _receiver is None:
                redis_url, directory = _settings()
                _receiver = RedisReceiver(redis_url, _hub) if redis_url else UnixReceiver(directory, _hub)
    return _receiver


def publish(channel: str, payload: str = "1") -> None:
    """Send a wake-up to every subscriber of ``channel`` in any process; never raises."""
    try:
        _get_publisher().publish(channel, payload)
    except Exception as exc:  # noqa: BLE001 - a wake-up must never fail its caller
        logger.debug("bus: publish on %s failed: %s", channel, exc)


def publish_many(messages: Sequence[tuple[str, str]]) -> None:
    """:func:`publish` each (channel, payload); on Redis in one round trip. Never raises."""
    try:
        _get_publisher().publish_many(messages)
    except Exception as exc:  # noqa: BLE001 - a wake-up must never fail its caller
        logger.debug("bus: publish of %d messages failed: %s", len(messages), exc)


@contextlib.asynccontextmanager
async def subscribe(*channels: str) -> AsyncIterator[Subscription]:
    """Follow ``channels`` until the block ends. Usable on entry, without waiting: a
    message published once it is :attr:`Subscription.live` reaches it, and becoming live
    wakes it with :data:`LIVE` (at once on the default backend: no wake-up then)."""
    sub = Subscription(channels, asyncio.get_running_loop())
    receiver: UnixReceiver | RedisReceiver | None = None
    try:
        receiver = _get_receiver()
    except Exception as exc:  # noqa: BLE001 - no bus: the caller's fallback poll only
        logger.warning("bus: cannot subscribe (%s); live views will poll", exc)
    new = _hub.add(sub)
    try:
        if receiver is not None:
            receiver.subscribe(new)  # never waits: see "A subscription is usable at once"
        yield sub
    finally:
        gone = _hub.remove(sub)
        if receiver is not None:
            receiver.unsubscribe(gone)


def socket_dir() -> Path:
    """Where the default backend's sockets live."""
    return _settings()[1]
