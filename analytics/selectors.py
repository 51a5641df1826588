"""Reads of the analytics history: what the API and the dashboard show.

Every read of points goes the same way, so that it stays one index range however many
rows the table holds (the benchmark has 1,000,000): first the series (``path_key`` +
``metric``, unique and indexed), then ``Point`` by ``series_id`` and a ``recorded_at``
range, which the composite index (series, recorded_at) answers. Points are fetched as
``values_list`` tuples, never model instances (a model per row costs several times the
row), and the export walks them with ``iterator(chunk_size=...)``. Script paths and
metric names come from the series rows, looked up once, never joined per point.

Plain Python in, plain data out: no DRF here (import-linter checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone

from analytics import stats
from analytics.models import Baseline, Benchmark, Point, Series, path_key

DURATION = "duration_seconds"  # every recorded run has it: it counts runs
EXPORT_CHUNK = 5000  # rows per database fetch while exporting

# (recorded_at, value, run_id, status): one point of one series, for analysis.
Row = tuple[datetime, float, UUID | None, str]


@dataclass(frozen=True)
class HistoryFilter:
    """Which points a history list or an export covers. ``days`` None: all of them."""

    script_path: str | None = None
    metric: str | None = None
    days: int | None = 30
    status: str | None = None
    source: str | None = None

    def since(self) -> datetime | None:
        return None if self.days is None else timezone.now() - timedelta(days=self.days)


def since_days(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


# -- series ----------------------------------------------------------------------------------


def series_id(*, script_path: str, metric: str) -> int | None:
    """The id of one series (one unique index lookup), None if never recorded."""
    found: int | None = (
        Series.objects.filter(path_key=path_key(script_path), metric=metric)
        .values_list("id", flat=True)
        .first()
    )
    return found


def script_metrics(*, script_path: str) -> dict[str, int]:
    """``{metric: series id}`` of every metric a script ever recorded, by name."""
    rows = Series.objects.filter(path_key=path_key(script_path)).values_list("metric", "id")
    return dict(sorted(rows))


def _points_of(
    ids: int | Sequence[int], *, since: datetime | None, until: datetime | None = None
) -> QuerySet[Point]:
    points = (
        Point.objects.filter(series_id=ids)
        if isinstance(ids, int)
        else Point.objects.filter(series_id__in=ids)
    )
    if since is not None:
        points = points.filter(recorded_at__gte=since)
    if until is not None:
        points = points.filter(recorded_at__lte=until)
    return points


def series_rows(
    *, script_path: str, metric: str, since: datetime | None, until: datetime | None = None
) -> list[Row]:
    """The points of one series in a time window, oldest first, as tuples."""
    sid = series_id(script_path=script_path, metric=metric)
    if sid is None:
        return []
    points = _points_of(sid, since=since, until=until).order_by("recorded_at", "id")
    return list(points.values_list("recorded_at", "value", "run_id", "status"))


def series_values(*, series: int, since: datetime | None) -> list[float]:
    """Only the values of one series since a time (baselines, benchmarks)."""
    return list(_points_of(series, since=since).values_list("value", flat=True))


def last_rows(*, script_path: str, metric: str, count: int) -> list[Row]:
    """The newest ``count`` points of one series, returned oldest first."""
    sid = series_id(script_path=script_path, metric=metric)
    if sid is None:
        return []
    newest = Point.objects.filter(series_id=sid).order_by("-recorded_at", "-id")[:count]
    return list(reversed(newest.values_list("recorded_at", "value", "run_id", "status")))


def sparklines(
    *, script_paths: Sequence[str], metric: str = DURATION, count: int = 20
) -> dict[str, list[float]]:
    """``{script_path: [last count values, oldest first]}`` (an empty list for a script
    without history): one series query, then one query for all of them (a row number per
    series, newest first, kept up to ``count``), so a page of 100 runs costs two queries."""
    keys = {path_key(path): path for path in script_paths}
    ids = dict(Series.objects.filter(path_key__in=keys, metric=metric).values_list("id", "path_key"))
    out: dict[str, list[float]] = {path: [] for path in script_paths}
    if not ids:
        return out
    ranked = (
        Point.objects.filter(series_id__in=ids)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("series_id")], order_by=[F("recorded_at").desc(), F("id").desc()]
            )
        )
        .filter(rank__lte=count)
        .order_by("series_id", "recorded_at", "id")
        .values_list("series_id", "value")
    )
    for sid, value in ranked:
        out[keys[ids[sid]]].append(value)
    return out


def expected_durations(
    *, script_paths: Sequence[str], count: int = 30, min_runs: int = 3
) -> dict[str, dict[str, float | int] | None]:
    """``{script_path: {p50, p95, n}}`` of the durations of each script's last ``count``
    successful runs (``completed``), None for a script with fewer than ``min_runs``: what a
    running run's progress and "about 2 min left" are measured against. Two queries
    whatever the number of scripts, as :func:`sparklines`."""
    keys = {path_key(path): path for path in script_paths}
    ids = dict(Series.objects.filter(path_key__in=keys, metric=DURATION).values_list("id", "path_key"))
    values: dict[str, list[float]] = {path: [] for path in script_paths}
    if ids:
        ranked = (
            Point.objects.filter(series_id__in=ids, status="completed")
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("series_id")],
                    order_by=[F("recorded_at").desc(), F("id").desc()],
                )
            )
            .filter(rank__lte=count)
            .values_list("series_id", "value")
        )
        for sid, value in ranked:
            values[keys[ids[sid]]].append(value)
    out: dict[str, dict[str, float | int] | None] = {}
    for path, found in values.items():
        if len(found) < min_runs:
            out[path] = None
            continue
        out[path] = {
            "p50": round(stats.percentile(found, 50), 3),
            "p95": round(stats.percentile(found, 95), 3),
            "n": len(found),
        }
    return out


# -- history list and export -----------------------------------------------------------------


def history_points(filters: HistoryFilter) -> QuerySet[Point]:
    """The points a filter covers, unordered (the caller orders: newest first for a list,
    oldest first for an export). With a script: its (few) series ids, so each is an index
    range; with only a metric: a subquery on the series; with neither: the time index."""
    points = Point.objects.all()
    if filters.script_path is not None:
        series = Series.objects.filter(path_key=path_key(filters.script_path))
        if filters.metric is not None:
            series = series.filter(metric=filters.metric)
        points = points.filter(series_id__in=list(series.values_list("id", flat=True)))
    elif filters.metric is not None:
        points = points.filter(series_id__in=Series.objects.filter(metric=filters.metric).values("id"))
    since = filters.since()
    if since is not None:
        points = points.filter(recorded_at__gte=since)
    if filters.status:
        points = points.filter(status=filters.status)
    if filters.source:
        points = points.filter(source=filters.source)
    return points


HISTORY_FIELDS = ("series_id", "run_id", "recorded_at", "value", "status", "source")


def history_page_rows(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """A page of ``HISTORY_FIELDS`` tuples as API rows, with the script and metric of
    each series (one query for the page's series)."""
    rows = list(rows)
    names = dict(
        (sid, (path, metric))
        for sid, path, metric in Series.objects.filter(id__in={r[0] for r in rows}).values_list(
            "id", "script_path", "metric"
        )
    )
    return [
        {
            "run_id": run_id,
            "script_path": names[sid][0],
            "metric": names[sid][1],
            "value": value,
            "status": status,
            "source": source,
            "recorded_at": recorded_at,
        }
        for sid, run_id, recorded_at, value, status, source in rows
    ]


def history_list(filters: HistoryFilter) -> QuerySet[Point, tuple[Any, ...]]:
    """The points of a filter as ``HISTORY_FIELDS`` tuples, newest first (to paginate)."""
    return history_points(filters).order_by("-recorded_at", "-id").values_list(*HISTORY_FIELDS)


def export_series(filters: HistoryFilter) -> dict[int, tuple[str, str]]:
    """``{series id: (script_path, metric)}`` of the series an export covers (thousands
    of rows at most): read once, so points are never joined with their series in SQL."""
    series = Series.objects.all()
    if filters.script_path is not None:
        series = series.filter(path_key=path_key(filters.script_path))
    if filters.metric is not None:
        series = series.filter(metric=filters.metric)
    return {sid: (path, metric) for sid, path, metric in series.values_list("id", "script_path", "metric")}


class _IsoText(Func):
    """A time as the API writes it (``2025-01-02T03:04:05.678901Z``, as Python's
    isoformat), made by the database: from the text SQLite stores, with ``to_char`` on
    PostgreSQL. No Python per row."""

    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="replace(%(expressions)s, ' ', 'T') || 'Z'", **extra
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Six digits of microseconds, none when they are all zero: as Python's isoformat
        # (PostgreSQL's own text form trims trailing zeros: .72857 for .728570).
        utc = "(%(expressions)s AT TIME ZONE 'UTC')"
        template = (
            f"CASE WHEN to_char({utc}, 'US') = '000000' "
            f"""THEN to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') """
            f"""ELSE to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
        )
        return self.as_sql(compiler, connection, template=template, **extra)


class _UuidText(Func):
    """A run id as text with dashes, ``''`` when none (SQLite stores the 32 hex digits,
    PostgreSQL a uuid), made by the database."""

    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        hexed = "%(expressions)s"
        dashed = " || '-' || ".join(
            f"substr({hexed}, {start}, {length})"
            for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        template = f"CASE WHEN {hexed} IS NULL THEN '' ELSE {dashed} END"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="COALESCE(CAST(%(expressions)s AS text), '')", **extra
        )


# (series id, recorded_at ISO text, run id text or "", value, status, source)
ExportPoint = tuple[int, str, str, float, str, str]


def export_points(filters: HistoryFilter, *, chunk_size: int = EXPORT_CHUNK) -> Iterator[ExportPoint]:
    """Every point a filter covers, oldest first, one tuple at a time.

    The database is read ``chunk_size`` rows at a time (a server-side cursor on
    PostgreSQL), so memory stays flat whatever the count. The time and the run id come
    as text straight from the database (a cast): the ORM's per-row conversions to
    datetime and UUID, then back to text, cost more than everything else an exported row
    needs (the export target is 200,000 rows/s); the database formats both as the API
    writes them."""
    points = (
        history_points(filters)
        .order_by("recorded_at", "id")
        .annotate(at=_IsoText("recorded_at"), run=_UuidText("run_id"))
        .values_list("series_id", "at", "run", "value", "status", "source")
    )
    return points.iterator(chunk_size=chunk_size)


# -- statistics of the store -----------------------------------------------------------------


def database_size() -> int | None:
    """Bytes the whole database takes (SQLite file pages; PostgreSQL's database size)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return int(pages) * int(cursor.fetchone()[0])
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    return None


def history_stats() -> dict[str, Any]:
    """Counts of the history store. ``runs`` counts ``duration_seconds`` points: every run
    recorded with history has exactly one (a COUNT DISTINCT over run ids would read the
    whole table)."""
    span = Point.objects.aggregate(first=Min("recorded_at"), last=Max("recorded_at"))
    per_series = dict(
        Point.objects.order_by().values("series_id").annotate(n=Count("id")).values_list("series_id", "n")
    )
    scripts: dict[str, dict[str, Any]] = {}
    for sid, key, path, metric in Series.objects.order_by("script_path", "metric").values_list(
        "id", "path_key", "script_path", "metric"
    ):
        entry = scripts.setdefault(key, {"script_path": path, "metrics": [], "points": 0})
        entry["metrics"].append(metric)
        entry["points"] += per_series.get(sid, 0)
    runs = Point.objects.filter(series_id__in=Series.objects.filter(metric=DURATION).values("id")).count()
    return {
        "points": sum(per_series.values()),
        "series": Series.objects.count(),
        "scripts": len(scripts),
        "runs": runs,
        "first_recorded_at": span["first"],
        "last_recorded_at": span["last"],
        "metrics_per_script": list(scripts.values()),
        "database": {"vendor": connection.vendor, "size_bytes": database_size()},
    }


# -- across scripts (overview) ---------------------------------------------------------------


class EpochDays(Func):
    """A time as days since 1970-01-01 UTC, a float, in SQL (SQLite's ``julianday`` or
    PostgreSQL's ``EXTRACT(EPOCH ...)``): lets a least-squares trend be summed in SQL."""

    output_field = FloatField()
    template = "(EXTRACT(EPOCH FROM %(expressions)s) / 86400.0)"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s) - 2440587.5)", **extra)


def script_aggregates(*, since: datetime, metric: str = DURATION) -> list[dict[str, Any]]:
    """Per script, over the points of ``metric`` since a time: ``runs``, ``mean``, ``max``,
    ``failures`` and the least-squares ``trend`` (``stats.Trend`` fields), from ONE grouped
    query of sums (n, Σx, Σy, Σxy, Σx², first and last x), never the rows themselves: a
    million points stay in the database. x is days since ``since`` (small numbers, so the
    sums lose no precision to cancellation)."""
    names = dict(Series.objects.filter(metric=metric).values_list("id", "script_path"))
    if not names:
        return []
    x = EpochDays("recorded_at") - Value(since.timestamp() / stats.SECONDS_PER_DAY)
    rows = (
        Point.objects.filter(series_id__in=list(names), recorded_at__gte=since)
        .annotate(x=x)
        .values("series_id")
        .order_by("series_id")
        .annotate(
            n=Count("id"),
            mean=Avg("value"),
            top=Max("value"),
            failures=Count("id", filter=Q(status="failed")),
            sx=Sum("x"),
            sy=Sum("value"),
            sxy=Sum(F("x") * F("value")),
            sxx=Sum(F("x") * F("x")),
            x_first=Min("x"),
            x_last=Max("x"),
        )
    )
    out = []
    for row in rows:
        n = row["n"]
        x_mean, y_mean = row["sx"] / n, row["sy"] / n
        spread = row["sxx"] - n * x_mean * x_mean
        slope = (row["sxy"] - n * x_mean * y_mean) / spread if n >= 2 and spread > 1e-12 else 0.0
        first = y_mean + slope * (row["x_first"] - x_mean)
        last = y_mean + slope * (row["x_last"] - x_mean)
        change = (last - first) / abs(first) * 100.0 if n >= 2 and first != 0 else None
        if n < 3 or change is None or abs(change) < stats.STABLE_PERCENT:
            direction = "stable"
        else:
            direction = "increasing" if change > 0 else "decreasing"
        out.append(
            {
                "script_path": names[row["series_id"]],
                "runs": n,
                "mean": row["mean"],
                "max": row["top"],
                "failures": row["failures"],
                "trend": {"slope_per_day": slope, "change_percent": change, "direction": direction},
            }
        )
    return out


# -- saved baselines and benchmarks ----------------------------------------------------------


def baselines(*, script_path: str | None = None) -> QuerySet[Baseline]:
    found = Baseline.objects.select_related("created_by").order_by("script_path", "name")
    if script_path is not None:
        found = found.filter(path_key=path_key(script_path))
    return found


def benchmark_names() -> list[dict[str, Any]]:
    """One entry per benchmark name: its latest version, that version's script and time."""
    newer = Benchmark.objects.filter(name=OuterRef("name"), version__gt=OuterRef("version"))
    rows = (
        Benchmark.objects.filter(~Exists(newer))
        .order_by("name")
        .values_list("name", "version", "script_path", "created_at")
    )
    return [
        {"name": name, "latest_version": version, "script_path": path, "created_at": created}
        for name, version, path, created in rows
    ]


def benchmark_versions(*, name: str) -> QuerySet[Benchmark]:
    return Benchmark.objects.select_related("created_by").filter(name=name).order_by("-version")


def benchmark_pair(*, name: str, version: int | None) -> tuple[Benchmark | None, Benchmark | None]:
    """A benchmark version (the latest when ``version`` is None) and the one before it."""
    versions = Benchmark.objects.filter(name=name)
    current = (
        versions.filter(version=version).first()
        if version is not None
        else versions.order_by("-version").first()
    )
    if current is None:
        return None, None
    previous = versions.filter(version__lt=current.version).order_by("-version").first()
    return current, previous


# -- analyses (the figures come from analytics.stats) ----------------------------------------


def _unix(value: datetime) -> float:
    return value.timestamp()


def trend_report(*, script_path: str, metric: str, days: int) -> dict[str, Any]:
    rows = series_rows(script_path=script_path, metric=metric, since=since_days(days))
    fitted = stats.trend([(_unix(at), value) for at, value, _, _ in rows])
    return {"script_path": script_path, "metric": metric, "days": days, **fitted.as_dict()}


def anomaly_report(
    *, script_path: str, metric: str, days: int, method: str, threshold: float | None
) -> dict[str, Any]:
    """The anomalies of a series, each named by its run. Raises ValueError for an unknown
    method or a bad threshold (stats')."""
    rows = series_rows(script_path=script_path, metric=metric, since=since_days(days))
    found = stats.anomalies([value for _, value, _, _ in rows], method=method, threshold=threshold)
    return {
        "script_path": script_path,
        "metric": metric,
        "days": days,
        "method": found.method,
        "threshold": found.threshold,
        "n": found.n,
        "lower": found.lower,
        "upper": found.upper,
        "center": found.center,
        "anomalies": [
            {
                "run_id": rows[a.index][2],
                "recorded_at": rows[a.index][0],
                "value": a.value,
                "score": a.score,
                "lower": a.lower,
                "upper": a.upper,
            }
            for a in found.anomalies
        ],
    }


def baseline_report(*, script_path: str, metric: str | None, days: int, method: str) -> dict[str, Any]:
    """The baseline of one metric (``{"n": 0, ...}`` without history) or of every metric
    the script has (``{}`` for an unknown script). Raises ValueError for an unknown method."""
    since = since_days(days)
    if metric is not None:
        sid = series_id(script_path=script_path, metric=metric)
        wanted = {metric: sid}
    else:
        wanted = dict(script_metrics(script_path=script_path))
    figures = {
        name: stats.baseline(series_values(series=sid, since=since) if sid is not None else [], method=method)
        for name, sid in wanted.items()
    }
    return {"script_path": script_path, "method": method, "days": days, "metrics": figures}


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _percentiles(values: Sequence[float], qs: Sequence[int]) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": stats.percentile(values, q) for q in qs}


def _success_rate(statuses: Sequence[str]) -> float | None:
    return sum(1 for s in statuses if s == "completed") / len(statuses) if statuses else None


def chart_data(
    *,
    script_path: str,
    metric: str,
    days: int,
    since: datetime | None = None,
    until: datetime | None = None,
    method: str = "iqr",
) -> dict[str, Any]:
    """Everything the Analytics page's chart draws for one series over a window (``since``
    and ``until`` zoom in; otherwise the last ``days``): the points, the trend line, the
    anomalies (by run), the p50/p95 band and a summary."""
    rows = series_rows(script_path=script_path, metric=metric, since=since or since_days(days), until=until)
    values = [value for _, value, _, _ in rows]
    fitted = stats.trend([(_unix(at), value) for at, value, _, _ in rows])
    trend_data = fitted.as_dict()
    line: list[list[float]] = []
    if rows:
        start = rows[0][0]
        for at in (rows[0][0], rows[-1][0]):
            x = (at - start).total_seconds() / stats.SECONDS_PER_DAY
            line.append([_ms(at), fitted.intercept + fitted.slope_per_day * x])
    trend_data["line"] = line
    found = stats.anomalies(values, method=method)
    per_day: dict[str, int] = {}
    for at, _, _, _ in rows:
        day = at.date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    band = _percentiles(values, (50, 95)) if values else None
    statuses = [status for _, _, _, status in rows]
    return {
        "points": [[_ms(at), value, run_id, status] for at, value, run_id, status in rows],
        "trend": trend_data,
        "anomalies": [rows[a.index][2] for a in found.anomalies],
        "baseline": band,
        "summary": {
            "runs": len(rows),
            "success_rate": _success_rate(statuses),
            "runs_per_day": [[day, count] for day, count in sorted(per_day.items())],
            **_percentiles(values, (50, 90, 95, 99)),
        },
    }


def overview(*, days: int, limit: int) -> dict[str, Any]:
    """Across scripts over the last ``days``, by duration points (one per run): the
    slowest (by mean duration), the most failing (by failure rate, scripts with failures
    only) and the most regressed (duration trend increasing, by its change in %). One
    grouped query (:func:`script_aggregates`); Python only ranks one row per script."""
    slowest: list[dict[str, Any]] = []
    failing: list[dict[str, Any]] = []
    regressed: list[dict[str, Any]] = []
    for entry in script_aggregates(since=since_days(days)):
        path, runs = entry["script_path"], entry["runs"]
        slowest.append({"script_path": path, "mean": entry["mean"], "max": entry["max"], "runs": runs})
        if entry["failures"]:
            failing.append(
                {
                    "script_path": path,
                    "failure_rate": entry["failures"] / runs,
                    "runs": runs,
                    "failures": entry["failures"],
                }
            )
        trend = entry["trend"]
        if trend["direction"] == "increasing":
            regressed.append(
                {
                    "script_path": path,
                    "change_percent": trend["change_percent"],
                    "slope_per_day": trend["slope_per_day"],
                    "direction": trend["direction"],
                    "runs": runs,
                }
            )
    slowest.sort(key=lambda e: (-e["mean"], e["script_path"]))
    failing.sort(key=lambda e: (-e["failure_rate"], -e["failures"], e["script_path"]))
    regressed.sort(key=lambda e: (-e["change_percent"], e["script_path"]))
    return {"slowest": slowest[:limit], "most_failing": failing[:limit], "most_regressed": regressed[:limit]}


def history_scripts() -> list[dict[str, Any]]:
    """Every script with history and its metrics (the Analytics page's pickers), by path."""
    scripts: dict[str, list[str]] = {}
    for path, metric in Series.objects.order_by("script_path", "metric").values_list("script_path", "metric"):
        scripts.setdefault(path, []).append(metric)
    return [{"script_path": path, "metrics": metrics} for path, metrics in scripts.items()]


SUMMARY_RUNS = 30
SUMMARY_DAYS = 30


def script_summary(*, script_path: str) -> dict[str, Any]:
    """A script's page: its last 30 runs (oldest first), and over the last 30 days its
    duration trend, success rate and median duration."""
    last = last_rows(script_path=script_path, metric=DURATION, count=SUMMARY_RUNS)
    window = series_rows(script_path=script_path, metric=DURATION, since=since_days(SUMMARY_DAYS))
    values = [value for _, value, _, _ in window]
    return {
        "script_path": script_path,
        "last_runs": [
            {"run_id": run_id, "status": status, "recorded_at": at, "duration": value}
            for at, value, run_id, status in last
        ],
        "trend": stats.trend([(_unix(at), value) for at, value, _, _ in window]).as_dict(),
        "success_rate": _success_rate([status for _, _, _, status in window]),
        "p50": stats.percentile(values, 50) if values else None,
    }
