"""A web-only host's housekeeping (``manage.py housekeep``): it sweeps the uploads that
host received once nothing refers to them, and ``serve --no-worker`` starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db


def stored(root: Path, *, age: float) -> Path:
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / "job.py"
    target.write_bytes(b"print('hi')\n")
    then = time.time() - age
    os.utime(target, (then, then))
    os.utime(folder, (then, then))
    return target


def test_once_removes_old_unreferenced_uploads_and_keeps_what_a_run_names(
    settings: Any, tmp_path: Path
) -> None:
    settings.UPLOADS_ROOT = tmp_path / "uploads"
    old_unused = stored(settings.UPLOADS_ROOT, age=3600)
    old_used = stored(settings.UPLOADS_ROOT, age=3600)
    recent = stored(settings.UPLOADS_ROOT, age=5)
    Run.objects.create(script_path=str(old_used), status=RunStatus.QUEUED)

    out = StringIO()
    call_command("housekeep", once=True, stdout=out)

    assert "1 unused upload(s) removed." in out.getvalue()
    assert not old_unused.parent.exists()
    assert old_used.exists() and recent.exists()


def test_serve_without_a_worker_starts_the_housekeeper_and_no_runner(tmp_path: Path) -> None:
    # serve execs the supervisor with its plan as JSON: a stand-in Python records it.
    fake = tmp_path / "python"
    record = tmp_path / "argv.json"
    dump = f'import json, sys; json.dump(sys.argv, open("{record}", "w"))'
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{dump}' \"$@\"\n")
    fake.chmod(0o755)
    code = (
        "import os, sys, django; sys.executable = sys.argv[1]; django.setup();"
        "from django.core.management import call_command; call_command('serve', '--no-worker')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings")}
    subprocess.run(
        [sys.executable, "-c", code, str(fake)],
        cwd=django_settings.BASE_DIR,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    argv = json.loads(record.read_text())
    plan = json.loads(argv[-1])
    names = [name for name, _ in plan["children"]]
    assert names == ["web", "housekeeper"]
    assert plan["children"][1][1][-1] == "housekeep"
    assert plan["reap"] is None
