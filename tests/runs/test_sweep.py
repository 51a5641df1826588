"""The local output of runs deleted on another host is swept by the worker host."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from runs.models import Run, RunStatus
from runs.services import run_dirs_sweep

pytestmark = pytest.mark.django_db


def _aged(folder: Path, seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out.log").write_text("x")
    then = time.time() - seconds
    os.utime(folder, (then, then))
    return folder


def test_only_old_directories_of_runs_that_no_longer_exist_are_removed(settings: Any, tmp_path: Path) -> None:
    settings.RUNS_DIR = tmp_path / "runs"
    kept = Run.objects.create(script_path="/x.sh", status=RunStatus.COMPLETED)
    kept_dir = _aged(settings.RUNS_DIR / str(kept.pk), 3600)
    deleted_dir = _aged(settings.RUNS_DIR / str(uuid.uuid4()), 3600)  # its run was deleted elsewhere
    young_dir = _aged(settings.RUNS_DIR / str(uuid.uuid4()), 5)  # maybe a run being created
    other = _aged(settings.RUNS_DIR / "not-a-run", 3600)  # not ours to judge

    assert run_dirs_sweep(min_age=600) == 1

    assert not deleted_dir.exists()
    assert kept_dir.exists() and young_dir.exists() and other.exists()


def test_no_runs_dir_is_nothing_to_sweep(settings: Any, tmp_path: Path) -> None:
    settings.RUNS_DIR = tmp_path / "absent"
    assert run_dirs_sweep() == 0
