"""A task's run options are checked once, by the run request's own rules
(``runs.request.run_request_clean``) in the service, whoever calls: the API passes them on
as sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from runs.request import RunRequest
from scheduler.models import ScheduledTask
from scheduler.services import TaskError, task_create, task_update
from scheduler.services import tasks as task_services

pytestmark = pytest.mark.django_db


def test_the_service_checks_options_with_the_run_request_rules(
    script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    real = task_services.run_request_clean

    def spy(data: object) -> RunRequest:
        seen.append(data)
        return real(data)

    monkeypatch.setattr(task_services, "run_request_clean", spy)

    task, _ = task_create(name="t", script_path=str(script), args="-v 'two words'", timeout="30")

    assert seen == [{"script_path": str(script), "args": "-v 'two words'", "timeout": "30"}]
    assert (task.args, task.timeout) == (["-v", "two words"], 30.0)


def test_every_bad_option_is_named_by_the_service(script: Path) -> None:
    with pytest.raises(TaskError) as err:
        task_create(
            name="t", script_path=str(script), timeout=0, retry_strategy="random", env_vars={"A": None}
        )
    assert err.value.fields == {
        "timeout": ["Ensure this value is greater than or equal to 0.1."],
        "retry_strategy": ['"random" is not a valid choice.'],
        "env_vars": ["A: This field may not be null."],
    }


def test_an_update_keeps_the_options_it_does_not_name(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t", args=["a"], timeout=5, log_level="DEBUG")
    task = task_update(task=task, retry_on_failure="true")
    assert (task.args, task.timeout, task.log_level, task.retry_on_failure) == (["a"], 5.0, "DEBUG", True)


def test_the_api_passes_options_on_as_sent(api: APIClient, script: Path) -> None:
    body: dict[str, Any] = {"name": "t", "script_path": str(script), "args": "x 'y z'", "timeout": "2.5"}
    response = api.post("/api/scheduler/tasks", body, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["args"], response.json()["timeout"]) == (["x", "y z"], 2.5)

    task = ScheduledTask.objects.get()
    response = api.patch(f"/api/scheduler/tasks/{task.pk}", {"monitor_interval": 1}, format="json")
    assert response.status_code == 400
    assert "monitor_interval" in response.json()["details"]
    response = api.patch(f"/api/scheduler/tasks/{task.pk}", {"timeout": None}, format="json")
    assert response.status_code == 200 and response.json()["timeout"] is None
