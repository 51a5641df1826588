"""Tasks that run a library script: queued through ``library.services.script_enqueue``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from library.models import FolderRoot, Script, ScriptStatus
from scheduler.models import Outcome, ScheduledTask
from scheduler.services import task_run_now, tasks_fire_due
from tests.scheduler.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def library_script(roots: Path, script: Path) -> Script:
    root = FolderRoot.objects.create(name="root", path=str(roots))
    return Script.objects.create(
        root=root, path=str(script), relpath=script.name, name=script.name, language="shell", max_concurrent=3
    )


def test_a_library_task_run_is_linked_to_the_script(
    make_task: Callable[..., ScheduledTask], library_script: Script
) -> None:
    task = make_task("lib", script_id=library_script.pk, script_path=None, args=["-v"])
    run = task_run_now(task=task).run
    assert run is not None
    assert (run.script_id, run.script_path, run.args) == (library_script.pk, library_script.path, ["-v"])
    # skip needs no task key: the script's own max_concurrent applies.
    assert (run.concurrency_key, run.concurrency_limit) == (library_script.concurrency_key, 3)
    assert run.system_env["SCRIPTOPS_TASK_NAME"] == "lib"


def test_a_task_key_replaces_the_scripts_own(
    make_task: Callable[..., ScheduledTask], library_script: Script
) -> None:
    task = make_task("lib", script_id=library_script.pk, script_path=None, overlap_policy="queue")
    run = task_run_now(task=task).run
    assert run is not None
    assert (run.concurrency_key, run.concurrency_limit) == (task.concurrency_key, 1)


def test_a_script_archived_after_scheduling_is_an_error_entry_or_a_409(
    api: APIClient, make_task: Callable[..., ScheduledTask], library_script: Script
) -> None:
    task = make_task("lib", script_id=library_script.pk, script_path=None, interval_seconds=60, now=NOW)
    Script.objects.filter(pk=library_script.pk).update(status=ScriptStatus.ARCHIVED)

    [entry] = tasks_fire_due(now=NOW.replace(minute=1, second=1)).fired

    assert entry.outcome == Outcome.ERROR and entry.run is None
    assert "archived" in entry.reason
    task.refresh_from_db()
    assert task.next_run_at == NOW.replace(minute=2)  # the schedule goes on
    response = api.post(f"/api/scheduler/tasks/{task.pk}/run")
    assert response.status_code == 409 and "archived" in response.json()["message"]


def test_a_deleted_library_script_leaves_its_path(
    api: APIClient, make_task: Callable[..., ScheduledTask], library_script: Script
) -> None:
    task = make_task("lib", script_id=library_script.pk, script_path=None)
    library_script.delete()
    body = api.get(f"/api/scheduler/tasks/{task.pk}").json()
    assert (body["script_id"], body["script_path"]) == (None, library_script.path)
