"""Benchmarks: named, versioned snapshots of a script's metrics, and their regressions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.db import IntegrityError
from rest_framework.test import APIClient

from analytics.models import Benchmark, Point
from analytics.services import history
from analytics.services.history import benchmark_create
from core.roles import Role
from tests.analytics.history_helpers import OTHER, SCRIPT, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.USER)


def create(api: APIClient, **body: Any) -> Any:
    return api.post(
        "/api/analytics/benchmarks", {"name": "nightly", "script_path": SCRIPT, **body}, format="json"
    )


def bad_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    assert field in response.json()["details"], response.json()


def test_a_benchmark_describes_each_metric_of_the_script(api: APIClient) -> None:
    durations = [3.0, 1.0, 2.0, 10.0]
    record(durations)
    record([50.0, 70.0], metric="peak_rss_mb")
    response = create(api)
    assert response.status_code == 201, response.content
    made = response.json()
    assert (made["name"], made["version"], made["script_path"], made["days"]) == ("nightly", 1, SCRIPT, 30)
    assert sorted(made["metrics"]) == ["duration_seconds", "peak_rss_mb"]
    assert made["metrics"]["duration_seconds"] == pytest.approx(
        {
            "n": 4,
            "mean": np.mean(durations),
            "p50": np.percentile(durations, 50),
            "p95": np.percentile(durations, 95),
            "min": 1.0,
            "max": 10.0,
        }
    )


def test_versions_count_up_per_name(api: APIClient) -> None:
    record([1.0, 2.0])
    record([1.0], script_path=OTHER)
    assert [create(api).json()["version"] for _ in range(3)] == [1, 2, 3]
    assert create(api, name="other", script_path=OTHER).json()["version"] == 1


def test_a_benchmark_of_chosen_metrics_holds_only_them(api: APIClient) -> None:
    record([1.0])
    record([5.0], metric="peak_rss_mb")
    made = create(api, metrics=["peak_rss_mb", "rows"]).json()
    assert made["metrics"]["peak_rss_mb"]["n"] == 1
    assert made["metrics"]["rows"] == {
        "n": 0,
        "mean": None,
        "p50": None,
        "p95": None,
        "min": None,
        "max": None,
    }
    assert "duration_seconds" not in made["metrics"]


def test_a_benchmark_without_history_is_refused(api: APIClient) -> None:
    bad_field(create(api), "script_path")
    assert not Benchmark.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a/b"}, "name"),
        ({"name": ""}, "name"),
        ({"script_path": ""}, "script_path"),
        ({"days": 0}, "days"),
        ({"days": 3651}, "days"),
        ({"metrics": ["ok", "not ok"]}, "metrics"),
        ({"metrics": "duration_seconds"}, "metrics"),
    ],
)
def test_creating_a_benchmark_refuses_bad_fields(api: APIClient, body: dict[str, Any], field: str) -> None:
    record([1.0])
    bad_field(create(api, **body), field)


def test_creating_a_benchmark_needs_the_user_role(client_for: Callable[[str], APIClient]) -> None:
    record([1.0])
    assert create(client_for(Role.EXECUTOR)).status_code == 403


def test_two_snapshots_at_once_both_get_a_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second writer reads the same highest version as the first, hits the unique
    constraint, reads again and takes the next one."""
    record([1.0])
    benchmark_create(name="race", script_path=SCRIPT)  # the other writer, version 1
    real_next = history.benchmark_next_version
    versions: list[int] = []

    def stale_then_real(*, name: str) -> int:
        versions.append(1 if not versions else real_next(name=name))  # read before theirs landed
        return versions[-1]

    monkeypatch.setattr(history, "benchmark_next_version", stale_then_real)
    made = benchmark_create(name="race", script_path=SCRIPT)
    assert versions == [1, 2] and made.version == 2
    assert sorted(Benchmark.objects.filter(name="race").values_list("version", flat=True)) == [1, 2]


def test_a_constraint_failure_twice_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    record([1.0])

    benchmark_create(name="race", script_path=SCRIPT)
    monkeypatch.setattr(history, "benchmark_next_version", lambda *, name: 1)  # always stale
    with pytest.raises(IntegrityError):
        benchmark_create(name="race", script_path=SCRIPT)
    assert Benchmark.objects.count() == 1


def test_benchmarks_list_names_with_their_latest_version(api: APIClient) -> None:
    record([1.0])
    record([2.0], script_path=OTHER)
    create(api, name="b")
    create(api, name="b")
    create(api, name="a", script_path=OTHER)
    names = api.get("/api/analytics/benchmarks").json()["names"]
    assert [(n["name"], n["latest_version"], n["script_path"]) for n in names] == [
        ("a", 1, OTHER),
        ("b", 2, SCRIPT),
    ]
    assert names[0]["created_at"]


def test_benchmark_versions_of_a_name_newest_first(api: APIClient) -> None:
    record([1.0])
    create(api)
    create(api)
    body = api.get("/api/analytics/benchmarks", {"name": "nightly"}).json()
    assert body["name"] == "nightly" and [v["version"] for v in body["versions"]] == [2, 1]


def test_no_benchmarks_is_an_empty_list_and_an_unknown_name_a_404(api: APIClient) -> None:
    assert api.get("/api/analytics/benchmarks").json() == {"names": []}
    assert api.get("/api/analytics/benchmarks", {"name": "nope"}).status_code == 404
    bad_field(api.get("/api/analytics/benchmarks", {"name": "no pe"}), "name")


# -- regressions -----------------------------------------------------------------------------


def _two_versions(api: APIClient, before: list[float], after: list[float]) -> None:
    record(before)
    record([100.0, 100.0], metric="peak_rss_mb")
    create(api)
    Point.objects.all().delete()
    record(after)
    record([104.0, 104.0], metric="peak_rss_mb")
    create(api)


def test_regressions_flag_metrics_whose_mean_grew_beyond_the_threshold(api: APIClient) -> None:
    _two_versions(api, [10.0, 10.0], [12.0, 13.0])
    body = api.get("/api/analytics/benchmarks/nightly/regressions").json()
    assert (body["name"], body["version"], body["previous_version"], body["threshold"]) == (
        "nightly",
        2,
        1,
        10.0,
    )
    assert body["regressions"] == [
        {
            "metric": "duration_seconds",
            "previous": 10.0,
            "current": 12.5,
            "change_percent": pytest.approx(25.0),
        }
    ]
    by_metric = {c["metric"]: c for c in body["compared"]}
    assert by_metric["peak_rss_mb"]["regressed"] is False
    assert by_metric["peak_rss_mb"]["change_percent"] == pytest.approx(4.0)
    loose = api.get("/api/analytics/benchmarks/nightly/regressions", {"threshold": 30}).json()
    assert loose["regressions"] == [] and loose["threshold"] == 30.0
    strict = api.get("/api/analytics/benchmarks/nightly/regressions", {"threshold": 3}).json()
    assert [r["metric"] for r in strict["regressions"]] == ["duration_seconds", "peak_rss_mb"]


def test_a_faster_version_is_no_regression(api: APIClient) -> None:
    _two_versions(api, [10.0, 10.0], [5.0, 5.0])
    body = api.get("/api/analytics/benchmarks/nightly/regressions").json()
    assert body["regressions"] == [] and body["compared"][0]["change_percent"] == pytest.approx(-50.0)


def test_growth_from_zero_is_a_regression_without_a_percentage(api: APIClient) -> None:
    _two_versions(api, [0.0], [1.0])
    compared = api.get("/api/analytics/benchmarks/nightly/regressions").json()["compared"][0]
    assert compared["change_percent"] is None and compared["regressed"] is True


def test_regressions_of_the_first_version_have_nothing_to_compare(api: APIClient) -> None:
    record([1.0])
    create(api)
    body = api.get("/api/analytics/benchmarks/nightly/regressions").json()
    assert body["previous_version"] is None and body["compared"] == [] and body["regressions"] == []


def test_regressions_of_a_chosen_version(api: APIClient) -> None:
    record([1.0])
    for _ in range(3):
        create(api)
    body = api.get("/api/analytics/benchmarks/nightly/regressions", {"version": 2}).json()
    assert (body["version"], body["previous_version"]) == (2, 1)


def test_regressions_of_an_unknown_benchmark_or_version_are_404(api: APIClient) -> None:
    assert api.get("/api/analytics/benchmarks/nope/regressions").status_code == 404
    record([1.0])
    create(api)
    assert api.get("/api/analytics/benchmarks/nightly/regressions", {"version": 9}).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"version": 0}, "version"),
        ({"version": "v1"}, "version"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": "-5"}, "threshold"),
    ],
)
def test_regressions_refuse_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/benchmarks/nightly/regressions", params), field)
