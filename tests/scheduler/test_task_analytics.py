"""A scheduled task carries the analytics options of its runs (gates, JUnit, baselines, cost,
alert rules): checked like a run request's, stored on the task, copied to every run it
starts — so a gate judges a scheduled run, and a rule may be limited to scheduled runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from runs.models import EventKind, Run, RunStatus
from runs.services import lifecycle, run_execute
from scheduler.models import ScheduledTask
from scheduler.services import TaskError, task_create, task_run_now
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = pytest.mark.django_db

GATES = [{"metric": "rows", "max_value": 10}]


def test_a_task_stores_the_analytics_options_through_the_api(api: APIClient, script: Path) -> None:
    body: dict[str, Any] = {
        "name": "nightly",
        "script_path": str(script),
        "performance_gates": GATES,
        "junit_output": True,
        "load_baseline": "release-1",
        "enable_cost_tracking": "true",
    }
    response = api.post("/api/scheduler/tasks", body, format="json")

    assert response.status_code == 201, response.content
    task = response.json()
    assert task["performance_gates"] == [{"metric": "rows", "max_value": 10.0}]
    assert (task["junit_output"], task["load_baseline"], task["enable_cost_tracking"]) == (
        True,
        "release-1",
        True,
    )
    assert (task["alerts"], task["slack_webhook"], task["save_baseline"]) == ([], None, None)
    stored = ScheduledTask.objects.get(pk=task["id"])
    assert stored.performance_gates == task["performance_gates"]

    changed = api.patch(f"/api/scheduler/tasks/{task['id']}", {"performance_gates": []}, format="json")
    assert changed.status_code == 200 and changed.json()["performance_gates"] == []
    assert changed.json()["junit_output"] is True  # options not named are kept


def test_bad_analytics_options_of_a_task_are_named(script: Path) -> None:
    with pytest.raises(TaskError) as err:
        task_create(
            name="t", script_path=str(script), performance_gates=[{"metric": "rows"}], save_baseline="/x"
        )
    assert set(err.value.fields) == {"performance_gates", "save_baseline"}


@pytest.mark.usefixtures("strays")
def test_a_scheduled_run_carries_the_tasks_gates_and_is_judged_by_them(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)
    script = make_script("count.sh", "echo '::metric rows=11'\n")
    task, _ = task_create(name="counted", script_path=str(script), performance_gates=GATES, junit_output=True)

    entry = task_run_now(task=task)
    assert entry.run is not None
    run = Run.objects.get(pk=entry.run.pk)
    assert (run.source, run.performance_gates, run.junit_output) == (
        "scheduler",
        [{"metric": "rows", "max_value": 10.0}],
        True,
    )

    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 0)
    assert run.events.filter(kind=EventKind.GATE_FAILED).exists()


def test_a_tasks_slack_webhook_is_masked_and_kept_when_sent_back(
    api: APIClient, script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")
    url = "https://hooks.example.test/slack/T000"
    body = {
        "name": "t",
        "script_path": str(script),
        "slack_webhook": url,
        "alerts": [{"name": "failed", "when": "failure", "channels": ["slack"]}],
    }
    created = api.post("/api/scheduler/tasks", body, format="json")
    assert created.status_code == 201, created.content
    task = created.json()
    assert task["slack_webhook"] == "********" and task["alerts"][0]["name"] == "failed"

    again = api.put(f"/api/scheduler/tasks/{task['id']}", task, format="json")

    assert again.status_code == 200, again.content
    assert ScheduledTask.objects.get(pk=task["id"]).slack_webhook == url
