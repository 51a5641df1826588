"""What a finished run leaves besides its metrics: named baselines saved and compared, its
JUnit report (``GET /api/runs/{id}/junit``), its cost, how it compares with usual, and
what goes when the run is deleted."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Baseline, Point, RunAnalysis, Series, path_key
from analytics.services.runs import RunFacts, run_cost
from core.roles import Role
from runs.models import Run, RunStatus
from runs.services import lifecycle, run_delete, run_enqueue, run_execute
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.usefixtures("strays", "no_dispatch"), pytest.mark.django_db]


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture
def api(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.READONLY)


def run_script(script: Path, **params: Any) -> Run:
    run = run_enqueue(params={"script_path": str(script), **params}, source="test")
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    return run


def rows_script(make_script: Callable[..., Path], rows: int) -> Path:
    return make_script("rows.sh", f"echo '::metric rows={rows}'\n")


# -- baselines --------------------------------------------------------------------------------


def test_a_run_saves_a_baseline_by_name_and_a_later_run_compares_with_it(
    make_script: Callable[..., Path], api: APIClient
) -> None:
    first = run_script(rows_script(make_script, 100), save_baseline="release-1.0")

    saved = Baseline.objects.get(name="release-1.0")
    assert (saved.method, saved.script_path, saved.run_id) == ("run", first.script_path, first.pk)
    assert saved.metrics["rows"] == {
        "n": 1,
        "p50": 100,
        "p90": 100,
        "p95": 100,
        "p99": 100,
        "mean": 100,
        "std": 0,
    }

    second = run_script(rows_script(make_script, 150), load_baseline="release-1.0")

    comparison = RunAnalysis.objects.get(run_id=second.pk).comparison
    assert comparison["baseline"] == "release-1.0" and comparison["method"] == "run"
    assert comparison["metrics"]["rows"] == {
        "value": 150,
        "baseline": 100,
        "ratio": 1.5,
        "change_percent": 50,
    }
    assert "duration_seconds" in comparison["metrics"]
    assert api.get(f"/api/runs/{second.pk}").json()["analytics"]["comparison"] == comparison


def test_saving_a_name_again_replaces_that_baseline(make_script: Callable[..., Path]) -> None:
    run_script(rows_script(make_script, 1), save_baseline="nightly")
    latest = run_script(rows_script(make_script, 2), save_baseline="nightly")

    saved = Baseline.objects.get(name="nightly")
    assert (saved.run_id, saved.metrics["rows"]["p50"]) == (latest.pk, 2)


def test_a_failed_run_saves_no_baseline(make_script: Callable[..., Path]) -> None:
    run_script(make_script("bad.sh", "exit 1\n"), save_baseline="broken")
    assert not Baseline.objects.exists()


def test_an_unknown_baseline_is_reported_in_the_comparison(make_script: Callable[..., Path]) -> None:
    run = run_script(rows_script(make_script, 1), load_baseline="never-saved")

    assert run.status == RunStatus.COMPLETED
    assert RunAnalysis.objects.get(run_id=run.pk).comparison == {
        "baseline": "never-saved",
        "error": "not found",
    }


# -- JUnit ------------------------------------------------------------------------------------


def test_the_junit_report_is_downloaded_with_gate_violations_as_failures(
    make_script: Callable[..., Path], api: APIClient, roots: Path
) -> None:
    run = run_script(
        rows_script(make_script, 7),
        junit_output=True,
        performance_gates=[{"metric": "rows", "max_value": 5}, {"metric": "exit_code", "max_value": 0}],
    )

    response = api.get(f"/api/runs/{run.pk}/junit")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert f"run-{run.pk}-junit.xml" in response["Content-Disposition"]
    root = ET.fromstring(response.content)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"attempt 1", "gate rows <= 5", "gate exit_code <= 0"}
    failure = cases["gate rows <= 5"].find("failure")
    assert failure is not None and failure.get("message") == "rows 7 > max 5"
    assert cases["attempt 1"].find("failure") is None
    assert api.get(f"/api/runs/{run.pk}").json()["analytics"]["junit_url"] == f"/api/runs/{run.pk}/junit"
    # Nothing was written next to the script or in the run's folder.
    assert not list(roots.rglob("*.xml")) and not list(run.output_dir.rglob("*.xml"))


def test_junit_has_a_test_case_per_attempt(make_script: Callable[..., Path]) -> None:
    script = make_script("flaky.sh", 'echo "failing" >&2\nexit 1\n')
    run = run_script(
        script, junit_output=True, retry_on_failure=True, retry_max_attempts=2, retry_initial_delay=0
    )

    suite = ET.fromstring(RunAnalysis.objects.get(run_id=run.pk).junit).find("testsuite")
    assert suite is not None
    assert [c.get("name") for c in suite.iter("testcase")] == ["attempt 1", "attempt 2"]
    assert suite.get("failures") == "2"


def test_a_run_without_junit_output_has_no_report(make_script: Callable[..., Path], api: APIClient) -> None:
    run = run_script(rows_script(make_script, 1))

    response = api.get(f"/api/runs/{run.pk}/junit")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert api.get(f"/api/runs/{run.pk}").json()["analytics"]["junit_url"] is None


# -- cost -------------------------------------------------------------------------------------


def test_cost_is_cpu_hours_plus_memory_gb_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_COST_CPU_HOUR", "0.5")
    monkeypatch.setenv("SCRIPTOPS_COST_GB_HOUR", "2")
    facts = RunFacts(
        run_id="r",
        script_path="/s.py",
        status="completed",
        run_status="success",
        source="api",
        finished_at=timezone.now(),
        duration_seconds=1800,
        cpu_time_seconds=7200,
        peak_rss_bytes=3 * 1024**3,
        avg_cpu_percent=400,
        exit_code=0,
        output_bytes=0,
    )

    cost = run_cost(facts)

    # 2 CPU hours at 0.5 + 3 GB for half an hour at 2.
    assert cost["total"] == pytest.approx(2 * 0.5 + 3 * 0.5 * 2)
    assert (cost["cpu"], cost["memory"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert (cost["cpu_seconds"], cost["peak_rss_gb"], cost["duration_hours"]) == (7200, 3, 0.5)
    assert (cost["cpu_hour_price"], cost["gb_hour_price"]) == (0.5, 2)


def test_a_run_with_cost_tracking_records_the_cost_metric(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPTOPS_COST_CPU_HOUR", "3600")  # a CPU second costs 1
    run = run_script(
        make_script("spin.py", "import time\nt=time.process_time()+0.2\nwhile time.process_time()<t: pass\n"),
        enable_cost_tracking=True,
    )

    analysis = RunAnalysis.objects.get(run_id=run.pk)
    assert analysis.cost is not None
    assert analysis.cost["cpu"] == pytest.approx(run.cpu_time, rel=1e-3)
    assert analysis.metrics["cost"] == analysis.cost["total"] >= analysis.cost["cpu"] > 0.15
    assert Point.objects.filter(run_id=run.pk, series__metric="cost").exists()


def test_without_cost_tracking_there_is_no_cost(make_script: Callable[..., Path]) -> None:
    run = run_script(rows_script(make_script, 1))
    analysis = RunAnalysis.objects.get(run_id=run.pk)
    assert analysis.cost is None and "cost" not in analysis.metrics


# -- usual, deletion ---------------------------------------------------------------------------


def test_the_record_compares_the_duration_with_the_p50_of_the_last_successful_runs(
    make_script: Callable[..., Path], api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPTOPS_ANALYTICS_USUAL_RUNS", "3")
    run = run_script(rows_script(make_script, 1))
    series = Series.objects.get(path_key=path_key(run.script_path), metric="duration_seconds")
    now = timezone.now()
    for age, value, status in [
        (5, 100.0, "completed"),
        (4, 0.5, "completed"),
        (3, 9.0, "failed"),
        (2, 1.0, "completed"),
        (1, 2.0, "completed"),
    ]:
        Point.objects.create(
            series=series, recorded_at=now - timedelta(hours=age), value=value, status=status
        )

    usual = api.get(f"/api/runs/{run.pk}").json()["analytics"]["usual"]

    # The last 3 successful runs but this one: 0.5, 1, 2 (100 is older, 9 failed).
    assert usual == {"metric": "duration_seconds", "p50": 1.0, "n": 3, "ratio": round(run.duration / 1.0, 4)}


def test_list_rows_carry_no_analytics_block(make_script: Callable[..., Path], api: APIClient) -> None:
    run_script(rows_script(make_script, 1))
    assert api.get("/api/runs").json()["results"][0]["analytics"] is None


def test_deleting_a_run_deletes_its_analysis_but_not_its_history(make_script: Callable[..., Path]) -> None:
    run = run_script(rows_script(make_script, 1), junit_output=True)
    points = Point.objects.filter(run_id=run.pk).count()

    run_delete(run=run)

    assert not RunAnalysis.objects.filter(run_id=run.pk).exists()
    assert points and Point.objects.filter(run_id=run.pk).count() == points
