"""Custom metrics a script reports on stdout: ``::metric name=value`` lines.

Plain Python (no Django): the output store (``runs.logstore``) feeds every stdout chunk to
a :class:`MetricCapture` while it writes it. A run that prints no metric pays one
substring test per chunk (``b"::metric " in data``); only chunks holding one are parsed.

Rules (issue 12): the line starts with ``::metric `` (trailing spaces and ``\\r`` are
forgiven), the name matches :data:`METRIC_NAME` and is not a built-in metric (those are
measured by ScriptOps, a script cannot override them), the value is a finite number. A run
keeps the last value per name and at most :data:`MAX_CUSTOM_METRICS` names.
"""

from __future__ import annotations

import math
import re
from typing import Final

PREFIX: Final = b"::metric "
METRIC_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_CUSTOM_METRICS: Final = 100
# A line longer than this is not a metric line (name <= 64, a float's text is short).
MAX_LINE: Final = 200

# analytics.models.BUILTIN_METRICS, repeated here so this module needs no Django; a test
# keeps the two equal.
BUILTIN_NAMES: Final = frozenset(
    {
        "duration_seconds",
        "cpu_time_seconds",
        "peak_rss_mb",
        "avg_cpu_percent",
        "exit_code",
        "output_bytes",
        "attempts",
        "cost",
    }
)


class MetricLineInvalid(ValueError):
    """A ``::metric`` line that cannot be taken (``str(e)`` says why, for the log)."""


def metric_line_check(line: bytes) -> tuple[str, float] | None:
    """The (name, value) of a metric line; None if ``line`` is not one; raises
    :class:`MetricLineInvalid` for a ``::metric`` line that breaks the rules."""
    if not line.startswith(PREFIX):
        return None
    if len(line) > MAX_LINE:
        raise MetricLineInvalid(f"longer than {MAX_LINE} bytes")
    body = line[len(PREFIX) :].strip()
    name_raw, sep, value_raw = body.partition(b"=")
    if not sep:
        raise MetricLineInvalid("expected name=value")
    try:
        name = name_raw.strip().decode("ascii")
    except UnicodeDecodeError:
        raise MetricLineInvalid("the name is not ASCII") from None
    if not METRIC_NAME.match(name):
        raise MetricLineInvalid(f"bad name {name!r} (letters, digits, _ . -, at most 64)")
    if name in BUILTIN_NAMES:
        raise MetricLineInvalid(f"{name!r} is a built-in metric")
    try:
        value = float(value_raw.strip())
    except ValueError:
        raise MetricLineInvalid(f"the value of {name!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricLineInvalid(f"the value of {name!r} is not finite")
    return name, value


def parse_metric_line(line: bytes) -> tuple[str, float] | None:
    """``(name, value)`` of a valid ``::metric name=value`` line (without its newline),
    else None."""
    try:
        return metric_line_check(line)
    except MetricLineInvalid:
        return None


def _may_hold_metric(data: bytes | memoryview) -> bool:
    """False when ``data`` surely holds no ``::metric`` line, fast: a one-byte search (a
    memchr) first, the prefix only if a colon is there. A memoryview (the engine's slice
    of a read) is searched through the buffer it views: ``in`` on a memoryview would
    compare its items one by one; a hit outside the slice only costs a closer look."""
    if isinstance(data, memoryview):
        base = data.obj
        hay = base if isinstance(base, (bytes, bytearray)) else bytes(data)
    else:
        hay = data
    return b":" in hay and PREFIX in hay


class MetricCapture:
    """The custom metrics of one run, taken from its stdout chunks as they are written.

    Chunks are usually whole lines, but a long line or a partial one flushed after a pause
    reaches the store in pieces: a line that ends one chunk without its newline and could
    begin a metric line is kept and completed by the next chunk.
    """

    __slots__ = ("_midline", "_tail", "first_invalid", "invalid", "values")

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.invalid = 0
        self.first_invalid: str | None = None
        self._tail = b""  # the unfinished last line of the previous chunk, if it may be a metric
        self._midline = False  # inside a line that began earlier and cannot be a metric line

    def feed(self, data: bytes | memoryview) -> str | None:
        """Take the metric lines of a stdout chunk. Returns a message for the log the first
        time an invalid ``::metric`` line is met (only then: one line, not a flood)."""
        if not data:
            return None
        if not self._tail and not _may_hold_metric(data):  # the common case: no metric here
            if data[-1] == 10:  # ends a line
                self._midline = False
            else:
                self._unfinished(data)
            return None
        before = self.invalid
        buf = self._tail + bytes(data)
        self._tail = b""
        pos = 0  # the start of the first line this chunk begins
        if self._midline:
            pos = buf.find(b"\n") + 1
            if not pos:
                return None  # still inside the line begun earlier
            self._midline = False
        # Only lines holding the prefix are looked at: no split of a large chunk.
        found = buf.find(PREFIX, pos)
        while found >= 0:
            end = buf.find(b"\n", found)
            if end < 0:
                break  # the unfinished last line: see below
            if found == pos or buf[found - 1] == 10:  # at the start of a line
                self._take(buf[found:end].rstrip(b"\r"))
            found = buf.find(PREFIX, end + 1)
        if buf[-1] != 10:
            self._unfinished(buf)
        return self._first_report(before)

    def finish(self) -> str | None:
        """The output has ended: an unfinished last line counts as a line."""
        tail, self._tail = self._tail, b""
        self._midline = False
        before = self.invalid
        if tail:
            self._take(tail.rstrip(b"\r"))
        return self._first_report(before)

    def _first_report(self, before: int) -> str | None:
        if self.invalid and not before:
            return f"ignored an invalid ::metric line ({self.first_invalid}); later ones are not reported"
        return None

    def _unfinished(self, data: bytes | memoryview) -> None:
        """``data`` ends without a newline: keep its last line if it may be a metric line.
        Only its end is looked at (no copy of a large chunk)."""
        end = bytes(data[-(MAX_LINE + 1) :])
        cut = end.rfind(b"\n")
        if cut < 0 and (len(data) > MAX_LINE or self._midline):
            self._midline = True  # a long line, or more of one begun earlier
            return
        last = end[cut + 1 :]
        if last.startswith(PREFIX) or PREFIX.startswith(last):
            self._tail, self._midline = last, False
        else:
            self._midline = True

    def _take(self, line: bytes) -> None:
        try:
            found = metric_line_check(line)
        except MetricLineInvalid as exc:
            self._refuse(str(exc))
            return
        if found is None:
            return
        name, value = found
        if name not in self.values and len(self.values) >= MAX_CUSTOM_METRICS:
            self._refuse(f"more than {MAX_CUSTOM_METRICS} metric names; {name!r} dropped")
            return
        self.values[name] = value

    def _refuse(self, why: str) -> None:
        self.invalid += 1
        if self.first_invalid is None:
            self.first_invalid = why
