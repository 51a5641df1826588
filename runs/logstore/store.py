"""Append-only, size-capped storage of a run's output, readable while it grows.

The worker writes local files; any process reads them, or, with the database store
(``SCRIPTOPS_OUTPUT_STORE=database``), any host reads the copy the writer mirrors to the
database (:mod:`runs.logstore.database`). The logic here is the same for both: it reads
through :class:`~runs.logstore.files.Files`.

Layout of a run's directory::

    seg-000000.out   raw output bytes of all streams, in arrival order
    seg-000000.idx   one text record per write: "line nlines stream ts off length soff"

A *record* is one chunk of whole lines from one stream, read at one instant:

- ``line``   global number (1-based, across streams) of its first line,
- ``nlines`` lines in it (a final piece without newline counts as a line),
- ``stream`` ``o`` (stdout), ``e`` (stderr) or ``s`` (system markers such as attempts),
- ``ts``     UNIX time it was read from the pipe (the timestamp of each of its lines),
- ``off``    byte offset in the combined output, ``length`` its size,
- ``soff``   byte offset within its own stream.

The data is written before its index record, so a reader that trusts the index
never sees half a record. Segments roll every ``segment_bytes``; when the stored
total passes the cap, the oldest segments are deleted, so the store keeps the
*tail* and memory and disk stay bounded whatever the output size. What was
dropped is derivable from the first remaining record (its ``line`` and ``off``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analytics.metrics import MetricCapture
from runs.logstore.files import DATABASE, Files, open_files, output_store

if TYPE_CHECKING:
    from runs.logstore.database import Mirror

STREAM_CODES = {"stdout": "o", "stderr": "e", "system": "s"}
STREAM_NAMES = {v: k for k, v in STREAM_CODES.items()}
_SEG_RE = re.compile(r"^seg-(\d{6})\.out$")


@dataclass(frozen=True, slots=True)
class Record:
    line: int
    nlines: int
    stream: str  # "o", "e" or "s"
    ts: float
    off: int
    length: int
    soff: int
    segment: int
    seg_off: int

    @property
    def end_line(self) -> int:
        return self.line + self.nlines - 1


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    stream: str  # "stdout", "stderr" or "system"
    ts: float
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive lines of one stream from one read, as one text: ``first`` is the
    first line's number, ``text`` the lines joined by newlines (``count`` of them)."""

    first: int
    count: int
    stream: str  # "stdout", "stderr" or "system"
    ts: float
    text: str


def parse_index(raw: bytes, *, segment: int, base: int | None) -> tuple[list[Record], int | None]:
    """Parse complete index rows of ``segment``. ``base`` is the combined offset of the
    segment's first record (None if not seen yet: then the first row here sets it);
    returns the records and the base."""
    out: list[Record] = []
    for row in raw.splitlines():
        parts = row.split()
        if len(parts) != 7:
            continue  # not a record
        try:
            line, nlines, ts = int(parts[0]), int(parts[1]), float(parts[3])
            off, length, soff = int(parts[4]), int(parts[5]), int(parts[6])
        except ValueError:
            continue
        if base is None:
            base = off  # the segment's first record starts its data file
        out.append(Record(line, nlines, parts[2].decode(), ts, off, length, soff, segment, off - base))
    return out, base


def count_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _name(segment: int, suffix: str) -> str:
    return f"seg-{segment:06d}{suffix}"


class LogWriter:
    """Writes one run's output. Not thread-safe: one writer per run.

    With the database store every append is also handed to the process's shipper (an
    in-memory append: no database round trip here), and :meth:`close` returns once all
    of it is committed, so a run's terminal status never precedes its last output.
    """

    def __init__(self, directory: Path, *, cap_bytes: int, segment_bytes: int | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._mirror: Mirror | None = None
        if output_store() == DATABASE:
            from runs.logstore.database import Mirror

            self._mirror = Mirror(self.dir.name)
        self._idx_size = 0
        self.cap = cap_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(cap_bytes // 8, 8 * 1024 * 1024))
        self.total_bytes = 0
        self.total_lines = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.stream_bytes = {"o": 0, "e": 0, "s": 0}
        # The script's ``::metric name=value`` lines (issue 12), taken as stdout is written.
        self.metrics = MetricCapture()
        self._segments: list[tuple[int, int, int]] = []  # (number, bytes, lines)
        self._seg_no = -1
        self._out_fd = -1
        self._idx_fd = -1
        self._seg_size = 0
        self._seg_base = 0
        self._open_segment()

    # -- writing ------------------------------------------------------------
    def write(
        self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None
    ) -> Record | None:
        """Append ``data`` (whole lines, ideally) from ``stream`` read at ``ts``; ``lines``
        is its line count when the caller knows it (a memoryview cannot count)."""
        if not data:
            return None
        if self._seg_size >= self.segment_bytes:
            self._open_segment()
        code = STREAM_CODES.get(stream, stream)
        nlines = lines if lines is not None else count_lines(bytes(data))
        rec = Record(
            line=self.total_lines + 1,
            nlines=nlines,
            stream=code,
            ts=ts,
            off=self.total_bytes,
            length=len(data),
            soff=self.stream_bytes[code],
            segment=self._seg_no,
            seg_off=self._seg_size,
        )
        row = f"{rec.line} {nlines} {code} {ts:.6f} {rec.off} {rec.length} {rec.soff}\n".encode()
        _write_all(self._out_fd, data)
        _write_all(self._idx_fd, row)
        if self._mirror is not None:
            self._mirror.append(_name(self._seg_no, ".out"), self._seg_size, data)
            self._mirror.append(_name(self._seg_no, ".idx"), self._idx_size, row)
        self._idx_size += len(row)
        self.total_bytes += len(data)
        self.total_lines += nlines
        self.stream_bytes[code] += len(data)
        self._seg_size += len(data)
        no, size, lines = self._segments[-1]
        self._segments[-1] = (no, size + len(data), lines + nlines)
        self._enforce_cap()
        if code == "o":
            note = self.metrics.feed(data)  # ~a memchr per chunk when there is no metric
            if note is not None:
                self.write("system", f"=== {note} ===\n".encode(), ts)
        return rec

    @property
    def stored_bytes(self) -> int:
        return sum(size for _, size, _ in self._segments)

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def close(self) -> None:
        if self._out_fd >= 0:
            note = self.metrics.finish()  # an unfinished last line is a line
            if note is not None:
                self.write("system", f"=== {note} ===\n".encode(), time.time())
        self._close_files()
        if self._mirror is not None:
            self._mirror.flush()

    def _close_files(self) -> None:
        for fd in (self._out_fd, self._idx_fd):
            if fd >= 0:
                os.close(fd)
        self._out_fd = self._idx_fd = -1

    # -- internals ----------------------------------------------------------
    def _open_segment(self) -> None:
        self._close_files()
        self._seg_no += 1
        self._seg_size = 0
        self._idx_size = 0
        self._seg_base = self.total_bytes
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._out_fd = os.open(self.dir / f"seg-{self._seg_no:06d}.out", flags, 0o640)
        self._idx_fd = os.open(self.dir / f"seg-{self._seg_no:06d}.idx", flags, 0o640)
        self._segments.append((self._seg_no, 0, 0))

    def _enforce_cap(self) -> None:
        # Keep the newest segments: drop the oldest while the rest still exceed the cap.
        while len(self._segments) > 1 and self.stored_bytes > self.cap:
            no, size, lines = self._segments.pop(0)
            for suffix in (".idx", ".out"):  # index first: readers trust it
                try:
                    (self.dir / f"seg-{no:06d}{suffix}").unlink()
                except FileNotFoundError:
                    pass
            if self._mirror is not None:
                self._mirror.delete([_name(no, ".idx"), _name(no, ".out")])
            self.dropped_bytes += size
            self.dropped_lines += lines


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LogReader:
    """Reads a run's output, finished or still being written by another process."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.files: Files = open_files(self.dir)

    def segments(self) -> list[int]:
        return sorted(int(m.group(1)) for n in self.files.names() if (m := _SEG_RE.match(n)))

    def records(self, segment: int) -> list[Record]:
        try:
            raw = self.files.read(_name(segment, ".idx"))
        except FileNotFoundError:
            return []
        # Only newline-terminated rows are complete. A row the writer is appending right
        # now can be seen half-written, and one cut inside its last number still has
        # seven fields: counting fields alone would accept it with a wrong value.
        out, _ = parse_index(raw[: raw.rfind(b"\n") + 1], segment=segment, base=None)
        return out

    def iter_records(self, *, from_line: int = 1) -> Iterator[Record]:
        segs = self.segments()
        for i, seg in enumerate(segs):
            nxt = self._first_line_of(segs[i + 1]) if i + 1 < len(segs) else None
            if nxt is not None and nxt <= from_line:
                continue  # everything in this segment is before from_line
            for rec in self.records(seg):
                if rec.end_line >= from_line:
                    yield rec

    def first_record(self) -> Record | None:
        for seg in self.segments():
            recs = self.records(seg)
            if recs:
                return recs[0]
        return None

    def dropped(self) -> tuple[int, int]:
        """(bytes, lines) dropped from the head because of the cap."""
        first = self.first_record()
        if first is None:
            return 0, 0
        return first.off, first.line - 1

    def read_record(self, rec: Record) -> bytes:
        try:
            return self.files.read(_name(rec.segment, ".out"), rec.seg_off, rec.length)
        except FileNotFoundError:
            return b""  # dropped by the writer since we listed it

    # -- text views -----------------------------------------------------------
    def size(self, *, stream: str = "all") -> int:
        """Bytes of ``stream`` written since the run began (dropped bytes included):
        the offset at which the next byte of that stream will be."""
        code = None if stream == "all" else STREAM_CODES[stream]
        for seg in reversed(self.segments()):
            for rec in reversed(self.records(seg)):
                if code is None:
                    return rec.off + rec.length
                if rec.stream == code:
                    return rec.soff + rec.length
        return 0

    def read_bytes(
        self, *, stream: str = "all", offset: int = 0, limit: int | None = None
    ) -> tuple[bytes, int]:
        """Bytes of ``stream`` ("all", "stdout", "stderr") from byte ``offset``.

        Offsets count bytes of the selected stream since the run began, dropped
        bytes included, so a poller can pass back the returned ``next_offset``.
        Returns ``(data, next_offset)``.
        """
        code = None if stream == "all" else STREAM_CODES[stream]
        chunks: list[bytes] = []
        size = 0
        next_offset = offset
        for seg in self.segments():
            for rec in self.records(seg):
                if code is None:
                    start = rec.off  # "all" includes system markers (attempts, truncation)
                else:
                    if rec.stream != code:
                        continue
                    start = rec.soff
                end = start + rec.length
                if end <= offset:
                    continue
                data = self.read_record(rec)
                skip = max(0, offset - start)
                piece = data[skip:]
                if limit is not None and size + len(piece) > limit:
                    piece = piece[: limit - size]
                chunks.append(piece)
                size += len(piece)
                next_offset = start + skip + len(piece)
                if limit is not None and size >= limit:
                    return b"".join(chunks), next_offset
        return b"".join(chunks), max(next_offset, offset)

    def tail_lines(self, n: int, *, stream: str = "all") -> list[Line]:
        """The last ``n`` lines of ``stream`` ("all" includes system markers)."""
        code = None if stream == "all" else STREAM_CODES[stream]
        picked: list[Record] = []
        have = 0
        for seg in reversed(self.segments()):
            for rec in reversed(self.records(seg)):
                if code is not None and rec.stream != code:
                    continue
                picked.append(rec)
                have += rec.nlines
                if have >= n:
                    break
            if have >= n:
                break
        lines: list[Line] = []
        for rec in reversed(picked):
            lines.extend(self._lines_of(rec))
        return lines[-n:] if n else []

    def lines_after(self, after: int, *, limit: int = 1000) -> list[Line]:
        """Up to ``limit`` lines numbered above ``after``, in order (all streams)."""
        out: list[Line] = []
        for rec in self.iter_records(from_line=after + 1):
            for line in self._lines_of(rec):
                if line.number > after:
                    out.append(line)
                    if len(out) >= limit:
                        return out
        return out

    def _lines_of(self, rec: Record) -> list[Line]:
        text = self.read_record(rec).decode("utf-8", errors="replace")
        parts = text.split("\n")
        if text.endswith("\n"):
            parts.pop()
        name = STREAM_NAMES.get(rec.stream, rec.stream)
        return [Line(rec.line + i, name, rec.ts, part) for i, part in enumerate(parts)]

    # -- paged and searched views (the log viewer) --------------------------------------
    def _first_line_of(self, segment: int) -> int | None:
        try:
            head = self.files.read(_name(segment, ".idx"), 0, 256)  # a row is < 100 bytes
            parts = head[: head.find(b"\n") + 1].split()
            return int(parts[0]) if len(parts) == 7 else None
        except (FileNotFoundError, ValueError):
            return None

    def last_line(self) -> int:
        for seg in reversed(self.segments()):
            recs = self.records(seg)
            if recs:
                return recs[-1].end_line
        return 0

    def page(self, *, before: int | None = None, limit: int = 500, stream: str = "all") -> list[Line]:
        """Up to ``limit`` lines numbered below ``before`` (default: the newest), oldest first.
        ``stream``: "all", one stream name or several joined by commas ("stdout,system").

        Reads segments from the newest back and skips whole segments by their first
        line number, so opening a huge log at its tail costs one segment's index.
        """
        codes = stream_codes(stream)
        picked: list[Line] = []
        for seg in reversed(self.segments()):
            first = self._first_line_of(seg)
            if before is not None and first is not None and first >= before:
                continue
            for rec in reversed(self.records(seg)):
                if before is not None and rec.line >= before:
                    continue
                if codes is not None and rec.stream not in codes:
                    continue
                lines = [ln for ln in self._lines_of(rec) if before is None or ln.number < before]
                picked[:0] = lines[-(limit - len(picked)) :]
                if len(picked) >= limit:
                    return picked
        return picked

    def search(
        self, query: str, *, limit: int = 200, after: int = 0, stream: str = "all"
    ) -> tuple[list[Line], bool]:
        """Lines containing ``query`` (case-insensitive) numbered above ``after``, oldest
        first; also whether more matches follow. Only records that contain a match are
        decoded, so searching a 50 MB store is a scan of bytes. ``stream`` as :meth:`page`."""
        codes = stream_codes(stream)
        needle = query.lower().encode()
        hits: list[Line] = []
        for rec in self.iter_records(from_line=after + 1):
            if codes is not None and rec.stream not in codes:
                continue
            if needle not in self.read_record(rec).lower():
                continue
            low = query.lower()
            for line in self._lines_of(rec):
                if line.number > after and low in line.text.lower():
                    if len(hits) >= limit:
                        return hits, True
                    hits.append(line)
        return hits, False

    def first_error(self, pattern: re.Pattern[str] | None = None) -> tuple[Line, str] | None:
        """The first line that looks like trouble, and why: the first stderr line
        (``"stderr"``), or an earlier stdout line matching ``pattern`` (``"pattern"``).
        Only stdout records whose bytes match are split into lines."""
        for rec in self.iter_records():
            if rec.stream == STREAM_CODES["stderr"]:
                lines = self._lines_of(rec)
                if lines:
                    return lines[0], "stderr"
            elif rec.stream == STREAM_CODES["stdout"] and pattern is not None:
                if not pattern.search(self.read_record(rec).decode("utf-8", errors="replace")):
                    continue
                for line in self._lines_of(rec):
                    if pattern.search(line.text):
                        return line, "pattern"
        return None


def stream_codes(stream: str) -> frozenset[str] | None:
    """The record codes of "all" (None: every stream) or of stream names joined by commas."""
    if stream == "all":
        return None
    return frozenset(STREAM_CODES[name] for name in stream.split(","))


def remove_store(directory: Path) -> None:
    """Delete a run's output: its directory and, with the database store, its blocks."""
    shutil.rmtree(directory, ignore_errors=True)
    if output_store() == DATABASE:
        from runs.logstore.database import remove_blocks

        remove_blocks(Path(directory).name)


class LogFollower:
    """Follows a run's output incrementally: each :meth:`poll` returns only new lines.

    Keeps a cursor (segment, byte position in its index) so a long log is never
    re-parsed, and serves a record in pieces when a ``limit`` falls inside it (a
    1 MiB pipe read can hold 100,000 lines; it is sliced, never re-decoded). Lines
    numbered up to ``after`` are skipped, which makes resuming (``?after=N``) exact:
    no line lost, none repeated. If the writer's cap deleted lines the follower had
    not read yet, :attr:`skipped` counts them (and :attr:`after` moves past them).

    Memory is bounded by one index chunk and one record, whatever the log's size.
    """

    INDEX_CHUNK = 1 << 20

    def __init__(self, directory: Path, *, after: int = 0):
        self.reader = LogReader(directory)
        self.after = max(0, after)
        self.skipped = 0
        self._seg: int | None = None
        self._pos = 0  # bytes of the current segment's index consumed (whole rows only)
        self._base: int | None = None  # combined offset of the current segment's first byte
        self._idx_size = -1  # the index size last seen, for changed()
        self._queue: deque[Record] = deque()  # index rows read, lines not yet delivered
        # The record being delivered: (record, its bytes, byte position, next line number).
        self._cur: tuple[Record, bytes, int, int] | None = None

    def _idx(self, segment: int) -> str:
        return _name(segment, ".idx")

    def _skip_to(self, line: int) -> None:
        if line > self.after:
            self.skipped += line - self.after
            self.after = line

    def _locate(self) -> bool:
        """Point the cursor at the segment holding line ``after + 1`` (or the oldest)."""
        segs = self.reader.segments()
        if not segs:
            return False
        chosen = segs[0]
        for seg in segs[1:]:
            first = self.reader._first_line_of(seg)
            if first is None or first > self.after + 1:
                break
            chosen = seg
        oldest = self.reader._first_line_of(segs[0])
        if oldest is not None and oldest > self.after + 1:
            self._skip_to(oldest - 1)  # dropped by the cap before we could read them
        self._seg, self._pos, self._base, self._idx_size = chosen, 0, None, -1
        return True

    def changed(self) -> bool:
        """Cheap check (one ``stat``) whether :meth:`poll` may return something."""
        if self._cur is not None or self._queue:
            return True
        if self._seg is None:
            return bool(self.reader.segments())
        size = self.reader.files.size(self._idx(self._seg))
        if size is None or size != self._idx_size:
            return True
        return self.reader.files.size(self._idx(self._seg + 1)) is not None

    def poll(self, *, limit: int = 5000) -> list[Line]:
        """Up to ``limit`` new lines, in order."""
        out: list[Line] = []
        while len(out) < limit:
            if self._cur is not None:
                self._take(out, limit)
            elif not self._next_record():
                break
        return out

    def _next_record(self) -> bool:
        """Make the next unread record current (``_cur``). False when there is none yet."""
        while True:
            if not self._queue and not self._fill():
                return False
            rec = self._queue.popleft()
            if rec.end_line <= self.after:
                continue
            data = self.reader.read_record(rec)
            if len(data) < rec.length:
                # The cap deleted the segment between our reading its index and its
                # data: those lines are gone; never invent them as empty lines.
                self._skip_to(rec.end_line)
                continue
            self._cur = (rec, data, 0, rec.line)
            return True

    def poll_chunks(self, *, max_bytes: int = 1 << 20) -> list[Chunk]:
        """New lines as :class:`Chunk` s (a record — one pipe read — or the part of it that
        fits) up to ``max_bytes`` (at least one line): one decode per chunk and no
        per-line work, for clients that take lines in bulk. Shares :meth:`poll`'s cursor."""
        out: list[Chunk] = []
        size = 0
        while size < max_bytes:
            if self._cur is None and not self._next_record():
                break
            assert self._cur is not None
            rec, data, pos, number = self._cur
            self._cur = None
            size_all = len(data)
            while number <= self.after and pos < size_all:  # resuming inside the record
                nl = data.find(b"\n", pos)
                pos, number = (size_all if nl < 0 else nl + 1), number + 1
            if pos >= size_all:
                continue
            end = size_all
            if end - pos > max_bytes - size:
                # A big record (a pipe read holds up to 1 MiB): cut after the last whole
                # line that fits (or the first line, however long), the rest is next.
                cut = data.rfind(b"\n", pos, pos + max(1, max_bytes - size))
                if cut < 0:
                    if out:  # not even one more line fits: the rest is next time
                        self._cur = (rec, data, pos, number)
                        break
                    cut = data.find(b"\n", pos)
                if 0 <= cut < size_all - 1:
                    end = cut + 1
            text = data[pos : end - 1] if data[end - 1 : end] == b"\n" else data[pos:end]
            count = text.count(b"\n") + 1
            stream = STREAM_NAMES.get(rec.stream, rec.stream)
            out.append(Chunk(number, count, stream, rec.ts, text.decode("utf-8", errors="replace")))
            self.after = number + count - 1
            size += end - pos
            if end < size_all:
                self._cur = (rec, data, end, number + count)
        return out

    def _take(self, out: list[Line], limit: int) -> None:
        """Move lines of the current record into ``out`` (up to ``limit`` in all)."""
        assert self._cur is not None
        rec, data, pos, number = self._cur
        name = STREAM_NAMES.get(rec.stream, rec.stream)
        size = len(data)
        while pos < size and len(out) < limit:
            nl = data.find(b"\n", pos)
            end = size if nl < 0 else nl
            if number > self.after:
                out.append(Line(number, name, rec.ts, data[pos:end].decode("utf-8", errors="replace")))
                self.after = number
            pos, number = end + 1, number + 1
        self._cur = (rec, data, pos, number) if pos < size else None

    def _fill(self) -> bool:
        """Queue the next index rows. False when there is nothing new yet."""
        if self._seg is None and not self._locate():
            return False
        while True:
            assert self._seg is not None
            # Look for the next segment *before* reading this one's index: the writer
            # finishes a segment before it creates the next, so if the next exists now,
            # the read below sees this segment's last row. (Checked after the read, a row
            # appended in between would be skipped when moving on.)
            moved_on = self.reader.files.size(self._idx(self._seg + 1)) is not None
            try:
                chunk = self.reader.files.read(self._idx(self._seg), self._pos, self.INDEX_CHUNK)
            except FileNotFoundError:
                # The cap deleted our segment: continue from the oldest one left.
                self._seg = None
                if not self._locate():
                    return False
                continue
            self._idx_size = self._pos + len(chunk)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                # Only whole rows: one being appended right now is read next time.
                self._pos += cut + 1
                records = self._parse(chunk[: cut + 1])
                if records:
                    self._queue.extend(records)
                    return True
                continue
            if moved_on:
                self._seg += 1
                self._pos, self._base, self._idx_size = 0, None, -1
                continue
            return False

    def _parse(self, raw: bytes) -> list[Record]:
        assert self._seg is not None
        recs, self._base = parse_index(raw, segment=self._seg, base=self._base)
        return recs
