"""The selectors behind the Analytics page's overview and the runs table's sparklines:
figures summed in SQL, equal to the Python statistics, in a bounded number of queries."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import selectors, stats
from tests.analytics.history_helpers import OTHER, SCRIPT, record

pytestmark = pytest.mark.django_db


def test_the_trend_summed_in_sql_is_the_least_squares_line_of_stats() -> None:
    rng = random.Random(12)
    values = [10 + i * 0.3 + rng.uniform(-2, 2) for i in range(200)]
    step = timedelta(minutes=97)
    points = record(values, script_path=SCRIPT, step=step)
    (entry,) = selectors.script_aggregates(since=timezone.now() - timedelta(days=30))
    fitted = stats.trend([(p.recorded_at.timestamp(), p.value) for p in points])
    assert entry["runs"] == 200
    assert entry["mean"] == pytest.approx(sum(values) / 200)
    assert entry["max"] == max(values)
    assert entry["trend"]["slope_per_day"] == pytest.approx(fitted.slope_per_day, rel=1e-6)
    assert entry["trend"]["change_percent"] == pytest.approx(fitted.change_percent, rel=1e-6)
    assert entry["trend"]["direction"] == fitted.direction == "increasing"


def test_aggregates_count_failures_and_keep_to_the_window() -> None:
    old = timezone.now() - timedelta(days=40)
    record([100.0, 100.0], script_path=SCRIPT, start=old)  # outside the window
    record([1.0, 2.0, 3.0], script_path=SCRIPT, start=timezone.now() - timedelta(hours=5),
           statuses=["failed", "completed", "failed"])  # fmt: skip
    (entry,) = selectors.script_aggregates(since=timezone.now() - timedelta(days=30))
    assert (entry["runs"], entry["failures"], entry["max"]) == (3, 2, 3.0)


def test_a_single_point_or_a_flat_series_is_stable() -> None:
    record([5.0], script_path=SCRIPT)
    record([3.0, 3.0, 3.0, 3.0], script_path=OTHER)
    found = {
        e["script_path"]: e["trend"]
        for e in selectors.script_aggregates(since=timezone.now() - timedelta(days=1))
    }
    assert found[SCRIPT] == {"slope_per_day": 0.0, "change_percent": None, "direction": "stable"}
    assert found[OTHER]["direction"] == "stable" and found[OTHER]["slope_per_day"] == pytest.approx(
        0.0, abs=1e-9
    )


def test_the_overview_costs_two_queries_however_many_scripts(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    for i in range(25):
        record(
            [1.0 + i, 2.0 + i, 4.0 + i],
            script_path=f"/srv/s{i}.py",
            statuses=["failed", "completed", "completed"],
        )
    with django_assert_num_queries(2):  # the series' names, then one grouped aggregate
        body = selectors.overview(days=30, limit=3)
    assert [e["script_path"] for e in body["slowest"]] == ["/srv/s24.py", "/srv/s23.py", "/srv/s22.py"]
    assert len(body["most_failing"]) == 3 and body["most_failing"][0]["failure_rate"] == pytest.approx(1 / 3)
    assert body["most_regressed"][0]["script_path"] == "/srv/s0.py"  # the largest change in %


def test_sparklines_of_a_page_of_scripts_cost_two_queries(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    paths = [f"/srv/p{i}.py" for i in range(30)]
    for i, path in enumerate(paths):
        record([float(v) for v in range(i, i + 25)], script_path=path)
    with django_assert_num_queries(2):
        lines = selectors.sparklines(script_paths=[*paths, "/srv/none.py"], count=20)
    assert lines["/srv/p3.py"] == [float(v) for v in range(8, 28)]
    assert lines["/srv/none.py"] == []


def test_history_scripts_lists_each_script_with_its_metrics() -> None:
    record([1.0], script_path=OTHER, metric="peak_rss_mb")
    record([1.0], script_path=OTHER)
    record([1.0], script_path=SCRIPT)
    assert selectors.history_scripts() == [
        {"script_path": SCRIPT, "metrics": ["duration_seconds"]},  # by path
        {"script_path": OTHER, "metrics": ["duration_seconds", "peak_rss_mb"]},
    ]
