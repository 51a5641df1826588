"""What analytics makes of a run when it ends: :func:`run_analyse`.

Called by the runner (``runs.services.execution._finalise``) inside the run's final
transaction, before the terminal status is written, with the run's facts as plain data
(:class:`RunFacts`: this app never imports ``runs``). In order:

1. the metrics: the built-in ones and the script's ``::metric`` lines (and ``cost``);
2. the performance gates, on a run whose script finished (not a cancelled one): a violated
   gate turns ``completed`` into ``failed`` (:class:`Verdict`, which the runner writes);
3. the history points (``enable_history``): one bulk insert, with the final status;
4. ``save_baseline`` / ``load_baseline`` by name, the JUnit report, the cost;
5. the alert rules (``analytics.services.alerts``: deliveries are queued on commit);
6. one :class:`~analytics.models.RunAnalysis` row, shown in the run's record.

It runs on the runner host's database thread, in a transaction shared with other runs'
writes: a few statements, no scan. Only alerts that compare with a learned baseline read
history (the script's last successful runs, through the series index).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

from django.db import connections

from analytics import conf
from analytics.expressions import parse
from analytics.models import Baseline, Point, RunAnalysis, Series, path_key
from analytics.services.alerts import alerts_evaluate
from analytics.stats import baseline as learned
from core.precompiled import KeptRead, inserts_prepared

GIB = 1024**3
MIB = 1024**2
# The baseline statistic a run's value is compared with (load_baseline), by preference.
COMPARED_STATS = ("p50", "mean", "median")
FINISHED = ("completed", "failed")  # the script ran to its end: gates judge it


@dataclass(frozen=True)
class AttemptFacts:
    """One attempt of a run, for its JUnit report."""

    number: int
    run_status: str  # success | failed | timeout | killed
    exit_code: int | None
    duration: float
    reason: str = ""


@dataclass(frozen=True)
class RunFacts:
    """A run as it ends, before its terminal write: what analytics needs of it."""

    run_id: str
    script_path: str
    status: str  # completed | failed | cancelled, as the script's outcome says
    run_status: str  # success | failed | timeout | killed
    source: str
    finished_at: datetime
    duration_seconds: float
    cpu_time_seconds: float
    peak_rss_bytes: int | None
    avg_cpu_percent: float
    exit_code: int | None
    output_bytes: int
    attempt_count: int = 1
    attempts: Sequence[AttemptFacts] = ()
    custom_metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""  # why the run did not succeed (the error summary's reason)
    scheduled: bool = False
    enable_history: bool = True
    performance_gates: Sequence[Mapping[str, Any]] = ()
    junit_output: bool = False
    save_baseline: str | None = None
    load_baseline: str | None = None
    alerts: Sequence[Mapping[str, Any]] = ()
    slack_webhook: str | None = None
    enable_cost_tracking: bool = False


@dataclass(frozen=True)
class Verdict:
    """What the runner writes: the final ``status`` (``failed`` when a gate was violated),
    the gates with their outcome, and the violated ones."""

    status: str
    metrics: dict[str, float]
    gates: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    alert_deliveries: list[int]

    def reason(self) -> str:
        """The violations in one sentence, for the run's error summary."""
        return "performance gates violated: " + "; ".join(v["message"] for v in self.violations)


def run_analyse(*, facts: RunFacts) -> Verdict:
    """Judge and record a run that has just ended (see the module's docstring). Call it
    inside the run's final transaction: the points, baseline and analysis are written
    with the run's terminal status, or not at all."""
    metrics = run_metrics(facts)
    cost: dict[str, Any] | None = None
    if facts.enable_cost_tracking:
        cost = run_cost(facts)
        metrics["cost"] = cost["total"]
    gates: list[dict[str, Any]] = []
    if facts.status in FINISHED:
        gates = gates_check(gates=facts.performance_gates, metrics=metrics)
    violations = [gate for gate in gates if not gate["passed"]]
    status = "failed" if violations else facts.status
    key = path_key(facts.script_path)
    if facts.enable_history:
        points_record(facts=facts, key=key, metrics=metrics, status=status)
    saved = None
    if facts.load_baseline:
        saved = Baseline.objects.filter(path_key=key, name=facts.load_baseline).first()
    comparison = None
    if facts.load_baseline:
        comparison = baseline_compare(name=facts.load_baseline, baseline=saved, metrics=metrics)
    if facts.save_baseline and status == "completed":
        baseline_save_from_run(facts=facts, key=key, metrics=metrics)
    junit = junit_report(facts=facts, gates=gates, status=status) if facts.junit_output else ""
    deliveries: list[int] = []
    if facts.alerts:
        deliveries = _alerts(facts=facts, key=key, metrics=metrics, status=status, saved=saved)
    # One insert: a run ends once (its final write is a compare-and-set on ``running``).
    analysis = RunAnalysis(
        run_id=facts.run_id, metrics=metrics, gates=gates, comparison=comparison, cost=cost, junit=junit
    )
    inserts_prepared([[analysis]]).execute()  # its statement built once (precompiled)
    return Verdict(
        status=status, metrics=metrics, gates=gates, violations=violations, alert_deliveries=deliveries
    )


# -- metrics ---------------------------------------------------------------------------------


def run_metrics(facts: RunFacts) -> dict[str, float]:
    """The run's values by metric name: the built-in ones, then the script's own."""
    metrics: dict[str, float] = {
        "duration_seconds": round(facts.duration_seconds, 6),
        "cpu_time_seconds": round(facts.cpu_time_seconds, 6),
        "avg_cpu_percent": round(facts.avg_cpu_percent, 2),
        "output_bytes": float(facts.output_bytes),
        "attempts": float(facts.attempt_count),
    }
    if facts.peak_rss_bytes:
        metrics["peak_rss_mb"] = round(facts.peak_rss_bytes / MIB, 3)
    if facts.exit_code is not None:
        metrics["exit_code"] = float(facts.exit_code)
    # Built-in names are refused when the lines are read (analytics.metrics): never overridden.
    metrics.update({name: value for name, value in facts.custom_metrics.items() if name not in metrics})
    return metrics


def run_cost(facts: RunFacts) -> dict[str, Any]:
    """The estimated cost: CPU hours and memory GB-hours (the peak held for the whole
    duration: an upper bound the samples cannot refine) at the configured prices."""
    cpu_price = conf.cost_cpu_hour()
    gb_price = conf.cost_gb_hour()
    peak_gb = (facts.peak_rss_bytes or 0) / GIB
    hours = facts.duration_seconds / 3600
    cpu_part = facts.cpu_time_seconds / 3600 * cpu_price
    memory_part = peak_gb * hours * gb_price
    return {
        "total": round(cpu_part + memory_part, 8),
        "cpu": round(cpu_part, 8),
        "memory": round(memory_part, 8),
        "cpu_seconds": round(facts.cpu_time_seconds, 6),
        "peak_rss_gb": round(peak_gb, 6),
        "duration_hours": round(hours, 8),
        "cpu_hour_price": cpu_price,
        "gb_hour_price": gb_price,
    }


def gates_check(*, gates: Sequence[Mapping[str, Any]], metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each gate with the run's ``value`` and whether it ``passed``. A gate on a metric the
    run did not report fails: a gate that cannot be checked must not let a run through."""
    out: list[dict[str, Any]] = []
    for gate in gates:
        metric = str(gate["metric"])
        low, high = gate.get("min_value"), gate.get("max_value")
        value = metrics.get(metric)
        problems: list[str] = []
        if value is None:
            problems.append(f"{metric} has no value")
        else:
            if high is not None and value > high:
                problems.append(f"{metric} {_num(value)} > max {_num(high)}")
            if low is not None and value < low:
                problems.append(f"{metric} {_num(value)} < min {_num(low)}")
        result: dict[str, Any] = {"metric": metric, "max_value": high, "min_value": low, "value": value}
        result["passed"] = not problems
        if problems:
            result["message"] = ", ".join(problems)
        out.append(result)
    return out


def _num(value: float) -> str:
    return f"{value:g}"


# -- history points --------------------------------------------------------------------------


_SAMPLE_KEY = "scriptops-sample-path-key"


_SERIES_OF = KeptRead(
    "analytics.series_of",
    lambda key: Series.objects.filter(path_key=key).values("metric", "id"),
    samples={"key": _SAMPLE_KEY},
)


def _series_of(key: str) -> list[dict[str, Any]]:
    """Every series of a script (a few: its metrics), by one indexed read compiled once
    per connection: it runs in every run's final write, while the runner holds SQLite's
    write lock (the queryset's compilation cost ~0.4 ms, the read ~0.05)."""
    return _SERIES_OF.rows(connections[Series.objects.db], key=key)


def series_ids(*, script_path: str, key: str, metrics: Sequence[str]) -> dict[str, int]:
    """The series ids of ``metrics`` of a script, created if new.

    Looked up each run (one indexed query), not cached per process: a cached id of a series
    deleted since (by the admin, by another process) would break the run's whole final
    transaction at commit, where SQLite checks foreign keys."""
    wanted = set(metrics)
    ids = {row["metric"]: row["id"] for row in _series_of(key) if row["metric"] in wanted}
    missing = [metric for metric in metrics if metric not in ids]
    if missing:
        # ignore_conflicts: another worker may create the same series at the same time.
        Series.objects.bulk_create(
            [Series(script_path=script_path, path_key=key, metric=metric) for metric in missing],
            ignore_conflicts=True,
        )
        ids.update(Series.objects.filter(path_key=key, metric__in=missing).values_list("metric", "id"))
    return ids


def points_record(*, facts: RunFacts, key: str, metrics: Mapping[str, float], status: str) -> int:
    """One point per metric of the run, in one insert. Returns how many."""
    ids = series_ids(script_path=facts.script_path, key=key, metrics=list(metrics))
    points = [
        Point(
            series_id=ids[metric],
            run_id=facts.run_id,
            recorded_at=facts.finished_at,
            value=value,
            status=status,
            source=facts.source[:20],
        )
        for metric, value in metrics.items()
        if metric in ids
    ]
    inserts_prepared([points]).execute()  # bulk_create's INSERT, its text built once
    return len(points)


# -- baselines -------------------------------------------------------------------------------


def baseline_save_from_run(*, facts: RunFacts, key: str, metrics: Mapping[str, float]) -> Baseline:
    """``save_baseline``: this run's values under a name (method ``run``; every statistic is
    the value, ``std`` 0). Saving a name again replaces it."""
    stats = {
        metric: {"n": 1, "p50": v, "p90": v, "p95": v, "p99": v, "mean": v, "std": 0.0}
        for metric, v in metrics.items()
    }
    baseline, _ = Baseline.objects.update_or_create(
        path_key=key,
        name=facts.save_baseline,
        defaults={
            "script_path": facts.script_path,
            "method": "run",
            "days": None,
            "metrics": stats,
            "run_id": facts.run_id,
        },
    )
    return baseline


def baseline_compare(*, name: str, baseline: Baseline | None, metrics: Mapping[str, float]) -> dict[str, Any]:
    """``load_baseline``: each metric of the run against the baseline's p50 (its mean, for a
    baseline without percentiles): ``{value, baseline, ratio, change_percent}``."""
    if baseline is None:
        return {"baseline": name, "error": "not found"}
    compared: dict[str, dict[str, float | None]] = {}
    for metric, stats in (baseline.metrics or {}).items():
        value = metrics.get(metric)
        reference = next(
            (stats[s] for s in COMPARED_STATS if isinstance(stats, dict) and stats.get(s) is not None), None
        )
        if value is None or reference is None:
            continue
        reference = float(reference)
        compared[metric] = {
            "value": value,
            "baseline": reference,
            "ratio": round(value / reference, 6) if reference else None,
            "change_percent": round((value - reference) / abs(reference) * 100, 4) if reference else None,
        }
    return {
        "baseline": name,
        "method": baseline.method,
        "created_at": baseline.created_at.isoformat(),
        "metrics": compared,
    }


# -- JUnit -----------------------------------------------------------------------------------


def junit_report(*, facts: RunFacts, gates: Sequence[Mapping[str, Any]], status: str) -> str:
    """A JUnit XML report: one test case per attempt (a failed one as a failure, a stopped
    one as skipped) and one per performance gate (violated: a failure). Kept in the run's
    analysis and served by ``GET /api/runs/{id}/junit``; nothing is written to disk."""
    name = PurePath(facts.script_path).name or facts.script_path
    suite = ET.Element(
        "testsuite",
        name=f"scriptops.{name}",
        timestamp=facts.finished_at.isoformat(),
        time=f"{facts.duration_seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for prop, value in (
        ("run_id", facts.run_id),
        ("script_path", facts.script_path),
        ("status", status),
        ("source", facts.source),
    ):
        ET.SubElement(properties, "property", name=prop, value=value)
    failures = skipped = 0
    for attempt in facts.attempts or [
        AttemptFacts(1, facts.run_status, facts.exit_code, facts.duration_seconds)
    ]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=name,
            name=f"attempt {attempt.number}",
            time=f"{attempt.duration:.3f}",
        )
        if attempt.run_status == "killed":
            skipped += 1
            ET.SubElement(case, "skipped", message=attempt.reason or "stopped")
        elif attempt.run_status != "success":
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                type=attempt.run_status,
                message=f"exit code {attempt.exit_code}" + (f": {attempt.reason}" if attempt.reason else ""),
            )
            failure.text = attempt.reason or facts.reason
    for gate in gates:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.gates", name=_gate_name(gate), time="0")
        if not gate["passed"]:
            failures += 1
            ET.SubElement(case, "failure", type="performance_gate", message=str(gate.get("message", "")))
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="scriptops", tests=suite.get("tests", "0"), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _gate_name(gate: Mapping[str, Any]) -> str:
    parts = []
    if gate.get("min_value") is not None:
        parts.append(f">= {_num(gate['min_value'])}")
    if gate.get("max_value") is not None:
        parts.append(f"<= {_num(gate['max_value'])}")
    return f"gate {gate['metric']} " + " and ".join(parts)


# -- alerts ----------------------------------------------------------------------------------


def _alerts(
    *, facts: RunFacts, key: str, metrics: Mapping[str, float], status: str, saved: Baseline | None
) -> list[int]:
    refs: set[tuple[str, str]] = set()
    for rule in facts.alerts:
        condition = rule.get("condition")
        if condition:
            refs |= parse(str(condition)).baseline_refs()
    baselines = baselines_for_alerts(
        key=key, metrics={metric for metric, _ in refs}, saved=saved, run_id=facts.run_id
    )
    values: dict[str, float | str | None] = {
        **metrics,
        "status": status,
        "run_status": "failed" if status == "failed" else facts.run_status,
        "source": facts.source,
    }
    return alerts_evaluate(
        run_id=facts.run_id,
        script_path=facts.script_path,
        status=status,
        source=facts.source,
        scheduled=facts.scheduled,
        values=values,
        rules=[dict(rule) for rule in facts.alerts],
        slack_webhook=facts.slack_webhook,
        baselines=baselines,
    )


def baselines_for_alerts(
    *, key: str, metrics: set[str], saved: Baseline | None, run_id: str
) -> dict[str, dict[str, float | None]]:
    """The baseline an alert condition compares with, per metric it names: the saved one
    the run loaded, else the one learned from the script's last successful runs
    (``SCRIPTOPS_ANALYTICS_USUAL_RUNS``), percentile method."""
    out: dict[str, dict[str, float | None]] = {}
    if not metrics:
        return out
    stored = (saved.metrics or {}) if saved is not None else {}
    ids = dict(Series.objects.filter(path_key=key, metric__in=metrics).values_list("metric", "id"))
    for metric in sorted(metrics):
        if isinstance(stored.get(metric), dict):
            out[metric] = {k: _float(v) for k, v in stored[metric].items()}
            continue
        if metric not in ids:
            continue
        values = list(
            Point.objects.filter(series_id=ids[metric], status="completed")
            .exclude(run_id=run_id)
            .order_by("-recorded_at")
            .values_list("value", flat=True)[: conf.usual_runs()]
        )
        out[metric] = {k: _float(v) for k, v in learned(values).items()}
    return out


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
