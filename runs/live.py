"""Following runs live, for websockets and server-sent events.

:class:`RunWatch` turns one run's persisted state into a stream of messages
(:mod:`runs.events` contract): output lines read from the store with a
:class:`~runs.logstore.LogFollower` (resumable from any line, in coalesced batches),
status changes and new events read from the database, and a final
``execution_completed``. :class:`RunsFeed` does the same for the runs list.
Both wait on the wake-up bus (:mod:`core.bus`) and poll only as a slow fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Max

from core import bus
from core.aio import live_read
from core.precompiled import KeptRead
from runs import events as ev
from runs.events import (
    RUNS_CHANNEL,
    EventData,
    FeedRunData,
    LogBatchData,
    LogEntryData,
    Message,
    StatsData,
    StatusData,
    error_message,
    event_message,
    execution_completed_message,
    log_batch_message,
    log_entry_message,
    run_channel,
    run_created_message,
    run_updated_message,
    stats_message,
    status_message,
)
from runs.logstore import Chunk, Line, LogFollower
from runs.logstore.files import LocalFiles
from runs.models import TERMINAL, Run, RunEvent, RunStatus
from runs.selectors import run_counts

logger = logging.getLogger(__name__)

BATCH_LINES = 2000
# A watch waits for its wake-ups this long at a time (nothing happens when it ends: the
# fallback poller is what looks when no wake-up comes).
WAIT_SLICE = 60.0
# The batch form reads whole records (one pipe read each, up to 1 MiB) up to about this
# much per message (50 MiB to a client: 32 KiB 59 MiB/s, 256 KiB 67 MiB/s).
BATCH_BYTES = 1 << 18
STATUS_FIELDS = (
    "status",
    "run_status",
    "paused",
    "exit_code",
    "attempts",
    "output_lines",
    "output_truncated",
    "started_at",
    "finished_at",
    "duration",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def line_data(run_id: str, line: Line) -> LogEntryData:
    return {
        "run_id": run_id,
        "offset": line.number,
        "stream": line.stream,
        "content": line.text,
        "timestamp": line.ts,
    }


def batch_data(run_id: str, chunks: list[Chunk]) -> LogBatchData:
    """Chunks as one ``log_batch``: no per-line object, dict, timestamp or encoding."""
    last = chunks[-1]
    return {
        "run_id": run_id,
        "first_offset": chunks[0].first,
        "last_offset": last.first + last.count - 1,
        "chunks": [(c.first, c.stream, c.ts, c.text) for c in chunks],
    }


def status_data(row: Mapping[str, Any], run_id: str) -> StatusData:
    """A run's ``STATUS_FIELDS`` row (from ``.values()``) as ``status`` data."""
    return {
        "run_id": run_id,
        "status": row["status"],
        "run_status": row["run_status"],
        "paused": row["paused"],
        "exit_code": row["exit_code"],
        "attempts": row["attempts"],
        "output_lines": row["output_lines"],
        "output_truncated": row["output_truncated"],
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "duration": row["duration"],
    }


def event_data(run_id: str, event: Mapping[str, Any]) -> EventData:
    """A ``RunEvent`` row (``id``, ``kind``, ``timestamp``, ``data``) as ``event`` data."""
    return {
        "run_id": run_id,
        "id": event["id"],
        "kind": event["kind"],
        "timestamp": event["timestamp"].isoformat(),
        "data": event["data"],
    }


# What the fallback poll compares, per run: its row's state and output counters (the
# runner's heartbeats keep those current) and its newest event.
FINGERPRINT_STATE = ("status", "run_status", "paused", "attempts", "finished_at")
FINGERPRINT_OUTPUT = ("output_lines", "output_bytes")


class Fingerprint(NamedTuple):
    state: tuple[Any, ...]  # FINGERPRINT_STATE
    output: tuple[Any, ...]  # FINGERPRINT_OUTPUT
    newest_event: int | None


def _fingerprints(run_ids: list[str]) -> dict[str, Fingerprint]:
    """One read for the fingerprints of many runs (chunked for SQLite's variable limit)."""
    found: dict[str, Fingerprint] = {}
    width = len(FINGERPRINT_STATE)
    for start in range(0, len(run_ids), 900):
        chunk = run_ids[start : start + 900]
        newest = dict(
            RunEvent.objects.filter(run_id__in=chunk)
            .values("run_id")
            .annotate(newest=Max("id"))
            .values_list("run_id", "newest")
        )
        rows = Run.objects.filter(pk__in=chunk).values_list("pk", *FINGERPRINT_STATE, *FINGERPRINT_OUTPUT)
        for pk, *fields in rows:
            found[str(pk)] = Fingerprint(tuple(fields[:width]), tuple(fields[width:]), newest.get(pk))
    return found


class FallbackPoller:
    """The safety net of every :class:`RunWatch` on one event loop, in one task.

    Every ``STATE_FALLBACK`` seconds it reads the fingerprints of all the watched runs
    with one query (plus one for their newest events) and pokes the subscription of each
    watch whose run changed since its last look — ``"s"`` for its state or events, ``"o"``
    for its output — as the lost wake-up would have. A watch's first look pokes both (a
    change between its first read and that look is never missed). A run gone pokes
    ``"s"``: the watch reads it and ends. Each watch used to poll on its own (the row
    every 5 s, the store every 2 s): with 200 sockets, ~30 % of daphne's CPU at steady
    state for reads that almost never found anything.
    """

    _by_loop: dict[asyncio.AbstractEventLoop, FallbackPoller] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.watches: dict[RunWatch, Fingerprint | None] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of_running_loop(cls) -> FallbackPoller:
        loop = asyncio.get_running_loop()
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(loop)
        return poller

    def add(self, watch: RunWatch) -> None:
        self.watches[watch] = None
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._serve())

    def remove(self, watch: RunWatch) -> None:
        self.watches.pop(watch, None)
        if not self.watches:
            if self.task is not None:
                self.task.cancel()
                self.task = None
            self._by_loop.pop(self.loop, None)

    async def _serve(self) -> None:
        while self.watches:
            await asyncio.sleep(ev.STATE_FALLBACK)
            await self.poll()

    async def poll(self) -> None:
        """One look at every watched run (a failed read is retried at the next one)."""
        watches = list(self.watches)
        if not watches:
            return
        try:
            found = await live_read(_fingerprints)(sorted({w.run_id for w in watches}))
        except Exception:
            logger.exception("The live views' fallback poll failed")
            return
        for watch in watches:
            if watch not in self.watches or watch.wakeups is None:
                continue
            seen, now = self.watches[watch], found.get(watch.run_id)
            self.watches[watch] = now
            if now is None or seen is None:
                watch.wakeups.poke(ev.STATE)
                if now is not None:
                    watch.wakeups.poke(ev.OUTPUT)
                continue
            if now.output != seen.output:
                watch.wakeups.poke(ev.OUTPUT)
            if (now.state, now.newest_event) != (seen.state, seen.newest_event):
                watch.wakeups.poke(ev.STATE)


# The sample values the state statements are compiled with (any: they are slots).
_SAMPLE_RUN = uuid.UUID("5c819701-0000-4000-8000-000000000001")
_SAMPLE_AFTER = 5_819_701_000_001


# The two reads of :func:`read_state`, compiled once per connection: read on every state
# wake-up of every socket, they cost ~1 ms through the ORM and ~0.07 ms like this.
_RUN_STATUS = KeptRead(
    "runs.live.status",
    lambda run: Run.objects.filter(pk=run).values(*STATUS_FIELDS),
    samples={"run": _SAMPLE_RUN},
    fields={"run": Run._meta.pk},
)
_RUN_EVENTS = KeptRead(
    "runs.live.events",
    lambda run, after: RunEvent.objects.filter(run_id=run, id__gt=after)
    .order_by("id")
    .values("id", "kind", "timestamp", "data"),
    samples={"run": _SAMPLE_RUN, "after": _SAMPLE_AFTER},
    fields={"run": Run._meta.pk},
)


def read_state(run_id: str, *, after_event: int = 0) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A run's ``STATUS_FIELDS`` (None: no such run) and its events after ``after_event``,
    as ``.values()`` gives them."""
    conn = connections[Run.objects.db]
    run = uuid.UUID(run_id)
    rows = _RUN_STATUS.rows(conn, run=run)
    return (rows[0] if rows else None), _RUN_EVENTS.rows(conn, run=run, after=after_event)


def run_exists(run_id: str) -> bool:
    """Is there a run with this id (a malformed id: no)? One precompiled read."""
    try:
        pk = uuid.UUID(run_id)
    except ValueError:
        return False
    return bool(_RUN_STATUS.rows(connections[Run.objects.db], run=pk))


class RunWatch:
    """Messages for one run, from line ``after`` on, until it has finished.

    Waits on the run's bus channel: an output wake-up (``"o"``) reads new lines, a
    state wake-up (``"s"``) reads the row and new events at once; the bus's ``LIVE``
    (Redis confirmed the subscription) reads the lines again, and the row too unless a
    read of it began once the subscription was live. Wake-ups that arrive
    while messages are being sent are kept by the subscription and handled next, never
    cleared unread. A wake-up the bus lost is made up for by the process's
    :class:`FallbackPoller` (one read for all the watches every ``STATE_FALLBACK``).
    """

    def __init__(self, run: Run, *, after: int = 0, batch: bool = False):
        self.run_id = str(run.pk)
        self.follower = LogFollower(run.output_dir, after=after)
        # Local files: the live check and read on the event loop (see _read_lines).
        self._local = isinstance(self.follower.reader.files, LocalFiles)
        self.batch = batch  # log_batch messages instead of one log_entry per line
        self._status: StatusData | None = None
        self._last_event_id = 0
        self.wakeups: bus.Subscription | None = None
        self._held: contextlib.AsyncExitStack | None = None  # the subscription, once entered
        self._first: tuple[dict[str, Any] | None, list[dict[str, Any]]] | None = None  # open()'s read
        self._first_live = False

    @property
    def after(self) -> int:
        return self.follower.after

    def _poll_if_changed(self) -> list[Line]:
        return self.follower.poll(limit=BATCH_LINES) if self.follower.changed() else []

    async def _read_lines(self) -> list[Line]:
        # What a wake-up reads: from local files on the event loop (a few stats and small
        # reads cost less than the trip to a thread and back, and the parsing holds the
        # GIL wherever it runs: with 200 runs each printing a line a second the trips were
        # a tenth of daphne's time); the database store's answer in a thread (never a
        # query on the loop).
        if self._local:
            return self._poll_if_changed()
        return await asyncio.to_thread(self._poll_if_changed)

    @live_read
    def _read_state(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return read_state(self.run_id, after_event=self._last_event_id)

    def _line_messages(self, lines: list[Line]) -> list[Message]:
        return [log_entry_message(line_data(self.run_id, line)) for line in lines]

    def _chunks_if_changed(self, *, drain: bool) -> list[Chunk]:
        if not drain and not self.follower.changed():
            return []
        return self.follower.poll_chunks(max_bytes=BATCH_BYTES)

    async def _lines(self, *, drain: bool) -> AsyncGenerator[Message, None]:
        """New lines, batch by batch, read as fast as they are sent (a full batch means
        there is more). ``drain``: read even if the cheap check sees no change."""
        if self.batch:
            # Until the store has nothing new (a read may stop short of what is there).
            while True:
                chunks = await asyncio.to_thread(partial(self._chunks_if_changed, drain=drain))
                if not chunks:
                    return
                yield log_batch_message(batch_data(self.run_id, chunks))
        while True:
            if drain:
                lines = await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)
            else:
                lines = await self._read_lines()
            if not lines:
                return
            for message in self._line_messages(lines):
                yield message
            if len(lines) < BATCH_LINES and not drain:
                return

    async def _subscribe(self) -> bus.Subscription:
        # Subscribed before the first read: a change made after that read wakes us.
        if self.wakeups is None:
            held = contextlib.AsyncExitStack()
            self.wakeups = await held.enter_async_context(bus.subscribe(run_channel(self.run_id)))
            self._held = held
        return self.wakeups

    async def open(self) -> bool:
        """Subscribe and read the run's row: False if there is no such run (the watch is
        closed then). :meth:`messages` goes on from this read instead of making its own: a
        websocket's handshake learns whether the run exists without a read (and a trip to a
        thread) of its own."""
        wakeups = await self._subscribe()
        try:
            self._first_live = wakeups.live
            self._first = await self._read_state()
        except BaseException:
            await self.close()
            raise
        if self._first[0] is None:
            await self.close()
            return False
        return True

    async def close(self) -> None:
        """Leave the run's channel (idempotent; :meth:`messages` does it when it ends).
        For a watch opened and then never followed: a socket closed in its handshake."""
        held, self._held = self._held, None
        self.wakeups = None
        if held is not None:
            await held.aclose()

    async def messages(self, *, include_events: bool = True) -> AsyncGenerator[Message, None]:
        wakeups = await self._subscribe()
        poller = FallbackPoller.of_running_loop()
        poller.add(self)
        followed = self._follow(wakeups, include_events=include_events)
        try:
            async for message in followed:
                yield message
        finally:
            await followed.aclose()
            poller.remove(self)
            await self.close()

    async def _follow(
        self, wakeups: bus.Subscription, *, include_events: bool
    ) -> AsyncGenerator[Message, None]:
        want_lines = want_state = True
        # A state read has begun since the subscription was live: a LIVE wake-up (Redis
        # confirmed it) then asks only for the lines (a cheap check), not the row again.
        state_live = False
        while True:
            if want_lines:
                want_lines = False
                async for message in self._lines(drain=False):
                    yield message
            if want_state:
                want_state = False
                if self._first is not None:  # open() read it, once subscribed
                    state_live = self._first_live
                    (row, events), self._first = self._first, None
                else:
                    state_live = state_live or wakeups.live
                    row, events = await self._read_state()
                if row is None:
                    yield error_message({"run_id": self.run_id, "error_message": "The run was deleted."})
                    return
                if include_events:
                    for event in events:
                        yield event_message(event_data(self.run_id, event))
                if events:
                    self._last_event_id = events[-1]["id"]
                snapshot = status_data(row, self.run_id)
                if snapshot != self._status:
                    self._status = snapshot
                    yield status_message(snapshot)
                if row["status"] in TERMINAL:
                    # Everything the runner wrote is in the store now: drain, then finish.
                    async for message in self._lines(drain=True):
                        yield message
                    yield execution_completed_message(
                        {
                            "run_id": self.run_id,
                            "status": row["status"],
                            "run_status": row["run_status"],
                            "exit_code": row["exit_code"],
                            "duration_seconds": row["duration"],
                            "completed_at": snapshot["finished_at"],
                            "last_offset": self.follower.after,
                        },
                    )
                    return
            # Wake-ups that came while we were sending are still pending: no wait.
            got = await wakeups.wait(WAIT_SLICE)
            if ev.STATE in got or (bus.LIVE in got and not state_live):
                want_state = True  # LIVE: subscribed only now; what changed before, read again
            if got - {ev.STATE}:
                want_lines = True


# -- the runs feed -----------------------------------------------------------------------

FEED_FIELDS = (
    "id",
    "script_path",
    "status",
    "run_status",
    "paused",
    "exit_code",
    "attempts",
    "correlation_id",
    "created_at",
    "started_at",
    "finished_at",
    "duration",
    "output_lines",
    "source",
    "created_by__username",
    "error_summary",
)


def feed_run_data(row: Mapping[str, Any]) -> FeedRunData:
    """A run's ``FEED_FIELDS`` row (from ``.values()``) as run_created/run_updated data."""
    correlation_id = row["correlation_id"]
    return {
        "id": str(row["id"]),
        "script_path": row["script_path"],
        "status": row["status"],
        "run_status": row["run_status"],
        "paused": row["paused"],
        "exit_code": row["exit_code"],
        "attempts": row["attempts"],
        "correlation_id": str(correlation_id) if correlation_id is not None else None,
        "created_at": row["created_at"].isoformat(),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "duration": row["duration"],
        "output_lines": row["output_lines"],
        "source": row["source"],
        "created_by": row["created_by__username"],
        # Why it did not succeed (with its reason: a graceful stop reads "stopped").
        "error_summary": row["error_summary"],
    }


def stats_data(counts: Mapping[str, Any]) -> StatsData:
    """``runs.selectors.run_counts()`` as ``stats`` data."""
    return {
        "total": counts["total"],
        "last_24h": counts["last_24h"],
        "completed": counts["completed"],
        "failed": counts["failed"],
        "running": counts["running"],
        "queued": counts["queued"],
        "success_rate": counts["success_rate"],
    }


# Other messages on the feed, from apps above runs (which never imports them): each
# source returns ``(key, message)`` pairs, the key unique within the source.
FeedItem = tuple[str, Message]
FeedSource = Callable[[], Iterable[FeedItem]]
FEED_SOURCES: dict[str, FeedSource] = {}


def feed_source_register(name: str, source: FeedSource) -> None:
    """Show ``source``'s messages on the runs feed (``/ws/runs/``).

    Called from the registering app's ``AppConfig.ready()`` (library: ``scan_progress``).
    ``source()`` runs in a thread with database access at every feed poll; a message is
    sent when its data differs from the last one sent under the same key. Registering
    a name again replaces its source.
    """
    FEED_SOURCES[name] = source


class RunsFeed:
    """``run_created`` / ``run_updated`` / ``stats`` for the runs list, and the
    messages of the registered ``FEED_SOURCES`` (library scans' ``scan_progress``).

    Watches the newest ``window`` runs plus every active one; reads the database when
    a run changed (a wake-up on ``RUNS_CHANNEL``; at most every ``FEED_MIN_GAP``
    seconds), else every ``FEED_POLL`` seconds, and sends what changed.
    """

    def __init__(self, *, window: int = 100):
        self.window = window
        self._known: dict[str, FeedRunData] = {}
        self._stats: StatsData | None = None
        self._sources_known: dict[tuple[str, str], object] = {}
        self._primed = False

    @live_read
    def _from_sources(self) -> list[tuple[tuple[str, str], Message]]:
        return [((name, key), item) for name, source in FEED_SOURCES.items() for key, item in source()]

    @live_read
    def _snapshot(self) -> tuple[list[FeedRunData], StatsData]:
        recent = list(Run.objects.order_by("-created_at").values(*FEED_FIELDS)[: self.window])
        ids = {r["id"] for r in recent}
        active = [
            r
            for r in Run.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).values(*FEED_FIELDS)
            if r["id"] not in ids
        ]
        known_ids = [k for k in self._known if k not in {str(i) for i in ids}]
        tracked = list(Run.objects.filter(pk__in=known_ids).values(*FEED_FIELDS)) if known_ids else []
        return [feed_run_data(r) for r in recent + active + tracked], stats_data(run_counts())

    async def messages(self) -> AsyncIterator[Message]:
        loop = asyncio.get_running_loop()
        async with bus.subscribe(RUNS_CHANNEL) as wakeups:
            while True:
                began = loop.time()
                rows, stats = await self._snapshot()
                for row in reversed(rows):
                    previous = self._known.get(row["id"])
                    if previous == row:
                        continue
                    self._known[row["id"]] = row
                    if not self._primed:
                        continue
                    yield run_created_message(row) if previous is None else run_updated_message(row)
                if stats != self._stats:
                    self._stats = stats
                    yield stats_message(stats)
                for key, item in await self._from_sources():
                    if self._sources_known.get(key) != item["data"]:
                        self._sources_known[key] = item["data"]
                        yield item
                self._primed = True
                # Coalesce: changes during the gap are read together by the next snapshot.
                await asyncio.sleep(max(0.0, began + ev.FEED_MIN_GAP - loop.time()))
                await wakeups.wait(ev.FEED_POLL)
