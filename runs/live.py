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
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from runs.events import FEED_POLL, LIVE_POLL, RUNS_CHANNEL, STATUS_POLL, message, run_channel
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


def line_data(run_id: str, line: Line) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "offset": line.number,
        "stream": line.stream,
        "content": line.text,
        "timestamp": line.ts,
    }


def status_data(run: dict[str, Any], run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {"run_id": run_id}
    for name in STATUS_FIELDS:
        value: Any = run.get(name)
        data[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return data


class RunWatch:
    """Messages for one run, from line ``after`` on, until it has finished."""

    def __init__(self, run: Run, *, after: int = 0, poll: float | None = None):
        self.run_id = str(run.pk)
        self.follower = LogFollower(run.output_dir, after=after)
        self.poll = poll if poll is not None else (STATUS_POLL if settings.REDIS_URL else LIVE_POLL)
        self.waker = Waker(run_channel(self.run_id))
        self._status: dict[str, Any] | None = None
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

    async def messages(self, *, include_events: bool = True) -> AsyncIterator[dict[str, Any]]:
        await self.waker.start()
        loop = asyncio.get_running_loop()
        try:
            while True:
                lines = await self._read_lines()
                while lines:
                    for line in lines:
                        yield message("log_entry", line_data(self.run_id, line))
                    lines = await self._read_lines() if len(lines) >= BATCH_LINES else []
                now = loop.time()
                if now < self._next_status_check and not self.waker.event.is_set():
                    await self.waker.wait(self.poll)
                    continue
                self._next_status_check = now + STATUS_POLL
                row, events = await self._read_state()
                if row is None:
                    yield message("error", {"run_id": self.run_id, "error_message": "The run was deleted."})
                    return
                if include_events:
                    for event in events:
                        yield message(
                            "event",
                            {
                                "run_id": self.run_id,
                                "id": event["id"],
                                "kind": event["kind"],
                                "timestamp": event["timestamp"].isoformat(),
                                "data": event["data"],
                            },
                        )
                if events:
                    self._last_event_id = events[-1]["id"]
                snapshot = status_data(row, self.run_id)
                if snapshot != self._status:
                    self._status = snapshot
                    yield message("status", snapshot)
                if row["status"] in TERMINAL:
                    # Everything the runner wrote is in the store now: drain, then finish.
                    lines = await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)
                    while lines:
                        for line in lines:
                            yield message("log_entry", line_data(self.run_id, line))
                        lines = await asyncio.to_thread(self.follower.poll, limit=BATCH_LINES)
                    yield message(
                        "execution_completed",
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


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "created_by__username":
            key = "created_by"
        out[key] = (
            value.isoformat()
            if hasattr(value, "isoformat")
            else (str(value) if key in ("id", "correlation_id") and value is not None else value)
        )
    return out


class RunsFeed:
    """``run_created`` / ``run_updated`` / ``stats`` for the runs list, and
    ``scan_progress`` for library scans (active or just ended).

    Watches the newest ``window`` runs plus every active one; polls the database every
    ``FEED_POLL`` seconds (or on a Redis wake-up) and sends what changed.
    """

    def __init__(self, *, window: int = 100):
        self.window = window
        self.waker = Waker(RUNS_CHANNEL)
        self._known: dict[str, dict[str, Any]] = {}
        self._stats: dict[str, Any] | None = None
        self._scans_known: dict[str, dict[str, Any]] = {}
        self._primed = False

    @sync_to_async
    def _scans(self) -> list[dict[str, Any]]:
        # Library scans report their progress on this feed too (``scan_progress``).
        from library.selectors import scan_feed_rows

        return [_jsonable(row) for row in scan_feed_rows()]

    @sync_to_async
    def _snapshot(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        recent = list(Run.objects.order_by("-created_at").values(*FEED_FIELDS)[: self.window])
        ids = {r["id"] for r in recent}
        active = [
            r
            for r in Run.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).values(*FEED_FIELDS)
            if r["id"] not in ids
        ]
        known_ids = [k for k in self._known if k not in {str(i) for i in ids}]
        tracked = list(Run.objects.filter(pk__in=known_ids).values(*FEED_FIELDS)) if known_ids else []
        return [_jsonable(r) for r in recent + active + tracked], run_counts()

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
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
                    yield message("run_created" if previous is None else "run_updated", row)
                if stats != self._stats:
                    self._stats = stats
                    yield message("stats", stats)
                for scan in await self._scans():
                    if self._scans_known.get(scan["id"]) != scan:
                        self._scans_known[scan["id"]] = scan
                        yield message("scan_progress", scan)
                self._primed = True
                await self.waker.wait(FEED_POLL)
        finally:
            await self.waker.stop()
