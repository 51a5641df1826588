"""A run's metrics: ``::metric`` lines read as output is written, and what a finished run
records (the analysis, the history points). Scripts run for real through the sync path
(``run_execute`` in the test process), as in tests/runs/test_execution.py."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics import metrics as metric_lines
from analytics.metrics import MAX_CUSTOM_METRICS, MetricCapture, parse_metric_line
from analytics.models import BUILTIN_METRICS, Point, RunAnalysis, Series, path_key
from runs.logstore import LogReader, LogWriter
from runs.models import Run, RunStatus
from runs.services import lifecycle, run_enqueue, run_execute
from tests.runs.helpers import strays

__all__ = ["strays"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.usefixtures("strays", "no_dispatch")


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue without handing the run to django-q: the tests call ``run_execute`` themselves."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


def run_script(script: Path, **params: Any) -> Run:
    run = run_enqueue(params={"script_path": str(script), **params}, source="test")
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    return run


def points_of(run: Run) -> dict[str, tuple[float, str]]:
    rows = Point.objects.filter(run_id=run.pk).values_list("series__metric", "value", "status")
    return {metric: (value, status) for metric, value, status in rows}


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"::metric rows=42", ("rows", 42.0)),
        (b"::metric  latency.p95 = 0.25  ", ("latency.p95", 0.25)),
        (b"::metric _x-1=-1e3", ("_x-1", -1000.0)),
        (b"::metric rows=nan", None),
        (b"::metric rows=inf", None),
        (b"::metric rows=12abc", None),
        (b"::metric rows", None),
        (b"::metric 1rows=1", None),
        (b"::metric " + b"a" * 65 + b"=1", None),
        (b"::metric duration_seconds=1", None),  # built-in: measured, never overridden
        (b"::metric cost=0", None),
        (b" ::metric rows=1", None),  # at the start of the line only
        (b"::metrics rows=1", None),
        (b"rows=1", None),
    ],
)
def test_parse_metric_line(line: bytes, expected: tuple[str, float] | None) -> None:
    assert parse_metric_line(line) == expected


def test_builtin_names_are_the_models() -> None:
    assert frozenset(BUILTIN_METRICS) == metric_lines.BUILTIN_NAMES


def test_lines_split_across_writes_are_read_whole_and_the_last_value_wins() -> None:
    text = (
        b"hello\n::metric a=1\nnoise ::metric b=2\n::metric c=3.5\r\n"
        + b"y" * 300
        + b"::metric d=1\n::metric e=nan\n::metric a=7\n::metric z=9"
    )
    rng = random.Random(12)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 10)))
        capture = MetricCapture()
        notes = []
        for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
            piece = text[start:end]
            # Half the pieces as the engine hands them: a view into a larger read.
            chunk = memoryview(b"<" + piece + b">")[1:-1] if rng.random() < 0.5 else piece
            notes.append(capture.feed(chunk))
        notes.append(capture.finish())
        assert capture.values == {"a": 7.0, "c": 3.5, "z": 9.0}, cuts
        assert capture.invalid == 1 and len([n for n in notes if n]) == 1


def test_at_most_a_hundred_names_are_kept() -> None:
    capture = MetricCapture()
    capture.feed(b"".join(b"::metric m%d=%d\n" % (i, i) for i in range(MAX_CUSTOM_METRICS + 5)))
    capture.feed(b"::metric m0=-1\n")  # a known name still updates
    assert len(capture.values) == MAX_CUSTOM_METRICS
    assert capture.values["m0"] == -1 and f"m{MAX_CUSTOM_METRICS}" not in capture.values
    assert capture.invalid == 5


def test_the_log_writer_captures_stdout_only_and_notes_one_invalid_line(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "run", cap_bytes=1 << 20)
    writer.write("stderr", b"::metric err=1\n", 1.0)
    writer.write("stdout", b"::metric rows=5\n::metric bad=x\n", 1.0)
    writer.write("stdout", b"::metric worse=y\n::metric rows=", 2.0)
    writer.write("stdout", b"6\n", 3.0)
    writer.close()

    assert writer.metrics.values == {"rows": 6.0}
    system = LogReader(tmp_path / "run").read_bytes(stream="system")[0].decode()
    assert system.count("\n") == 1 and "invalid ::metric line" in system and "'bad'" in system


# -- a real run -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_records_its_builtin_and_custom_metrics(make_script: Callable[..., Path]) -> None:
    script = make_script(
        "metrics.py",
        """
        import sys
        sys.stdout.write("working\\n::metric rows=10\\n")
        sys.stdout.flush()
        sys.stdout.write("::metric rows=12\\n::metric latency.p95=0.5\\n::metric exit_code=9\\n")
        """,
    )
    run = run_script(script)

    assert run.status == RunStatus.COMPLETED
    analysis = RunAnalysis.objects.get(run_id=run.pk)
    assert analysis.metrics["rows"] == 12 and analysis.metrics["latency.p95"] == 0.5
    assert analysis.metrics["exit_code"] == 0  # built-in: the script cannot override it
    assert analysis.metrics["duration_seconds"] == pytest.approx(run.duration)
    assert analysis.metrics["output_bytes"] == run.output_bytes
    assert analysis.metrics["attempts"] == 1
    assert analysis.metrics["peak_rss_mb"] == pytest.approx(run.peak_rss / 1024**2, abs=1e-3)
    assert analysis.gates == [] and analysis.comparison is None and analysis.cost is None
    assert analysis.junit == ""

    points = points_of(run)
    assert set(points) == {
        "duration_seconds",
        "cpu_time_seconds",
        "peak_rss_mb",
        "avg_cpu_percent",
        "exit_code",
        "output_bytes",
        "attempts",
        "rows",
        "latency.p95",
    }
    assert points["rows"] == (12.0, "completed")
    series = Series.objects.get(path_key=path_key(run.script_path), metric="rows")
    assert series.script_path == run.script_path
    system = LogReader(run.output_dir).read_bytes(stream="system")[0].decode()
    assert "'exit_code' is a built-in metric" in system


@pytest.mark.django_db
def test_a_second_run_reuses_the_series(make_script: Callable[..., Path]) -> None:
    script = make_script("again.sh", "echo '::metric rows=1'\n")
    first, second = run_script(script), run_script(script)

    def series_of(run: Run) -> dict[str, int]:
        return dict(Point.objects.filter(run_id=run.pk).values_list("series__metric", "series_id"))

    # A metric sampled in one run only (a run too short for a resource sample) has one series too.
    shared = series_of(first).keys() & series_of(second).keys()
    assert {"rows", "duration_seconds", "exit_code"} <= shared
    assert all(series_of(first)[metric] == series_of(second)[metric] for metric in shared)
    metrics = series_of(first).keys() | series_of(second).keys()
    assert Series.objects.filter(path_key=path_key(first.script_path)).count() == len(metrics)
    assert points_of(second)["rows"] == (1.0, "completed")


@pytest.mark.django_db
def test_without_history_no_points_are_recorded_but_the_analysis_is(make_script: Callable[..., Path]) -> None:
    script = make_script("quiet.sh", "echo '::metric rows=3'\n")
    run = run_script(script, enable_history=False)

    assert not Point.objects.filter(run_id=run.pk).exists()
    assert RunAnalysis.objects.get(run_id=run.pk).metrics["rows"] == 3


@pytest.mark.django_db
def test_failed_runs_record_history_with_their_status(make_script: Callable[..., Path]) -> None:
    script = make_script("fails.sh", "echo '::metric rows=2'\nexit 3\n")
    run = run_script(script)

    assert run.status == RunStatus.FAILED
    points = points_of(run)
    assert points["exit_code"] == (3.0, "failed") and points["rows"] == (2.0, "failed")


@pytest.mark.django_db
def test_an_analytics_failure_never_loses_the_runs_end(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs.services import execution

    def broken(**kwargs: object) -> None:
        raise RuntimeError("analytics bug")

    monkeypatch.setattr(execution, "run_analyse", broken)
    run = run_script(make_script("fine.sh", "echo ok\n"), performance_gates=[{"metric": "x", "max_value": 1}])

    assert run.status == RunStatus.COMPLETED  # ended as the script said, without analysis
    assert not RunAnalysis.objects.filter(run_id=run.pk).exists()
