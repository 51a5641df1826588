"""The live contract: websocket/SSE message types, and the wake-up notifier.

Every message is ``{"type", "data", "timestamp"}`` (seed 002). The data of a live
view always comes from the persisted state — the output store and the run row —
never from the notification itself: a notification only says "look again now".
That makes delivery lossless and duplicate-free whatever the transport does, and
keeps memory bounded when 100,000 lines arrive at once (clients are sent coalesced
batches read from the store).

Wake-ups go through :mod:`core.bus` (Unix datagram sockets in the data dir by default,
Redis pub/sub with ``SCRIPTOPS_REDIS_URL``): the runner publishes ``"o"`` on the run's
channel when output was stored and ``"s"`` when its state changed (and the run's id on
``RUNS_CHANNEL``); live views read at once, and poll only as a slow fallback
(``STATE_FALLBACK``, ``FEED_POLL``) for a wake-up the bus dropped.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from core import bus

logger = logging.getLogger(__name__)

# Fallback polls, for a wake-up that never came (a publisher killed before it sent one,
# Redis away for a moment) or a change nobody announced. The bus itself loses nothing (a
# full receiver's messages are held and merged), so these are rare safety nets. Every
# STATE_FALLBACK seconds one read per process looks at all the runs it follows
# (runs.live.FallbackPoller); polling per view cost daphne ~30 % of a core with 200 run
# sockets open (bench, N = 200).
STATE_FALLBACK = 5.0
FEED_POLL = 1.0
# The feed reads at most this often, however many runs change: a burst of 100 launches
# costs ~20 snapshots a second, not 100 per feed socket.
FEED_MIN_GAP = 0.05
NOTIFY_MIN_GAP = 0.002
# Wake-up payloads on a run's channel.
OUTPUT = "o"
STATE = "s"
RUNS_CHANNEL = "scriptops:runs"


def run_channel(run_id: str) -> str:
    return f"scriptops:run:{run_id}"


# -- messages -------------------------------------------------------------------------
#
# The whole websocket/SSE contract: a TypedDict for each message's ``data`` and for
# each envelope, and one constructor per message type. Producers (runs.live,
# runs.consumers, runs.streams, the feed sources other apps register) build every
# message through these, so mypy refuses a missing, misspelt or extra key.

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunConnectedData(TypedDict):
    run_id: str
    after: int  # the line the stream resumes after (``?after=``)


class FeedConnectedData(TypedDict):
    channel: Literal["runs"]


class LogEntryData(TypedDict):
    run_id: str
    offset: int  # line number, monotonically increasing across streams
    stream: str  # stdout | stderr | system
    content: str
    timestamp: float


class LogBatchData(TypedDict):
    """New lines, for clients that asked for ``?format=batch``: one message per read of
    the store (about 1 MiB at most), built without any per-line work.

    ``chunks``: ``[first_offset, stream, timestamp, text]`` each — consecutive lines of
    one stream from one read of the script's pipe, ``text`` being those lines joined by
    ``"\\n"`` (line ``first_offset + i`` is ``text.split("\\n")[i]``; the timestamp, in
    seconds since the epoch, is the read's). ``last_offset`` is where to resume."""

    run_id: str
    first_offset: int
    last_offset: int
    chunks: list[tuple[int, str, float, str]]


class StatusData(TypedDict):
    """A run's state (``runs.live.STATUS_FIELDS``); times are ISO 8601."""

    run_id: str
    status: str
    run_status: str | None
    paused: bool
    exit_code: int | None
    attempts: int
    output_lines: int
    output_truncated: bool
    started_at: str | None
    finished_at: str | None
    duration: float | None


class EventData(TypedDict):
    """One ``RunEvent`` row."""

    run_id: str
    id: int
    kind: str
    timestamp: str
    data: JsonValue


class ExecutionCompletedData(TypedDict):
    run_id: str
    status: str
    run_status: str | None
    exit_code: int | None
    duration_seconds: float | None
    completed_at: str | None
    last_offset: int  # the last line sent: resume after it and nothing is repeated


class FeedRunData(TypedDict):
    """A row of the runs list (``runs.live.FEED_FIELDS``), for run_created/run_updated."""

    id: str
    script_path: str
    status: str
    run_status: str | None
    paused: bool
    exit_code: int | None
    attempts: int
    correlation_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    duration: float | None
    output_lines: int
    source: str
    created_by: str | None  # the username
    error_summary: dict[str, Any] | None


class StatsData(TypedDict):
    """``runs.selectors.run_counts()``."""

    total: int
    last_24h: int
    completed: int
    failed: int
    running: int
    queued: int
    success_rate: float | None


class ScanProgressData(TypedDict):
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
    started_at: str | None
    finished_at: str | None
    message: str
    progress: float | None  # percent of files_total read; null while walking
    duration: float | None  # seconds, once finished


class RunRefData(TypedDict):
    run_id: str


class _ErrorText(TypedDict):
    error_message: str


# Not NotRequired[]: under ``from __future__ import annotations`` Python 3.11 would
# list run_id in __required_keys__ (the contract tests read those).
class ErrorData(_ErrorText, total=False):
    run_id: str  # when the error is about one run's stream


class ConnectionEstablishedMessage(TypedDict):
    type: Literal["connection_established"]
    data: RunConnectedData | FeedConnectedData
    timestamp: str


class LogEntryMessage(TypedDict):
    type: Literal["log_entry"]
    data: LogEntryData
    timestamp: str


class LogBatchMessage(TypedDict):
    type: Literal["log_batch"]
    data: LogBatchData
    timestamp: str


class StatusMessage(TypedDict):
    type: Literal["status"]
    data: StatusData
    timestamp: str


class EventMessage(TypedDict):
    type: Literal["event"]
    data: EventData
    timestamp: str


class ExecutionCompletedMessage(TypedDict):
    type: Literal["execution_completed"]
    data: ExecutionCompletedData
    timestamp: str


class RunCreatedMessage(TypedDict):
    type: Literal["run_created"]
    data: FeedRunData
    timestamp: str


class RunUpdatedMessage(TypedDict):
    type: Literal["run_updated"]
    data: FeedRunData
    timestamp: str


class StatsMessage(TypedDict):
    type: Literal["stats"]
    data: StatsData
    timestamp: str


class ScanProgressMessage(TypedDict):
    type: Literal["scan_progress"]
    data: ScanProgressData
    timestamp: str


class SubscribedMessage(TypedDict):
    type: Literal["subscribed"]
    data: RunRefData
    timestamp: str


class UnsubscribedMessage(TypedDict):
    type: Literal["unsubscribed"]
    data: RunRefData
    timestamp: str


class ErrorMessage(TypedDict):
    type: Literal["error"]
    data: ErrorData
    timestamp: str


class PongMessage(TypedDict):
    """The one message without ``data``: ``timestamp`` echoes the client's ping."""

    type: Literal["pong"]
    timestamp: JsonValue


# What a live view yields (a run's stream and the feed); consumers send these and pong.
Message = (
    ConnectionEstablishedMessage
    | LogEntryMessage
    | LogBatchMessage
    | StatusMessage
    | EventMessage
    | ExecutionCompletedMessage
    | RunCreatedMessage
    | RunUpdatedMessage
    | StatsMessage
    | ScanProgressMessage
    | SubscribedMessage
    | UnsubscribedMessage
    | ErrorMessage
)


def connection_established_message(
    data: RunConnectedData | FeedConnectedData,
) -> ConnectionEstablishedMessage:
    return {"type": "connection_established", "data": data, "timestamp": _now()}


def log_entry_message(data: LogEntryData) -> LogEntryMessage:
    return {"type": "log_entry", "data": data, "timestamp": _now()}


def log_batch_message(data: LogBatchData) -> LogBatchMessage:
    return {"type": "log_batch", "data": data, "timestamp": _now()}


def status_message(data: StatusData) -> StatusMessage:
    return {"type": "status", "data": data, "timestamp": _now()}


def event_message(data: EventData) -> EventMessage:
    return {"type": "event", "data": data, "timestamp": _now()}


def execution_completed_message(data: ExecutionCompletedData) -> ExecutionCompletedMessage:
    return {"type": "execution_completed", "data": data, "timestamp": _now()}


def run_created_message(data: FeedRunData) -> RunCreatedMessage:
    return {"type": "run_created", "data": data, "timestamp": _now()}


def run_updated_message(data: FeedRunData) -> RunUpdatedMessage:
    return {"type": "run_updated", "data": data, "timestamp": _now()}


def stats_message(data: StatsData) -> StatsMessage:
    return {"type": "stats", "data": data, "timestamp": _now()}


def scan_progress_message(data: ScanProgressData) -> ScanProgressMessage:
    return {"type": "scan_progress", "data": data, "timestamp": _now()}


def subscribed_message(data: RunRefData) -> SubscribedMessage:
    return {"type": "subscribed", "data": data, "timestamp": _now()}


def unsubscribed_message(data: RunRefData) -> UnsubscribedMessage:
    return {"type": "unsubscribed", "data": data, "timestamp": _now()}


def error_message(data: ErrorData) -> ErrorMessage:
    return {"type": "error", "data": data, "timestamp": _now()}


def pong_message(timestamp: JsonValue) -> PongMessage:
    return {"type": "pong", "timestamp": timestamp}


# -- server-sent events (runs.streams) ---------------------------------------------------
#
# Seed 003's frames are flat: the type beside the data's own keys, no envelope.


class SseLogEntry(LogEntryData):
    type: Literal["log_entry"]


class SseLogBatch(LogBatchData):
    type: Literal["log_batch"]


class SseStatus(StatusData):
    type: Literal["status"]


class SseExit(ExecutionCompletedData):
    type: Literal["exit"]
    code: int | None  # the exit code (also in exit_code)


class SseError(ErrorData):
    type: Literal["error"]


class SseQueued(TypedDict):
    type: Literal["queued"]
    run: dict[str, JsonValue]  # the run as the REST API shows it (RunSerializer)


SseFrame = SseLogEntry | SseLogBatch | SseStatus | SseExit | SseError | SseQueued


def sse_log_entry(data: LogEntryData) -> SseLogEntry:
    return {"type": "log_entry", **data}


def sse_log_batch(data: LogBatchData) -> SseLogBatch:
    return {"type": "log_batch", **data}


def sse_status(data: StatusData) -> SseStatus:
    return {"type": "status", **data}


def sse_exit(data: ExecutionCompletedData) -> SseExit:
    return {"type": "exit", "code": data["exit_code"], **data}


def sse_error(data: ErrorData) -> SseError:
    return {"type": "error", **data}


def sse_queued(run: dict[str, JsonValue]) -> SseQueued:
    return {"type": "queued", "run": run}


# -- wake-up notifier -------------------------------------------------------------------


def notify(channel: str, payload: str = "1") -> None:
    """Publish a wake-up on the bus; never raises (live views fall back to polling)."""
    bus.publish(channel, payload)


class OutputNotifier:
    """Coalesces output wake-ups of one run to at most one per ``NOTIFY_MIN_GAP``.

    ``pending`` ones are sent by :meth:`flush`, which the runner calls from its
    control poll (every 50 ms) and at the end, so the last lines are never stranded.
    """

    def __init__(self, run_id: str):
        self.channel = run_channel(run_id)
        self.enabled = True  # both bus backends carry it
        self._last = 0.0
        self._pending = False

    def output(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= NOTIFY_MIN_GAP:
            self._last = now
            self._pending = False
            notify(self.channel, OUTPUT)
        else:
            self._pending = True

    def flush(self) -> None:
        if self.enabled and self._pending:
            self._pending = False
            self._last = time.monotonic()
            notify(self.channel, OUTPUT)


def run_changed(run_id: str) -> None:
    """A run's state changed (status, paused, events): wake its viewers and the feed."""
    runs_changed([run_id])


def runs_changed(run_ids: list[str]) -> None:
    """:func:`run_changed` for each, in one publish (one round trip to Redis)."""
    bus.publish_many([message for run_id in run_ids for message in _changed(run_id)])


def _changed(run_id: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return (run_channel(run_id), STATE), (RUNS_CHANNEL, run_id)
