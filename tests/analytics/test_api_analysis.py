"""Analysis endpoints: trends, anomalies, baselines (computed and saved), the chart and the
overview. Figures are checked against numpy on known data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Baseline
from audit.models import AuditEvent
from core.roles import Role
from tests.analytics.history_helpers import OTHER, SCRIPT, record

pytestmark = pytest.mark.django_db

VALUES = [10.0, 11.0, 9.5, 10.5, 10.2, 9.8, 10.1, 30.0, 10.3, 9.9, 10.0, 2.0]


@pytest.fixture
def api(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.READONLY)


@pytest.fixture
def writer(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.USER)


def bad_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    assert field in response.json()["details"], response.json()


# -- trends ----------------------------------------------------------------------------------


def test_trend_is_the_least_squares_line_numpy_fits(api: APIClient) -> None:
    values = [10.0 + 0.5 * i + (0.3 if i % 2 else -0.3) for i in range(20)]
    points = record(values, step=timedelta(hours=12))
    body = api.get("/api/analytics/trends", {"script_path": SCRIPT}).json()
    x = [(p.recorded_at - points[0].recorded_at).total_seconds() / 86400 for p in points]
    slope, intercept = np.polyfit(x, values, 1)
    assert (body["script_path"], body["metric"], body["days"], body["n"]) == (
        SCRIPT,
        "duration_seconds",
        30,
        20,
    )
    assert body["slope_per_day"] == pytest.approx(slope)
    assert body["intercept"] == pytest.approx(intercept)
    fitted = np.polyval([slope, intercept], x)
    r2 = 1 - np.sum((np.array(values) - fitted) ** 2) / np.sum((np.array(values) - np.mean(values)) ** 2)
    assert body["r_squared"] == pytest.approx(r2)
    assert body["direction"] == "increasing" and body["change_percent"] > 5


def test_trend_reads_the_asked_metric_and_window_only(api: APIClient) -> None:
    record([1, 2, 3], metric="rows")
    record([100, 50], start=timezone.now() - timedelta(days=50), step=timedelta(days=1), metric="rows")
    body = api.get("/api/analytics/trends", {"script_path": SCRIPT, "metric": "rows", "days": 7}).json()
    assert body["n"] == 3 and body["metric"] == "rows" and body["days"] == 7


def test_trend_without_data_has_n_0_and_is_stable(api: APIClient) -> None:
    body = api.get("/api/analytics/trends", {"script_path": "/never.py"}).json()
    assert body["n"] == 0 and body["direction"] == "stable" and body["r_squared"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "script_path"),
        ({"script_path": SCRIPT, "metric": "-bad"}, "metric"),
        ({"script_path": SCRIPT, "days": 0}, "days"),
        ({"script_path": SCRIPT, "days": 4000}, "days"),
    ],
)
def test_trend_refuses_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/trends", params), field)


# -- anomalies -------------------------------------------------------------------------------


def test_iqr_anomalies_are_named_by_their_run(api: APIClient) -> None:
    points = record(VALUES)
    body = api.get("/api/analytics/anomalies", {"script_path": SCRIPT}).json()
    q1, q3 = np.percentile(VALUES, [25, 75])
    iqr = q3 - q1
    assert (body["method"], body["threshold"], body["n"]) == ("iqr", 1.5, 12)
    assert body["lower"] == pytest.approx(q1 - 1.5 * iqr) and body["upper"] == pytest.approx(q3 + 1.5 * iqr)
    assert body["center"] == pytest.approx({"q1": q1, "q3": q3, "iqr": iqr})
    flagged = {a["run_id"]: a["value"] for a in body["anomalies"]}
    assert flagged == {str(points[7].run_id): 30.0, str(points[11].run_id): 2.0}
    high = next(a for a in body["anomalies"] if a["value"] == 30.0)
    assert high["score"] == pytest.approx((30.0 - (q3 + 1.5 * iqr)) / iqr)
    assert high["recorded_at"] and high["lower"] == body["lower"]


def test_zscore_and_mad_use_their_thresholds(api: APIClient) -> None:
    record(VALUES)
    mean, std = np.mean(VALUES), np.std(VALUES)
    z = api.get(
        "/api/analytics/anomalies", {"script_path": SCRIPT, "method": "zscore", "threshold": 2}
    ).json()
    assert z["center"] == pytest.approx({"mean": mean, "std": std})
    assert [a["value"] for a in z["anomalies"]] == [v for v in VALUES if abs(v - mean) / std > 2]
    mad = api.get("/api/analytics/anomalies", {"script_path": SCRIPT, "method": "mad"}).json()
    median = np.median(VALUES)
    spread = np.median(np.abs(np.array(VALUES) - median))
    assert mad["threshold"] == 3.5
    assert [a["value"] for a in mad["anomalies"]] == [
        v for v in VALUES if 0.6745 * abs(v - median) / spread > 3.5
    ]


def test_anomalies_without_data_are_empty(api: APIClient) -> None:
    body = api.get("/api/analytics/anomalies", {"script_path": SCRIPT, "method": "mad"}).json()
    assert body["n"] == 0 and body["anomalies"] == [] and body["lower"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "magic"}, "method"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": "nan"}, "threshold"),
        ({"threshold": "inf"}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"metric": "a b"}, "metric"),
        ({"days": -3}, "days"),
    ],
)
def test_anomalies_refuse_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/anomalies", {"script_path": SCRIPT, **params}), field)


# -- baselines -------------------------------------------------------------------------------


def test_percentile_baseline_of_one_metric_matches_numpy(api: APIClient) -> None:
    record(VALUES)
    body = api.get("/api/analytics/baseline", {"script_path": SCRIPT, "metric": "duration_seconds"}).json()
    assert (body["script_path"], body["method"], body["days"]) == (SCRIPT, "percentile", 30)
    figures = body["metrics"]["duration_seconds"]
    assert figures["n"] == 12
    for q in (50, 90, 95, 99):
        assert figures[f"p{q}"] == pytest.approx(np.percentile(VALUES, q))
    assert figures["std"] == pytest.approx(np.std(VALUES))


def test_baseline_without_a_metric_covers_every_metric_of_the_script(api: APIClient) -> None:
    record(VALUES)
    record([100.0, 120.0], metric="peak_rss_mb")
    record([1.0], script_path=OTHER)
    body = api.get("/api/analytics/baseline", {"script_path": SCRIPT, "method": "iqr"}).json()
    assert sorted(body["metrics"]) == ["duration_seconds", "peak_rss_mb"]
    assert body["metrics"]["peak_rss_mb"]["q1"] == pytest.approx(np.percentile([100, 120], 25))


def test_intelligent_baseline_drops_outliers_and_suggests_a_threshold(api: APIClient) -> None:
    record(VALUES)
    figures = api.get("/api/analytics/baseline", {"script_path": SCRIPT, "method": "intelligent"}).json()[
        "metrics"
    ]["duration_seconds"]
    assert figures["removed"] == 2 and figures["n"] == 10
    kept = [v for v in VALUES if v not in (30.0, 2.0)]
    assert figures["suggested_threshold"] == pytest.approx(np.percentile(kept, 95) * 1.2)


def test_baseline_without_history_is_empty_not_an_error(api: APIClient) -> None:
    one = api.get("/api/analytics/baseline", {"script_path": SCRIPT, "metric": "duration_seconds"}).json()
    assert one["metrics"]["duration_seconds"]["n"] == 0 and one["metrics"]["duration_seconds"]["p50"] is None
    assert api.get("/api/analytics/baseline", {"script_path": SCRIPT}).json()["metrics"] == {}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"method": "median"}, "method"), ({"days": 0}, "days"), ({"metric": "9x"}, "metric")],
)
def test_baseline_refuses_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/baseline", {"script_path": SCRIPT, **params}), field)


def test_saving_a_baseline_stores_the_figures_under_its_name(writer: APIClient) -> None:
    record(VALUES)
    body = {"name": "release-1.2", "script_path": SCRIPT, "method": "percentile", "days": 30}
    response = writer.post("/api/analytics/baseline", body, format="json")
    assert response.status_code == 201, response.content
    saved = response.json()
    assert (saved["name"], saved["script_path"], saved["method"], saved["days"]) == (
        "release-1.2",
        SCRIPT,
        "percentile",
        30,
    )
    assert saved["metrics"]["duration_seconds"]["p50"] == pytest.approx(np.percentile(VALUES, 50))
    assert saved["created_by"] == "user-user"
    assert Baseline.objects.get(pk=saved["id"]).metrics == saved["metrics"]


def test_saving_a_name_again_replaces_it(writer: APIClient) -> None:
    record(VALUES)
    body = {"name": "nightly", "script_path": SCRIPT, "method": "percentile"}
    first = writer.post("/api/analytics/baseline", body, format="json").json()
    again = writer.post("/api/analytics/baseline", {**body, "method": "iqr"}, format="json").json()
    assert first["id"] == again["id"] and again["method"] == "iqr"
    assert Baseline.objects.count() == 1


def test_a_baseline_of_one_metric_holds_only_it(writer: APIClient) -> None:
    record(VALUES)
    record([5.0], metric="peak_rss_mb")
    body = {"name": "mem", "script_path": SCRIPT, "metric": "peak_rss_mb"}
    assert list(writer.post("/api/analytics/baseline", body, format="json").json()["metrics"]) == [
        "peak_rss_mb"
    ]


def test_saving_a_baseline_without_history_is_refused(writer: APIClient) -> None:
    response = writer.post("/api/analytics/baseline", {"name": "x", "script_path": SCRIPT}, format="json")
    bad_field(response, "script_path")
    assert "No history" in response.json()["message"]
    assert not Baseline.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"script_path": SCRIPT}, "name"),
        ({"name": "../etc/passwd", "script_path": SCRIPT}, "name"),
        ({"name": "n" * 101, "script_path": SCRIPT}, "name"),
        ({"name": "ok"}, "script_path"),
        ({"name": "ok", "script_path": SCRIPT, "method": "best"}, "method"),
        ({"name": "ok", "script_path": SCRIPT, "days": 0}, "days"),
    ],
)
def test_saving_a_baseline_refuses_bad_fields(writer: APIClient, body: dict[str, Any], field: str) -> None:
    bad_field(writer.post("/api/analytics/baseline", body, format="json"), field)


def test_saving_a_baseline_needs_a_json_object(writer: APIClient) -> None:
    bad_field(writer.post("/api/analytics/baseline", [1, 2], format="json"), "non_field_errors")


def test_saving_a_baseline_needs_the_user_role(api: APIClient) -> None:
    record(VALUES)
    assert (
        api.post("/api/analytics/baseline", {"name": "x", "script_path": SCRIPT}, format="json").status_code
        == 403
    )


def test_saved_baselines_are_listed_and_deleted(writer: APIClient) -> None:
    record(VALUES)
    record(VALUES, script_path=OTHER)
    for name, path in (("b", SCRIPT), ("a", SCRIPT), ("a", OTHER)):
        writer.post("/api/analytics/baseline", {"name": name, "script_path": path}, format="json")
    listed = writer.get("/api/analytics/baselines").json()
    assert [(b["script_path"], b["name"]) for b in listed] == [(SCRIPT, "a"), (SCRIPT, "b"), (OTHER, "a")]
    mine = writer.get("/api/analytics/baselines", {"script_path": SCRIPT}).json()
    assert [b["name"] for b in mine] == ["a", "b"]
    assert writer.delete(f"/api/analytics/baselines/{mine[0]['id']}").status_code == 204
    assert [b["name"] for b in writer.get("/api/analytics/baselines", {"script_path": SCRIPT}).json()] == [
        "b"
    ]
    missing = writer.delete(f"/api/analytics/baselines/{mine[0]['id']}")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    [event] = AuditEvent.objects.filter(action="analytics.baseline_delete")
    assert (event.object_id, event.summary) == (str(mine[0]["id"]), "deleted baseline a")


def test_no_saved_baselines_is_an_empty_list(api: APIClient) -> None:
    assert api.get("/api/analytics/baselines").json() == []


# -- chart -----------------------------------------------------------------------------------


def test_chart_has_points_trend_line_anomalies_band_and_summary(api: APIClient) -> None:
    statuses = ["completed"] * 10 + ["failed", "completed"]
    points = record(VALUES, statuses=statuses, step=timedelta(hours=6))
    body = api.get("/api/analytics/chart", {"script_path": SCRIPT}).json()
    first = body["points"][0]
    assert first == [
        round(points[0].recorded_at.timestamp() * 1000),
        10.0,
        str(points[0].run_id),
        "completed",
    ]
    assert len(body["points"]) == 12
    assert body["trend"]["n"] == 12 and len(body["trend"]["line"]) == 2
    assert body["trend"]["line"][0] == [first[0], pytest.approx(body["trend"]["intercept"])]
    assert body["trend"]["line"][1][1] == pytest.approx(body["trend"]["last_fitted"])
    assert body["anomalies"] == [str(points[7].run_id), str(points[11].run_id)]
    assert body["baseline"] == pytest.approx(
        {"p50": np.percentile(VALUES, 50), "p95": np.percentile(VALUES, 95)}
    )
    summary = body["summary"]
    assert summary["runs"] == 12 and summary["success_rate"] == 11 / 12
    assert sum(count for _, count in summary["runs_per_day"]) == 12
    assert summary["p99"] == pytest.approx(np.percentile(VALUES, 99))


def test_chart_zooms_to_since_and_until(api: APIClient) -> None:
    points = record(VALUES, step=timedelta(hours=1))
    since, until = points[2].recorded_at.isoformat(), points[5].recorded_at.isoformat()
    body = api.get("/api/analytics/chart", {"script_path": SCRIPT, "since": since, "until": until}).json()
    assert [p[1] for p in body["points"]] == VALUES[2:6]


def test_chart_without_data_is_empty(api: APIClient) -> None:
    body = api.get("/api/analytics/chart", {"script_path": SCRIPT}).json()
    assert body["points"] == [] and body["anomalies"] == [] and body["baseline"] is None
    assert body["trend"]["line"] == [] and body["summary"]["runs"] == 0 and body["summary"]["p50"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "until"),
        ({"metric": "x y"}, "metric"),
    ],
)
def test_chart_refuses_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/chart", {"script_path": SCRIPT, **params}), field)


# -- overview --------------------------------------------------------------------------------


def test_overview_ranks_slowest_most_failing_and_most_regressed(api: APIClient) -> None:
    record([1, 1, 1, 1], script_path="/a.py")
    record([5, 6, 7, 14], script_path="/b.py", statuses=["completed", "failed", "completed", "completed"])
    record([9, 8, 9, 8], script_path="/c.py", statuses=["failed", "failed", "completed", "completed"])
    body = api.get("/api/analytics/overview").json()
    assert [e["script_path"] for e in body["slowest"]] == ["/c.py", "/b.py", "/a.py"]
    assert body["slowest"][0] == {"script_path": "/c.py", "mean": pytest.approx(8.5), "max": 9.0, "runs": 4}
    assert body["most_failing"] == [
        {"script_path": "/c.py", "failure_rate": 0.5, "runs": 4, "failures": 2},
        {"script_path": "/b.py", "failure_rate": 0.25, "runs": 4, "failures": 1},
    ]
    assert [e["script_path"] for e in body["most_regressed"]] == ["/b.py"]
    assert body["most_regressed"][0]["direction"] == "increasing"
    # The trend summed in SQL is numpy's least-squares line (x in days).
    fitted = np.polyfit(np.arange(4) / 24, [5, 6, 7, 14], 1)
    first, last = fitted[1], fitted[1] + fitted[0] * 3 / 24
    assert body["most_regressed"][0]["slope_per_day"] == pytest.approx(fitted[0], rel=1e-6)
    assert body["most_regressed"][0]["change_percent"] == pytest.approx(
        (last - first) / first * 100, rel=1e-6
    )
    assert [e["script_path"] for e in api.get("/api/analytics/overview", {"limit": 1}).json()["slowest"]] == [
        "/c.py"
    ]


def test_overview_without_data_is_three_empty_lists(api: APIClient) -> None:
    assert api.get("/api/analytics/overview").json() == {
        "slowest": [],
        "most_failing": [],
        "most_regressed": [],
    }


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"days": 0}, "days")]
)
def test_overview_refuses_bad_parameters(api: APIClient, params: dict[str, Any], field: str) -> None:
    bad_field(api.get("/api/analytics/overview", params), field)
