"""Scheduler fixtures: a script in the allowed root, tasks made through the service, runs
finished by hand (queued runs never start in unit tests: their transaction never commits)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from runs.models import Run, RunStatus
from scheduler.models import ScheduledTask
from scheduler.services import task_create

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def script(make_script: Callable[..., Path]) -> Path:
    return make_script("job.sh", "echo job\n")


@pytest.fixture
def make_task(script: Path) -> Callable[..., ScheduledTask]:
    """``make_task("name", interval_seconds=60, now=NOW)``: a task through the service."""

    def make(name: str, **fields: Any) -> ScheduledTask:
        fields.setdefault("script_path", str(script))
        task, _ = task_create(name=name, **fields)
        return task

    return make


@pytest.fixture
def api(roots: Path, client_for: Callable[[str], APIClient]) -> APIClient:
    """A client with the ``user`` role (read, execute and write)."""
    return client_for(Role.USER)


def finish(run: Run | None, *, status: str = RunStatus.COMPLETED, exit_code: int = 0) -> Run:
    """Mark ``run`` finished, as the runner would."""
    assert run is not None
    run_status = {"completed": "success", "failed": "failed", "cancelled": "killed"}[status]
    Run.objects.filter(pk=run.pk).update(
        status=status, run_status=run_status, exit_code=exit_code, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def start(run: Run | None) -> Run:
    assert run is not None
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=timezone.now())
    run.refresh_from_db()
    return run
