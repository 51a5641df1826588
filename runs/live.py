"""Following runs live, for websockets and server-sent events.

:class:`RunWatch` turns one run's persisted state into a stream of messages
(:mod:`runs.events` contract): output lines read from the store with a
:class:`~runs.logstore.LogFollower` (resumable from any line, in coalesced batches),
status changes and new events read from the database, and a final
``execution_completed``. :class:`RunsFeed` does the same for the runs list.
Both wake on Redis notifications when configured, and poll otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from runs.events import (
    FEED_POLL,
    LIVE_POLL,
    RUNS_CHANNEL,
    STATUS_POLL,
    EventData,
    FeedRunData,
    LogEntryData,
    Message,
    StatsData,
    StatusData,
    error_message,
    event_message,
    execution_completed_message,
    log_entry_message,
    run_channel,
    run_created_message,
    run_updated_message,
    stats_message,
    status_message,
)
from runs.logstore import Line, LogFollower
from runs.models import TERMINAL, Run, RunEvent, RunStatus
from runs.selectors import run_counts

BATCH_LINES = 2000
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


class Waker:
    """An asyncio event set by Redis pub/sub messages on some channels (if Redis is on)."""

    def __init__(self, *channels: str):
        self.event = asyncio.Event()
        self.channels = list(channels)
        self._task: asyncio.Task[None] | None = None
        self._pubsub: Any = None

    async def start(self) -> None:
        if not settings.REDIS_URL or not self.channels:
            return
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*self.channels)
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        with contextlib.suppress(Exception):
            async for _msg in self._pubsub.listen():
                self.event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()


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


class RunWatch:
    """Messages for one run, from line ``after`` on, until it has finished."""

    def __init__(self, run: Run, *, after: int = 0, poll: float | None = None):
        self.run_id = str(run.pk)
        self.follower = LogFollower(run.output_dir, after=after)
        self.poll = poll if poll is not None else (STATUS_POLL if settings.REDIS_URL else LIVE_POLL)
        self.waker = Waker(run_channel(self.run_id))
        self._status: StatusData | None = None
        self._last_event_id = 0
        self._next_status_check = 0.0

    @property
    def after(self) -> int:
        return self.follower.after

    async def _read_lines(self) -> list[Line]:
        if not self.follower.changed():
            return []
        return await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)

    @sync_to_async
    def _read_state(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        row = Run.objects.filter(pk=self.run_id).values(*STATUS_FIELDS).first()
        events: list[dict[str, Any]] = [
            dict(e)
            for e in RunEvent.objects.filter(run_id=self.run_id, id__gt=self._last_event_id)
            .order_by("id")
            .values("id", "kind", "timestamp", "data")
        ]
        return row, events

    async def messages(self, *, include_events: bool = True) -> AsyncGenerator[Message, None]:
        await self.waker.start()
        loop = asyncio.get_running_loop()
        try:
            while True:
                lines = await self._read_lines()
                while lines:
                    for line in lines:
                        yield log_entry_message(line_data(self.run_id, line))
                    lines = await self._read_lines() if len(lines) >= BATCH_LINES else []
                now = loop.time()
                if now < self._next_status_check and not self.waker.event.is_set():
                    await self.waker.wait(self.poll)
                    continue
                self._next_status_check = now + STATUS_POLL
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
                    lines = await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)
                    while lines:
                        for line in lines:
                            yield log_entry_message(line_data(self.run_id, line))
                        lines = await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)
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
                await self.waker.wait(self.poll)
        finally:
            await self.waker.stop()


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

    Watches the newest ``window`` runs plus every active one; polls the database every
    ``FEED_POLL`` seconds (or on a Redis wake-up) and sends what changed.
    """

    def __init__(self, *, window: int = 100):
        self.window = window
        self.waker = Waker(RUNS_CHANNEL)
        self._known: dict[str, FeedRunData] = {}
        self._stats: StatsData | None = None
        self._sources_known: dict[tuple[str, str], object] = {}
        self._primed = False

    @sync_to_async
    def _from_sources(self) -> list[tuple[tuple[str, str], Message]]:
        return [((name, key), item) for name, source in FEED_SOURCES.items() for key, item in source()]

    @sync_to_async
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
        await self.waker.start()
        try:
            while True:
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
                await self.waker.wait(FEED_POLL)
        finally:
            await self.waker.stop()
