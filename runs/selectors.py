"""Reads for runs that are more than a queryset: the log viewer's pages and searches."""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Avg, Count, Q
from django.utils import timezone

from analytics import conf as analytics_conf
from analytics.models import AlertDelivery, Point, RunAnalysis, Series, path_key
from core.precompiled import KeptRead
from runs.logstore import STREAM_CODES, Line, LogReader
from runs.models import Run, RunStatus

_RUN_FIELDS = tuple(field.attname for field in Run._meta.concrete_fields)
_SAMPLE_ID = uuid.UUID(int=1)


_RUN_ROW = KeptRead(
    "runs.run_row",
    lambda pk: Run.objects.filter(pk=pk).order_by().values(*_RUN_FIELDS),
    samples={"pk": _SAMPLE_ID},
    fields={"pk": Run._meta.pk},
)


def runs_load(run_ids: Sequence[str]) -> list[Run]:
    """The runs with these ids that exist, in that order, whole: one indexed read each,
    compiled once per connection. A runner loads every run it claims, and the queryset
    compiled its 64 columns each time (~2 ms before the first row; ~0.15 ms a run so)."""
    conn = connections[Run.objects.db]
    runs: list[Run] = []
    for run_id in run_ids:
        rows = _RUN_ROW.rows(conn, pk=run_id)
        if rows:
            runs.append(Run.from_db(conn.alias, _RUN_FIELDS, list(rows[0].values())))
    return runs


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
    run: Run,
    *,
    before: int | None,
    limit: int,
    stream: str,
    query: str | None,
    after: int,
    first_error: bool = False,
) -> dict[str, Any]:
    """A page of numbered lines for the viewer: the tail (or lines before ``before``),
    or, with ``query``, the matching lines after ``after``. ``stream``: "all" or stream
    names joined by commas. ``first_error``: also the first line that looks like trouble
    (the first stderr line, or an earlier one matching ``SCRIPTOPS_LOG_ERROR_PATTERN``)."""
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
    if first_error:
        found = reader.first_error(settings.LOG_ERROR_PATTERN)
        body["first_error"] = {**_line_json(found[0]), "why": found[1]} if found else None
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


@dataclass(frozen=True)
class LogText:
    """A slice of a run's output as ``GET /api/runs/{id}/logs`` serves it in text/plain."""

    body: bytes
    next_offset: int  # pass back as ``offset`` to poll for more
    dropped_bytes: int  # the output cap dropped this much of the head


def log_text(run: Run, *, stream: str, offset: int, limit: int | None, tail: int | None) -> LogText:
    """The last ``tail`` lines, or the bytes from ``offset`` (at most ``limit``); a read
    from the start of a capped log begins with a note saying what was dropped."""
    reader = LogReader(run.output_dir)
    dropped_bytes, dropped_lines = reader.dropped()
    prefix = b""
    if tail is not None:
        lines = reader.tail_lines(tail, stream=stream)
        body = "".join(line.text + "\n" for line in lines).encode()
        next_offset = reader.size(stream=stream)
    else:
        body, next_offset = reader.read_bytes(stream=stream, offset=offset, limit=limit)
        if dropped_bytes and offset < dropped_bytes and stream == "all":
            prefix = (
                f"[scriptops: output truncated: the first {dropped_bytes} bytes "
                f"({dropped_lines} lines) were dropped; the cap is "
                f"{settings.MAX_OUTPUT_BYTES} bytes]\n"
            ).encode()
    return LogText(body=prefix + body, next_offset=next_offset, dropped_bytes=dropped_bytes)


SAMPLES_FILE = "samples.jsonl"
MAX_SAMPLE_POINTS = 2000


def run_samples(run: Run, *, max_points: int = MAX_SAMPLE_POINTS) -> list[dict[str, Any]]:
    """Resource samples ``{ts, cpu, rss, children, attempt}``, oldest first, thinned to
    about ``max_points`` (the runner appends one JSON object per line)."""
    try:
        lines = (run.output_dir / SAMPLES_FILE).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    rows: list[dict[str, Any]] = []
    for line in lines[:: max(1, len(lines) // max_points)]:
        # The worker may be writing the last line right now: skip what does not parse.
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_stats() -> dict[str, Any]:
    """``GET /api/stats``: totals, last 24 h, by status and runner status, success rate."""
    counts = run_counts()
    avg_duration = Run.objects.filter(duration__isnull=False).aggregate(avg=Avg("duration"))["avg"]
    by_status = dict(
        Run.objects.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    by_run_status = dict(
        Run.objects.order_by()
        .exclude(run_status__isnull=True)
        .values_list("run_status")
        .annotate(n=Count("id"))
        .values_list("run_status", "n")
    )
    return {
        "total": counts["total"],
        "last_24h": counts["last_24h"],
        "by_status": {s: by_status.get(s, 0) for s in RunStatus.values},
        "by_run_status": by_run_status,
        "success_rate": counts["success_rate"],
        "avg_duration": avg_duration,
    }


def run_analytics(run: Run) -> dict[str, Any] | None:
    """The ``analytics`` block of a finished run's record: what ``run_analyse`` stored
    (metrics, gates, baseline comparison, cost), its JUnit link, its alert deliveries, and
    how its duration compares with usual — the p50 of the script's last
    ``SCRIPTOPS_ANALYTICS_USUAL_RUNS`` successful runs, read now from the history. None
    while the run is active."""
    if run.is_active:
        return None
    analysis = RunAnalysis.objects.filter(run_id=run.pk).defer("junit").first()
    junit = analysis is not None and run.junit_output  # run_analyse wrote the report
    deliveries = AlertDelivery.objects.filter(run_id=run.pk).order_by("created_at", "id")
    return {
        "metrics": analysis.metrics if analysis else {},
        "gates": analysis.gates if analysis else [],
        "comparison": analysis.comparison if analysis else None,
        "cost": analysis.cost if analysis else None,
        "junit_url": f"/api/runs/{run.pk}/junit" if junit else None,
        "alerts": [
            {
                "rule": d.rule,
                "channel": d.channel,
                "status": d.status,
                "attempts": d.attempts,
                "response_code": d.response_code,
                "error": d.error,
                "created_at": d.created_at.isoformat(),
            }
            for d in deliveries
        ],
        "usual": run_usual(run),
    }


def run_usual(run: Run, *, metric: str = "duration_seconds") -> dict[str, Any] | None:
    """``{metric, p50, n, ratio}``: the run's duration against the p50 of the script's last
    successful runs (itself excluded); None without a duration or any such run."""
    if run.duration is None:
        return None
    series = Series.objects.filter(path_key=path_key(run.script_path), metric=metric).values_list(
        "id", flat=True
    )
    series_id = series.first()
    if series_id is None:
        return None
    values = list(
        Point.objects.filter(series_id=series_id, status=RunStatus.COMPLETED)
        .exclude(run_id=run.pk)
        .order_by("-recorded_at")
        .values_list("value", flat=True)[: analytics_conf.usual_runs()]
    )
    if not values:
        return None
    p50 = statistics.median(values)  # = numpy's p50 (linear interpolation)
    return {
        "metric": metric,
        "p50": p50,
        "n": len(values),
        "ratio": round(run.duration / p50, 4) if p50 > 0 else None,
    }


def run_junit(run: Run) -> str | None:
    """The JUnit XML report of a run that asked for one (``junit_output``), else None."""
    junit = RunAnalysis.objects.filter(run_id=run.pk).values_list("junit", flat=True).first()
    return junit or None
