"""The live contract: websocket/SSE message types, and the wake-up notifier.

Every message is ``{"type", "data", "timestamp"}`` (seed 002). The data of a live
view always comes from the persisted state — the output store and the run row —
never from the notification itself: a notification only says "look again now".
That makes delivery lossless and duplicate-free whatever the transport does, and
keeps memory bounded when 100,000 lines arrive at once (clients are sent coalesced
batches read from the store).

Transport of the wake-ups:

- default (no external server): none — live views poll the store every
  ``LIVE_POLL`` seconds (a ``stat`` of one index file) and the database every
  ``STATUS_POLL`` seconds;
- with ``SCRIPTOPS_REDIS_URL``: the runner and the services ``PUBLISH`` to Redis
  channels, and live views wake on them at once (polling stays as a fallback).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from django.conf import settings

logger = logging.getLogger(__name__)

LIVE_POLL = 0.01
STATUS_POLL = 0.25
FEED_POLL = 0.5
NOTIFY_MIN_GAP = 0.002
RUNS_CHANNEL = "scriptops:runs"


def run_channel(run_id: str) -> str:
    return f"scriptops:run:{run_id}"


# -- messages -------------------------------------------------------------------------


class LogEntryData(TypedDict):
    run_id: str
    offset: int  # line number, monotonically increasing across streams
    stream: str  # stdout | stderr | system
    content: str
    timestamp: float


class LogBatchData(TypedDict):
    run_id: str
    entries: list[LogEntryData]
    first_offset: int
    last_offset: int


class StatusData(TypedDict, total=False):
    run_id: str
    status: str
    run_status: str | None
    paused: bool
    exit_code: int | None
    attempts: int
    output_lines: int
    output_truncated: bool


class ExecutionCompletedData(TypedDict):
    run_id: str
    status: str
    run_status: str | None
    exit_code: int | None
    duration_seconds: float | None
    completed_at: str | None


class ScanProgressData(TypedDict, total=False):
    """A library scan's progress (``library.selectors.SCAN_FEED_FIELDS``), on the feed."""

    id: str
    root_id: int
    state: str  # queued | running | completed | failed
    phase: str  # walking | reading | sweeping | done | failed
    files_total: int | None  # known once the walk is done
    files_processed: int
    files_seen: int
    files_added: int
    files_updated: int
    files_unchanged: int
    files_missing: int
    files_removed: int
    files_skipped: int
    error_count: int
    progress: float | None  # percent of files_total read; null while walking
    duration: float | None  # seconds, once finished
    started_at: str | None
    finished_at: str | None
    message: str


class Message(TypedDict):
    type: Literal[
        "connection_established",
        "log_entry",
        "log_batch",
        "status",
        "event",
        "execution_completed",
        "run_created",
        "run_updated",
        "stats",
        "scan_progress",
        "pong",
        "subscribed",
        "unsubscribed",
        "error",
    ]
    data: Any
    timestamp: str


def message(kind: str, data: Any) -> dict[str, Any]:
    return {"type": kind, "data": data, "timestamp": datetime.now(UTC).isoformat()}


# -- wake-up notifier -------------------------------------------------------------------

_redis_client: Any = None


def _redis() -> Any:
    global _redis_client
    if not settings.REDIS_URL:
        return None
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
    return _redis_client


def notify(channel: str, payload: str = "1") -> None:
    """Publish a wake-up; never raises (live views fall back to polling)."""
    client = _redis()
    if client is None:
        return
    try:
        client.publish(channel, payload)
    except Exception as exc:  # noqa: BLE001 - a Redis hiccup must not fail a run
        logger.debug("notify %s failed: %s", channel, exc)


class OutputNotifier:
    """Coalesces output wake-ups of one run to at most one per ``NOTIFY_MIN_GAP``.

    ``pending`` ones are sent by :meth:`flush`, which the runner calls from its
    control poll (every 50 ms) and at the end, so the last lines are never stranded.
    """

    def __init__(self, run_id: str):
        self.channel = run_channel(run_id)
        self.enabled = bool(settings.REDIS_URL)
        self._last = 0.0
        self._pending = False

    def output(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= NOTIFY_MIN_GAP:
            self._last = now
            self._pending = False
            notify(self.channel, "o")
        else:
            self._pending = True

    def flush(self) -> None:
        if self.enabled and self._pending:
            self._pending = False
            self._last = time.monotonic()
            notify(self.channel, "o")


def run_changed(run_id: str) -> None:
    """A run's state changed (status, paused, events): wake its viewers and the feed."""
    notify(run_channel(run_id), "s")
    notify(RUNS_CHANNEL, run_id)
