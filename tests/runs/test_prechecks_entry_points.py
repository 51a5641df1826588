"""The pre-run check flags on every way a run starts: ``POST /api/run``, the upload
endpoint, the library's run action and a scheduled task (django-q2 runs synchronously in
the unit tests, so each launch has run — or been blocked — by the time it answers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from runs.models import EventKind, Run, RunStatus
from runs.services import run_execute
from scheduler.services import task_create, task_run_now
from tests.library.helpers import scanned_root, write
from tests.prechecks.conftest import AWS_KEY
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("strays")]

LEAKY = f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\nprint("started")\n'


@pytest.fixture(autouse=True)
def _on_commit_runs_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """As tests/library/conftest.py: a test's transaction never commits, so queued work
    (a scan, a run) is handed over at once; django-q2 then runs it synchronously."""

    def now(func: Callable[[], Any], using: str | None = None, robust: bool = False) -> None:
        func()

    monkeypatch.setattr(transaction, "on_commit", now)


@pytest.fixture
def executor(roots: Path, client_for) -> APIClient:
    return client_for(Role.EXECUTOR)


def outcome(run_id: str) -> tuple[str, str | None]:
    run = Run.objects.get(pk=run_id)
    return run.status, run.run_status


def test_api_run_blocks_a_leaky_script(executor: APIClient, make_script: Callable[..., Path]) -> None:
    script = make_script("leaky.py", LEAKY)
    response = executor.post(
        "/api/run", {"script_path": str(script), "enable_secret_scanning": True}, format="json"
    )
    assert response.status_code == 202, response.content
    record = executor.get(f"/api/runs/{response.json()['id']}").json()
    assert (record["status"], record["run_status"]) == ("failed", "blocked")
    assert record["checks"]["blocked"] is True
    assert AWS_KEY not in str(record)


def test_the_upload_endpoint_takes_the_flags(executor: APIClient) -> None:
    data = {"file": SimpleUploadedFile("leaky.py", LEAKY.encode()), "enable_secret_scanning": "true"}
    response = executor.post("/api/run/upload", data, format="multipart")
    assert response.status_code == 202, response.content
    assert outcome(response.json()["id"]) == (RunStatus.FAILED, "blocked")


def test_the_library_run_action_takes_the_flags(executor: APIClient, roots: Path) -> None:
    write(roots / "team" / "leaky.py", LEAKY)
    scanned_root(roots / "team")
    script = Script.objects.get(name="leaky.py")
    response = executor.post(
        f"/api/library/scripts/{script.pk}/run", {"enable_secret_scanning": True}, format="json"
    )
    assert response.status_code == 202, response.content
    assert outcome(response.json()["id"]) == (RunStatus.FAILED, "blocked")
    allowed = executor.post(f"/api/library/scripts/{script.pk}/run", {}, format="json")
    assert outcome(allowed.json()["id"]) == (RunStatus.COMPLETED, "success")


def test_a_scheduled_task_carries_the_flags_to_its_runs(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs.services import lifecycle

    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)
    script = make_script("leaky.py", LEAKY)
    task, _ = task_create(name="nightly", script_path=str(script), enable_secret_scanning=True)
    assert task.enable_secret_scanning is True
    entry = task_run_now(task=task)
    assert entry.run is not None
    run_execute(run_id=str(entry.run.pk))
    run = Run.objects.get(pk=entry.run.pk)
    assert (run.status, run.run_status, run.enable_secret_scanning) == (RunStatus.FAILED, "blocked", True)
    assert run.events.filter(kind=EventKind.CHECK_BLOCKED).exists()


def test_a_task_shows_the_flags_through_the_api(roots: Path, client_for, make_script) -> None:
    script = make_script("tidy.py", "print(1)\n")
    api: APIClient = client_for(Role.ADMIN)
    body = {"name": "t", "script_path": str(script), "enable_code_analysis": True}
    created = api.post("/api/scheduler/tasks", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["enable_code_analysis"] is True
    assert created.json()["enable_secret_scanning"] is False
