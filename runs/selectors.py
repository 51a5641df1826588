"""Reads for runs that are more than a queryset: the log viewer's pages and searches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from runs.logstore import STREAM_CODES, Line, LogReader
from runs.models import Run, RunStatus


def run_counts() -> dict[str, Any]:
    """Totals, last 24 h, per-state counts and success rate (finished runs only).

    One query: the stats API and the live feed's ``stats`` message both use it.
    """
    since = timezone.now() - timedelta(hours=24)
    agg = Run.objects.aggregate(
        total=Count("id"),
        last_24h=Count("id", filter=Q(created_at__gte=since)),
        completed=Count("id", filter=Q(status=RunStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=RunStatus.FAILED)),
        running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        queued=Count("id", filter=Q(status=RunStatus.QUEUED)),
    )
    finished = agg["completed"] + agg["failed"]
    agg["success_rate"] = round(agg["completed"] / finished * 100, 1) if finished else None
    return agg


def _line_json(line: Line) -> dict[str, Any]:
    return {"n": line.number, "stream": line.stream, "ts": line.ts, "text": line.text}


def log_page(
    run: Run, *, before: int | None, limit: int, stream: str, query: str | None, after: int
) -> dict[str, Any]:
    """A page of numbered lines for the viewer: the tail (or lines before ``before``),
    or, with ``query``, the matching lines after ``after``."""
    reader = LogReader(run.output_dir)
    dropped_bytes, dropped_lines = reader.dropped()
    total = reader.last_line()
    body: dict[str, Any] = {
        "run_id": str(run.pk),
        "status": run.status,
        "total_lines": total,
        "dropped_lines": dropped_lines,
        "dropped_bytes": dropped_bytes,
        "truncated": dropped_bytes > 0,
        "stream": stream,
    }
    if query:
        hits, more = reader.search(query, limit=limit, after=after, stream=stream)
        body.update({"query": query, "lines": [_line_json(x) for x in hits], "has_more": more})
    else:
        lines = reader.page(before=before, limit=limit, stream=stream)
        first = lines[0].number if lines else None
        body.update(
            {
                "lines": [_line_json(x) for x in lines],
                "first_line": first,
                "last_line": lines[-1].number if lines else None,
                "has_more_before": bool(first and first > dropped_lines + 1),
            }
        )
    return body


def log_bytes(run: Run, *, stream: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The whole stored log, in chunks (for downloads): never all in memory."""
    reader = LogReader(run.output_dir)
    dropped_bytes, dropped_lines = reader.dropped()
    if dropped_bytes:
        yield (
            f"[scriptops: output truncated: the first {dropped_bytes} bytes "
            f"({dropped_lines} lines) were dropped by the output cap]\n"
        ).encode()
    if stream == "all":
        # The segments hold the combined output in order: copy them as they are.
        for seg in reader.segments():
            try:
                with open(reader.dir / f"seg-{seg:06d}.out", "rb") as fh:
                    while data := fh.read(chunk):
                        yield data
            except FileNotFoundError:
                continue  # dropped by the cap while we were reading
        return
    code = STREAM_CODES[stream]
    pending: list[bytes] = []
    size = 0
    for rec in reader.iter_records():
        if rec.stream != code:
            continue
        pending.append(reader.read_record(rec))
        size += rec.length
        if size >= chunk:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
