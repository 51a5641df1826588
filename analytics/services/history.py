"""Writes on the history: saved baselines, benchmarks, cleanup; and the streamed export.

Baselines and benchmarks are computed from the history with :mod:`analytics.stats`
(the same figures the API shows); this module only reads the points, calls it and
stores the result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from analytics import selectors, stats
from analytics.models import Baseline, Benchmark, Point, Series, path_key
from audit.services import record
from core.errors import InvalidInput, NotFound
from core.models import User

CLEANUP_BATCH = 5000
EXPORT_HEADER = ("recorded_at", "script_path", "run_id", "status", "source", "metric", "value")
# Rows gathered before a chunk is handed to the server: one write per row would cost more
# than the row itself; a few hundred rows is a few tens of KB.
EXPORT_ROWS_PER_CHUNK = 4000


def _metric_values(*, script_path: str, days: int, metrics: Sequence[str] | None) -> dict[str, list[float]]:
    """``{metric: values over the last days}`` of a script: ``metrics`` or all it has."""
    known = selectors.script_metrics(script_path=script_path)
    names = list(metrics) if metrics else list(known)
    since = selectors.since_days(days)
    return {
        name: (selectors.series_values(series=known[name], since=since) if name in known else [])
        for name in names
    }


def baseline_save(
    *,
    name: str,
    script_path: str,
    method: str = "percentile",
    days: int = 30,
    metric: str | None = None,
    user: User | None = None,
) -> Baseline:
    """Save the baseline of a script (one metric, or every metric it has) over the last
    ``days`` under ``name``; saving a name again replaces it (as a run's
    ``save_baseline`` does). Refused when there is no history to learn from: an empty
    baseline would make every later comparison silently compare with nothing."""
    values = _metric_values(script_path=script_path, days=days, metrics=[metric] if metric else None)
    values = {m: v for m, v in values.items() if v}
    if not values:
        what = f"{metric} of {script_path}" if metric else script_path
        raise InvalidInput(
            "script_path", f"No history of {what} in the last {days} days to learn a baseline from."
        )
    try:
        figures = {m: stats.baseline(v, method=method) for m, v in values.items()}
    except ValueError as exc:
        raise InvalidInput("method", str(exc)) from exc
    baseline, _ = Baseline.objects.update_or_create(
        path_key=path_key(script_path),
        name=name,
        defaults={
            "script_path": script_path,
            "method": method,
            "days": days,
            "metrics": figures,
            "run_id": None,
            "created_at": timezone.now(),
            "created_by": user,
        },
    )
    return baseline


def baseline_delete(*, baseline_id: int) -> None:
    name = Baseline.objects.filter(pk=baseline_id).values_list("name", flat=True).first()
    deleted, _ = Baseline.objects.filter(pk=baseline_id).delete()
    if not deleted:
        raise NotFound(f"No baseline {baseline_id}.")
    record(
        action="analytics.baseline_delete",
        object_type="baseline",
        object_id=baseline_id,
        summary=f"deleted baseline {name}",
    )


def benchmark_create(
    *,
    name: str,
    script_path: str,
    days: int = 30,
    metrics: Sequence[str] | None = None,
    user: User | None = None,
) -> Benchmark:
    """Snapshot a script's metrics over the last ``days`` as the next version of ``name``
    (``{metric: stats.describe()}``; every metric the script has when ``metrics`` is empty).

    The version is the name's highest + 1, read and written in one transaction; two
    snapshots of a name at the same moment both read the same highest, and the unique
    (name, version) constraint refuses the second: it reads again and retries once."""
    values = _metric_values(script_path=script_path, days=days, metrics=metrics)
    if not any(values.values()):
        raise InvalidInput(
            "script_path", f"No history of {script_path} in the last {days} days to benchmark."
        )
    figures = {m: stats.describe(v) for m, v in values.items()}
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return Benchmark.objects.create(
                    name=name,
                    version=benchmark_next_version(name=name),
                    script_path=script_path,
                    path_key=path_key(script_path),
                    days=days,
                    metrics=figures,
                    created_by=user,
                )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def benchmark_next_version(*, name: str) -> int:
    """The version a new snapshot of ``name`` takes: its highest + 1 (1 for a new name)."""
    highest: int | None = Benchmark.objects.filter(name=name).aggregate(v=Max("version"))["v"]
    return (highest or 0) + 1


def benchmark_regressions(
    *, name: str, version: int | None = None, threshold: float = 10.0
) -> dict[str, Any]:
    """Compare a version (the latest by default) with the one before it: each metric of
    both, by its mean; higher is worse for every metric, so a metric *regressed* when its
    mean grew by more than ``threshold`` % (or grew at all from 0, where no % exists)."""
    current, previous = selectors.benchmark_pair(name=name, version=version)
    if current is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFound(f"No benchmark {which}{name!r}.")
    compared: list[dict[str, Any]] = []
    if previous is not None:
        for metric in sorted(set(current.metrics) & set(previous.metrics)):
            now, before = current.metrics[metric].get("mean"), previous.metrics[metric].get("mean")
            if now is None or before is None:
                continue
            change = (now - before) / abs(before) * 100.0 if before != 0 else None
            regressed = change > threshold if change is not None else now > before
            compared.append(
                {
                    "metric": metric,
                    "previous": before,
                    "current": now,
                    "change_percent": change,
                    "regressed": regressed,
                }
            )
    return {
        "name": name,
        "version": current.version,
        "previous_version": previous.version if previous is not None else None,
        "threshold": threshold,
        "regressions": [{k: v for k, v in c.items() if k != "regressed"} for c in compared if c["regressed"]],
        "compared": compared,
    }


def history_cleanup(*, days: int = 90, batch_size: int = CLEANUP_BATCH) -> int:
    """Delete the points recorded more than ``days`` ago, then the series left empty.
    Returns how many points were deleted.

    In batches of ``batch_size``, each its own short transaction: one DELETE of a million
    rows would hold SQLite's single write lock (every finishing run waits on it) for the
    whole time. Only series idle since before the cutoff are removed, so a series a run
    has just created for its first point is never taken from under it."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        batch = Point.objects.filter(recorded_at__lt=cutoff).order_by().values("pk")[:batch_size]
        count, _ = Point.objects.filter(pk__in=batch).delete()
        deleted += count
        if count < batch_size:
            break
    with transaction.atomic():
        Series.objects.filter(created_at__lt=cutoff).filter(
            ~Exists(Point.objects.filter(series_id=OuterRef("pk")))
        ).delete()
        record(
            action="analytics.cleanup",
            object_type="history",
            summary=f"deleted {deleted} history points older than {days} days",
            data={"days": days, "deleted": deleted},
        )
    return deleted


# -- export ----------------------------------------------------------------------------------


def _csv_field(text: str) -> str:
    """One CSV field, quoted when it must be (RFC 4180, as csv.writer quotes)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def history_export_csv(filters: selectors.HistoryFilter) -> Iterator[bytes]:
    """The filtered history as CSV (``EXPORT_HEADER``), oldest first, a chunk of a few
    hundred rows at a time: nothing but one chunk is ever held in memory.

    Rows are formatted by hand, not by ``csv.writer``: the fields a script controls
    (its path, metric names, the source) are quoted once per series or value and
    reused; the others (times, uuids, numbers, statuses) never need quoting. Half the
    cost of a row otherwise, at a million rows."""
    names = selectors.export_series(filters)
    yield (",".join(EXPORT_HEADER) + "\n").encode()
    if not names:
        return
    prefixes: dict[int, tuple[str, str]] = {
        sid: (_csv_field(path), _csv_field(metric)) for sid, (path, metric) in names.items()
    }
    sources: dict[str, str] = {}
    lines: list[str] = []
    for sid, at, run, value, status, source in selectors.export_points(filters):
        # A series created after the names were read (a new script's first run during a
        # long export) has no name here: skipped, as it would have been a moment earlier.
        named = prefixes.get(sid)
        if named is None:
            continue
        quoted = sources.get(source)
        if quoted is None:
            quoted = sources[source] = _csv_field(source)
        lines.append(f"{at},{named[0]},{run},{status},{quoted},{named[1]},{value!r}\n")
        if len(lines) >= EXPORT_ROWS_PER_CHUNK:
            yield "".join(lines).encode()
            lines.clear()
    if lines:
        yield "".join(lines).encode()


def history_export_json(filters: selectors.HistoryFilter) -> Iterator[bytes]:
    """The filtered history as one JSON array of row objects (the history list's rows),
    streamed: ``[`` first, then chunks of rows, then ``]``."""
    names = selectors.export_series(filters)
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    encoded = {sid: (encode(path), encode(metric)) for sid, (path, metric) in names.items()}
    texts: dict[str, str] = {}  # statuses and sources: a handful of values, encoded once
    parts: list[str] = []
    separator = "["
    for sid, at, run, value, status, source in selectors.export_points(filters) if names else ():
        named = encoded.get(sid)
        if named is None:
            continue
        run_text = f'"{run}"' if run else "null"
        status_text = texts.get(status) or texts.setdefault(status, encode(status))
        source_text = texts.get(source) or texts.setdefault(source, encode(source))
        number = repr(value) if math.isfinite(value) else "null"  # JSON has no NaN/inf
        parts.append(
            f'{separator}{{"recorded_at":"{at}","script_path":{named[0]},"run_id":{run_text},'
            f'"status":{status_text},"source":{source_text},"metric":{named[1]},"value":{number}}}\n'
        )
        separator = ","
        if len(parts) >= EXPORT_ROWS_PER_CHUNK:
            yield "".join(parts).encode()
            parts.clear()
    parts.append("[]" if separator == "[" else "]")
    yield "".join(parts).encode()
