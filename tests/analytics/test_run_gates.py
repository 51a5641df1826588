"""Performance gates, end to end: a real run whose script exits 0 but breaks a gate ends
``failed``, with the violations in its record and its events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Point, RunAnalysis
from core.roles import Role
from runs.models import EventKind, Run, RunStatus
from runs.services import lifecycle, run_enqueue, run_execute
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.usefixtures("strays", "no_dispatch"), pytest.mark.django_db]


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture
def script(make_script: Callable[..., Path]) -> Path:
    return make_script("report.sh", "echo '::metric rows=120'\necho '::metric errors=0'\n")


def run_script(script: Path, **params: Any) -> Run:
    run = run_enqueue(params={"script_path": str(script), **params}, source="test")
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    return run


def kinds(run: Run) -> list[str]:
    return list(run.events.order_by("timestamp", "id").values_list("kind", flat=True))


def test_a_violated_gate_fails_a_run_that_exited_0(
    script: Path, client_for: Callable[[str], APIClient]
) -> None:
    gates = [
        {"metric": "rows", "max_value": 100},
        {"metric": "errors", "max_value": 0},
        {"metric": "duration_seconds", "min_value": 0, "max_value": 600},
    ]
    run = run_script(script, performance_gates=gates)

    assert (run.status, run.run_status, run.exit_code) == (RunStatus.FAILED, "failed", 0)
    assert run.error_summary is not None
    assert run.error_summary["reason"] == "performance gates violated: rows 120 > max 100"
    assert kinds(run) == [EventKind.QUEUED, EventKind.START, EventKind.GATE_FAILED, EventKind.FAILURE]
    violation = run.events.get(kind=EventKind.GATE_FAILED).data["violations"]
    assert violation == [
        {
            "metric": "rows",
            "max_value": 100.0,
            "min_value": None,
            "value": 120.0,
            "passed": False,
            "message": "rows 120 > max 100",
        }
    ]
    assert run.events.get(kind=EventKind.FAILURE).data["run_status"] == "failed"
    # The history says failed too: the run's final status.
    assert set(Point.objects.filter(run_id=run.pk).values_list("status", flat=True)) == {"failed"}

    record = client_for(Role.READONLY).get(f"/api/runs/{run.pk}").json()
    assert record["status"] == "failed" and record["performance_gates"] == gates
    assert [(g["metric"], g["passed"]) for g in record["analytics"]["gates"]] == [
        ("rows", False),
        ("errors", True),
        ("duration_seconds", True),
    ]
    assert record["analytics"]["metrics"]["rows"] == 120


def test_gates_that_pass_leave_the_run_completed(script: Path) -> None:
    run = run_script(script, performance_gates=[{"metric": "rows", "min_value": 100, "max_value": 200}])

    assert (run.status, run.error_summary) == (RunStatus.COMPLETED, None)
    assert EventKind.GATE_FAILED not in kinds(run)
    assert RunAnalysis.objects.get(run_id=run.pk).gates[0]["passed"] is True


def test_a_gate_on_a_metric_the_run_did_not_report_fails(script: Path) -> None:
    run = run_script(script, performance_gates=[{"metric": "accuracy", "min_value": 0.9}])

    assert run.status == RunStatus.FAILED
    assert run.error_summary is not None and "accuracy has no value" in run.error_summary["reason"]


def test_a_failed_script_keeps_its_own_reason_and_shows_the_violations(
    make_script: Callable[..., Path],
) -> None:
    script = make_script("broken.sh", "echo '::metric rows=5'\necho boom >&2\nexit 2\n")
    run = run_script(script, performance_gates=[{"metric": "rows", "max_value": 1}])

    assert (run.status, run.run_status, run.exit_code) == (RunStatus.FAILED, "failed", 2)
    assert run.error_summary is not None and "gate" not in run.error_summary["reason"]
    assert EventKind.GATE_FAILED in kinds(run)


def test_a_cancelled_run_records_history_but_no_gate_judges_it(make_script: Callable[..., Path]) -> None:
    script = make_script("stops.sh", "echo '::metric rows=500'\nsleep 30\n")
    run = run_enqueue(
        params={"script_path": str(script), "performance_gates": [{"metric": "rows", "max_value": 1}]},
        source="test",
    )
    # A stop requested before the script ran, seen at the first control poll: cancelled.
    Run.objects.filter(pk=run.pk).update(control="stop", control_requested_at=timezone.now())
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()

    assert run.status == RunStatus.CANCELLED
    assert RunAnalysis.objects.get(run_id=run.pk).gates == []
    assert EventKind.GATE_FAILED not in kinds(run)
    assert set(Point.objects.filter(run_id=run.pk).values_list("status", flat=True)) == {"cancelled"}
