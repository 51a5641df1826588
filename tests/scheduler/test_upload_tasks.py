"""A scheduled task that names an uploaded script keeps the upload alive: deleting the
runs of it and the uploads sweep leave its file and (hosts sharing no disk) its database
copy, so the task still runs it. The scheduler tells runs through the referrer it
registers in ``SchedulerConfig.ready``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.roles import Role
from runs.logstore import LogReader
from runs.models import Run, RunStatus, UploadedScript
from runs.services import lifecycle, run_execute, runs_delete
from runs.services import uploads as uploads_module
from runs.services.uploads import uploads_referenced, uploads_sweep
from scheduler.models import Trigger
from scheduler.services import task_create, task_delete, task_fire
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("strays", "no_dispatch")]

SCRIPT = b"print('uploaded, run by a task')\n"


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue without handing the run to django-q: the tests call ``run_execute`` themselves."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture(params=["local", "database"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Single host, or hosts sharing no disk (the database store for uploads only: the
    output stays in local files, as in tests/runs/test_upload_database.py)."""
    mode = str(request.param)
    monkeypatch.setattr(uploads_module, "output_store", lambda: mode)
    return mode


def uploaded_run(roots: Path, client_for: Any) -> Run:
    client: APIClient = client_for(Role.USER)
    response = client.post(
        "/api/run/upload", {"file": SimpleUploadedFile("job.py", SCRIPT)}, format="multipart"
    )
    assert response.status_code == 202, response.content[:400]
    run = Run.objects.get(pk=response.json()["id"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)  # as if it had run
    return run


def test_the_scheduler_registers_its_tasks_as_upload_referrers(roots: Path, client_for: Any) -> None:
    run = uploaded_run(roots, client_for)
    task, _ = task_create(name="nightly", script_path=run.script_path, interval_seconds=3600)
    runs_delete(ids=[run.pk])
    assert uploads_referenced(paths=[run.script_path]) == {run.script_path}
    task_delete(task=task)
    assert uploads_referenced(paths=[run.script_path]) == set()


def test_a_task_on_an_upload_still_runs_it_after_its_runs_are_deleted_and_swept(
    roots: Path, client_for: Any, store: str
) -> None:
    run = uploaded_run(roots, client_for)
    task, _ = task_create(name="nightly", script_path=run.script_path, interval_seconds=3600)

    runs_delete(ids=[run.pk])
    assert uploads_sweep(min_age=0) == 0  # the task refers to it: nothing is old enough to go

    stored = Path(run.script_path)
    assert stored.read_bytes() == SCRIPT
    assert UploadedScript.objects.count() == (1 if store == "database" else 0)
    if store == "database":
        shutil.rmtree(stored.parent)  # as on a worker host: another data dir

    fired = task_fire(task=task, trigger=Trigger.MANUAL)
    assert fired.run is not None
    assert run_execute(run_id=str(fired.run.pk)) == RunStatus.COMPLETED
    fired.run.refresh_from_db()
    stdout = LogReader(fired.run.output_dir).read_bytes(stream="stdout")[0].decode()
    assert stdout == "uploaded, run by a task\n"


def test_once_the_task_and_the_runs_are_gone_the_sweep_removes_the_upload(
    roots: Path, client_for: Any, store: str
) -> None:
    run = uploaded_run(roots, client_for)
    task, _ = task_create(name="nightly", script_path=run.script_path, interval_seconds=3600)
    fired = task_fire(task=task, trigger=Trigger.MANUAL)
    assert fired.run is not None
    Run.objects.filter(pk=fired.run.pk).update(status=RunStatus.COMPLETED)
    runs_delete(ids=[run.pk, fired.run.pk])
    task_delete(task=task)

    assert uploads_sweep(min_age=0) == 1

    assert not Path(run.script_path).parent.exists()
    assert not UploadedScript.objects.exists()
