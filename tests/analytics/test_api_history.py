"""History endpoints: the list, store statistics, sparklines, a script's summary, cleanup;
and the read-only admin of the analytics rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.admin import masked_url
from analytics.models import AlertDelivery, AlertState, Baseline, Benchmark, Point, RunAnalysis, Series
from analytics.services.history import history_cleanup
from audit.models import AuditEvent
from core.roles import Role
from tests.analytics.history_helpers import OTHER, SCRIPT, record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.READONLY)


def bad_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["details"], body


# -- history list ----------------------------------------------------------------------------


def test_history_lists_points_newest_first_with_their_script_and_metric(api: APIClient) -> None:
    old, new = record([1.5, 2.5])
    record([100.0], metric="peak_rss_mb")
    body = api.get("/api/analytics/history", {"script_path": SCRIPT, "metric": "duration_seconds"}).json()
    assert body["count"] == 2 and body["previous"] is None and body["next"] is None
    first = body["results"][0]
    assert first == {
        "run_id": str(new.run_id),
        "script_path": SCRIPT,
        "metric": "duration_seconds",
        "value": 2.5,
        "status": "completed",
        "source": "api",
        "recorded_at": first["recorded_at"],
    }
    assert [r["run_id"] for r in body["results"]] == [str(new.run_id), str(old.run_id)]


def test_history_filters_by_script_metric_status_source_and_days(api: APIClient) -> None:
    record([1, 2, 3], statuses=["completed", "failed", "completed"])
    record([9], script_path=OTHER)
    record([7], metric="peak_rss_mb", source="schedule")
    record([5], start=timezone.now() - timedelta(days=40))  # outside the default 30 days

    def values(**params: Any) -> list[float]:
        return sorted(r["value"] for r in api.get("/api/analytics/history", params).json()["results"])

    assert values() == [1, 2, 3, 7, 9]
    assert values(script_path=SCRIPT) == [1, 2, 3, 7]
    assert values(script_path=SCRIPT, metric="duration_seconds") == [1, 2, 3]
    assert values(metric="duration_seconds") == [1, 2, 3, 9]
    assert values(status="failed") == [2]
    assert values(source="schedule") == [7]
    assert values(days=41, script_path=SCRIPT, metric="duration_seconds") == [1, 2, 3, 5]
    assert values(script_path="/nowhere.py") == []


def test_history_pages_with_limit_and_offset(api: APIClient) -> None:
    record(range(5))
    page = api.get("/api/analytics/history", {"limit": 2, "offset": 2}).json()
    assert page["count"] == 5
    assert [r["value"] for r in page["results"]] == [2.0, 1.0]
    assert "offset=4" in page["next"] and "limit=2" in page["next"]
    assert page["previous"] is not None
    last = api.get("/api/analytics/history", {"limit": 2, "offset": 4}).json()
    assert last["next"] is None and [r["value"] for r in last["results"]] == [0.0]


def test_history_without_any_data_is_an_empty_page(api: APIClient) -> None:
    assert api.get("/api/analytics/history").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_history_accepts_the_largest_limit(api: APIClient) -> None:
    assert api.get("/api/analytics/history", {"limit": 10000}).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"days": 0}, "days"),
        ({"days": 3651}, "days"),
        ({"days": "x"}, "days"),
        ({"metric": "1bad"}, "metric"),
        ({"metric": "has space"}, "metric"),
        ({"metric": "m" * 65}, "metric"),
        ({"status": "NOT A STATUS"}, "status"),
        ({"source": "s" * 21}, "source"),
        ({"script_path": "x" * 5000}, "script_path"),
    ],
)
def test_history_refuses_a_bad_parameter_naming_it(
    api: APIClient, params: dict[str, Any], field: str
) -> None:
    bad_field(api.get("/api/analytics/history", params), field)


# -- store statistics ------------------------------------------------------------------------


def test_history_stats_counts_rows_runs_scripts_and_metrics(api: APIClient) -> None:
    record([1, 2, 3])
    record([10, 20, 30], metric="peak_rss_mb")
    record([5], script_path=OTHER)
    body = api.get("/api/analytics/history/stats").json()
    assert (body["points"], body["series"], body["scripts"], body["runs"]) == (7, 3, 2, 4)
    assert body["first_recorded_at"] < body["last_recorded_at"]
    per_script = {e["script_path"]: e for e in body["metrics_per_script"]}
    assert per_script[SCRIPT] == {
        "script_path": SCRIPT,
        "metrics": ["duration_seconds", "peak_rss_mb"],
        "points": 6,
    }
    assert per_script[OTHER]["points"] == 1
    assert body["database"]["vendor"] in ("sqlite", "postgresql")
    assert body["database"]["size_bytes"] > 0


def test_history_stats_of_an_empty_store_are_zeros(api: APIClient) -> None:
    body = api.get("/api/analytics/history/stats").json()
    assert (body["points"], body["series"], body["scripts"], body["runs"]) == (0, 0, 0, 0)
    assert body["first_recorded_at"] is None and body["metrics_per_script"] == []


# -- sparklines and a script's summary -------------------------------------------------------


def test_sparklines_give_the_last_20_durations_of_each_script_oldest_first(api: APIClient) -> None:
    record(range(25))
    record([7, 8], script_path=OTHER)
    record([99], metric="peak_rss_mb")
    body = api.get(
        f"/api/analytics/sparklines?script_path={SCRIPT}&script_path={OTHER}&script_path=/none.py"
    ).json()
    assert body == {SCRIPT: [float(v) for v in range(5, 25)], OTHER: [7.0, 8.0], "/none.py": []}


@pytest.mark.parametrize(
    "query", ["", "?script_path=" + "&script_path=".join(f"/s{i}.py" for i in range(101))]
)
def test_sparklines_need_one_to_a_hundred_scripts(api: APIClient, query: str) -> None:
    bad_field(api.get("/api/analytics/sparklines" + query), "script_path")


def test_expected_durations_are_percentiles_of_the_last_30_successful_runs(api: APIClient) -> None:
    values = [float(v) for v in range(1, 51)]
    statuses = ["failed" if v % 5 == 0 else "completed" for v in range(1, 51)]
    record(values, statuses=statuses)
    record([3.0, 4.0], script_path=OTHER)  # too few to say what is usual
    body = api.get(f"/api/analytics/expected?script_path={SCRIPT}&script_path={OTHER}").json()
    successful = [v for v, s in zip(values, statuses, strict=True) if s == "completed"][-30:]
    assert body[SCRIPT] == {
        "p50": round(float(np.percentile(successful, 50)), 3),
        "p95": round(float(np.percentile(successful, 95)), 3),
        "n": 30,
    }
    assert body[OTHER] is None
    bad_field(api.get("/api/analytics/expected"), "script_path")


def test_script_summary_has_the_last_30_runs_trend_success_rate_and_median(api: APIClient) -> None:
    values = [float(v) for v in range(1, 41)]
    statuses = ["failed" if i % 4 == 0 else "completed" for i in range(40)]
    points = record(values, statuses=statuses, step=timedelta(hours=6))  # 10 days
    body = api.get("/api/analytics/scripts/summary", {"script_path": SCRIPT}).json()
    assert [r["run_id"] for r in body["last_runs"]] == [str(p.run_id) for p in points[-30:]]
    assert body["last_runs"][-1] == {
        "run_id": str(points[-1].run_id),
        "status": "completed",
        "recorded_at": body["last_runs"][-1]["recorded_at"],
        "duration": 40.0,
    }
    assert body["success_rate"] == 30 / 40
    assert body["p50"] == pytest.approx(np.percentile(values, 50))
    assert body["trend"]["n"] == 40 and body["trend"]["direction"] == "increasing"


def test_script_summary_of_a_script_without_history_is_empty(api: APIClient) -> None:
    body = api.get("/api/analytics/scripts/summary", {"script_path": "/never.py"}).json()
    assert body["last_runs"] == [] and body["success_rate"] is None and body["p50"] is None
    assert body["trend"]["n"] == 0 and body["trend"]["direction"] == "stable"


def test_script_summary_needs_a_script(api: APIClient) -> None:
    bad_field(api.get("/api/analytics/scripts/summary"), "script_path")


# -- cleanup ---------------------------------------------------------------------------------


def test_cleanup_deletes_points_older_than_days_and_the_series_left_empty(client_for: Any) -> None:
    long_ago = timezone.now() - timedelta(days=200)
    record([1, 2, 3], start=long_ago)
    record([4], metric="peak_rss_mb", start=long_ago)
    Series.objects.update(created_at=long_ago)
    record([5, 6])  # recent: kept
    admin = client_for(Role.ADMIN)
    assert admin.delete("/api/analytics/cleanup").json() == {"deleted": 4}
    assert sorted(Point.objects.values_list("value", flat=True)) == [5.0, 6.0]
    assert list(Series.objects.values_list("metric", flat=True)) == ["duration_seconds"]
    assert admin.delete("/api/analytics/cleanup").json() == {"deleted": 0}
    # Deleting history is audited, with the caller.
    events = list(AuditEvent.objects.filter(action="analytics.cleanup").order_by("at"))
    assert [(e.actor_name, e.data["deleted"]) for e in events] == [("admin-user", 4), ("admin-user", 0)]


def test_cleanup_uses_days(client_for: Any) -> None:
    record([1], start=timezone.now() - timedelta(days=10))
    record([2], start=timezone.now() - timedelta(days=3), metric="m2")
    assert client_for(Role.ADMIN).delete("/api/analytics/cleanup?days=5").json() == {"deleted": 1}


def test_cleanup_keeps_a_new_series_that_has_no_point_yet() -> None:
    """A run creates its series, then inserts its points: never delete between the two."""
    Series.objects.create(script_path=SCRIPT, path_key="k" * 64, metric="fresh")
    assert history_cleanup(days=1) == 0
    assert Series.objects.filter(metric="fresh").exists()


def test_cleanup_deletes_in_batches_until_all_old_points_are_gone() -> None:
    record(range(23), start=timezone.now() - timedelta(days=100), step=timedelta(minutes=1))
    record([1.0])
    assert history_cleanup(days=90, batch_size=5) == 23
    assert Point.objects.count() == 1


def test_cleanup_is_for_admins_only(client_for: Any) -> None:
    record([1], start=timezone.now() - timedelta(days=200))
    assert client_for(Role.USER).delete("/api/analytics/cleanup").status_code == 403
    assert Point.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "3651", "soon"])
def test_cleanup_refuses_bad_days(client_for: Any, days: str) -> None:
    bad_field(client_for(Role.ADMIN).delete(f"/api/analytics/cleanup?days={days}"), "days")


# -- admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/ops?token=s3cret", "https://hooks.example.com/ops?***"),
        ("https://user:pw@hooks.example.com/a#frag", "https://***@hooks.example.com/a#***"),
        ("https://hooks.slack.com/services/T0/B0/XYZsecret", "https://hooks.slack.com/services/***"),
        ("http://receiver:8080/hook", "http://receiver:8080/hook"),
        ("http://[::1", "***"),
        ("http://[::1]:9/h?k=v", "http://[::1]:9/h?***"),
    ],
)
def test_alert_urls_are_masked_in_the_admin(url: str, shown: str) -> None:
    assert masked_url(url) == shown


@pytest.fixture
def admin_browser() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True))
    return client


def test_admin_lists_every_analytics_model_read_only_and_never_shows_a_webhook_secret(
    admin_browser: Client,
) -> None:
    points = record([1.0, 2.0])
    run_id = uuid.uuid4()
    delivery = AlertDelivery.objects.create(
        run_id=run_id,
        script_path=SCRIPT,
        rule="slow",
        channel="webhook",
        url="https://h.example/x?token=s3cret",
    )
    Baseline.objects.create(name="b", script_path=SCRIPT, path_key="k", method="percentile")
    Benchmark.objects.create(name="n", version=1, script_path=SCRIPT, path_key="k", days=30)
    RunAnalysis.objects.create(run_id=run_id)
    AlertState.objects.create(key="k" * 64, script_path=SCRIPT, rule="slow", last_fired_at=timezone.now())
    for model in ("series", "point", "baseline", "benchmark", "runanalysis", "alertdelivery", "alertstate"):
        page = admin_browser.get(f"/admin/analytics/{model}/")
        assert page.status_code == 200, model
        assert b"s3cret" not in page.content
        assert admin_browser.get(f"/admin/analytics/{model}/add/").status_code == 403, model
    detail = admin_browser.get(f"/admin/analytics/alertdelivery/{delivery.pk}/change/")
    assert (
        detail.status_code == 200 and b"s3cret" not in detail.content and b"h.example/x?***" in detail.content
    )
    assert b'name="value"' not in admin_browser.get(f"/admin/analytics/point/{points[0].pk}/change/").content
    search = admin_browser.get("/admin/analytics/point/", {"q": "job.py"})
    assert search.status_code == 200 and b"job.py" in search.content
