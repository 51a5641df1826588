"""The Analytics page (``/analytics/``) and the analytics block of a run's page: signed-in
only, readable by every role, with clear empty states."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from analytics.models import AlertDelivery, RunAnalysis
from core.roles import Role
from tests.analytics.history_helpers import OTHER, SCRIPT, record
from tests.factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(role: str) -> Client:
    client = Client()
    client.force_login(UserFactory(username=f"an-{role}", role=role))
    return client


def state(response: object) -> dict[str, object]:
    html = response.content.decode()  # type: ignore[attr-defined]
    start = html.index('<script id="analytics-state" type="application/json">') + len(
        '<script id="analytics-state" type="application/json">'
    )
    loaded: dict[str, object] = json.loads(html[start : html.index("</script>", start)])
    return loaded


@pytest.mark.parametrize("path", ["/analytics/", "/analytics"])
def test_the_page_sends_anonymous_visitors_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("role", [Role.READONLY, Role.EXECUTOR, Role.USER, Role.ADMIN])
def test_every_role_sees_the_page_in_the_navigation(role: str) -> None:
    record([1.0, 2.0], script_path=SCRIPT)
    response = signed_in(role).get("/analytics/")
    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["analytics/analytics.html", "dashboard/base.html"]
    html = response.content.decode()
    assert '<a href="/analytics/" class="active" aria-current="page">Analytics</a>' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "js/analytics.js" in html
    assert "csrftoken" in response.cookies  # the page's script calls the API with the session


def test_without_any_history_the_page_says_so() -> None:
    response = signed_in(Role.READONLY).get("/analytics/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "No history yet" in html
    assert state(response)["scripts"] == [] and state(response)["script_path"] == ""


def test_a_script_without_runs_gets_its_own_empty_state() -> None:
    record([1.0], script_path=SCRIPT)
    response = signed_in(Role.READONLY).get("/analytics/", {"script_path": "/srv/never-ran.py"})
    html = response.content.decode()
    assert "No runs of this script yet" in html and "/srv/never-ran.py" in html
    assert state(response)["script_path"] == ""


def test_the_address_picks_script_metric_and_window() -> None:
    record([1.0, 2.0], script_path=SCRIPT)
    record([5.0], script_path=OTHER)
    record([100.0], script_path=OTHER, metric="peak_rss_mb")
    response = signed_in(Role.READONLY).get(
        "/analytics/", {"script_path": OTHER, "metric": "peak_rss_mb", "days": "7"}
    )
    got = state(response)
    assert (got["script_path"], got["metric"], got["days"]) == (OTHER, "peak_rss_mb", 7)
    assert got["scripts"] == [
        {"script_path": SCRIPT, "metrics": ["duration_seconds"]},
        {"script_path": OTHER, "metrics": ["duration_seconds", "peak_rss_mb"]},
    ]


def test_an_unknown_metric_or_bad_window_falls_back_to_duration_and_30_days() -> None:
    record([1.0], script_path=SCRIPT)
    got = state(signed_in(Role.READONLY).get("/analytics/", {"metric": "nope", "days": "zero"}))
    assert (got["script_path"], got["metric"], got["days"]) == (SCRIPT, "duration_seconds", 30)


# -- a run's page ------------------------------------------------------------------------------


def test_a_run_page_compares_with_usual_and_shows_gates_and_alerts() -> None:
    record([2.0, 2.0, 2.0], script_path=SCRIPT)
    run = RunFactory(script_path=SCRIPT, status="failed", duration=4.6)
    RunAnalysis.objects.create(
        run_id=run.pk,
        metrics={"duration_seconds": 4.6},
        gates=[
            {
                "metric": "duration_seconds",
                "max_value": 3.0,
                "min_value": None,
                "value": 4.6,
                "passed": False,
                "message": "duration_seconds 4.6 > max 3",
            },
        ],
    )
    AlertDelivery.objects.create(
        run_id=run.pk,
        script_path=SCRIPT,
        rule="slow",
        channel="webhook",
        url="http://x/",
        status="sent",
        attempts=1,
        response_code=200,
    )
    html = signed_in(Role.READONLY).get(f"/runs/{run.pk}/").content.decode()
    assert 'data-testid="run-analytics"' in html
    assert "2.3\u00d7 slower than the p50 of the last 3 successful runs (2.00 s)" in html
    assert 'data-gate="duration_seconds" data-passed="0"' in html
    assert "duration_seconds 4.6 &gt; max 3" in html
    assert 'data-alert-status="sent"' in html


def test_a_run_without_history_says_there_is_nothing_to_compare_with() -> None:
    run = RunFactory(script_path=f"/srv/{uuid.uuid4()}.py", duration=1.0)
    html = signed_in(Role.READONLY).get(f"/runs/{run.pk}/").content.decode()
    assert "No earlier successful run of this script to compare with yet." in html
    assert 'data-testid="run-gates"' not in html


def test_an_active_run_has_no_analytics_block_yet() -> None:
    run = RunFactory(status="running", run_status=None, exit_code=None)
    html = signed_in(Role.READONLY).get(f"/runs/{run.pk}/").content.decode()
    assert 'data-testid="run-analytics"' not in html
