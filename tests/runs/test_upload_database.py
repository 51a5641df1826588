"""Uploads when hosts share no disk (``SCRIPTOPS_OUTPUT_STORE=database``): the bytes go to
the database too, and a worker host without the file writes its own copy before the run.

The runs execute in this process with ``run_execute``; "another host" is this process
with the receiving host's uploads folder removed (or with another ``UPLOADS_ROOT``).
Running the database *output* store on SQLite would lock between threads, so the run
tests select the database store for uploads only (``uploads.output_store``); the tests
that do not execute anything select it through the setting itself.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.roles import Role
from runs.logstore import LogReader
from runs.models import EventKind, Run, RunStatus, UploadedScript
from runs.services import lifecycle, run_delete, run_enqueue, run_execute, runs_delete
from runs.services import uploads as uploads_module
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("strays", "no_dispatch")]

SCRIPT = b"print('from the database')\n"


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue without handing the run to django-q: the tests call ``run_execute`` themselves."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture
def client(roots: Path, client_for: Any) -> APIClient:
    return client_for(Role.EXECUTOR)


@pytest.fixture
def shared_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database store, for uploads only (the output stays in local files)."""
    monkeypatch.setattr(uploads_module, "output_store", lambda: "database")


def upload(client: APIClient, name: str = "job.py", content: bytes = SCRIPT, **fields: Any) -> Any:
    return client.post(
        "/api/run/upload", {"file": SimpleUploadedFile(name, content), **fields}, format="multipart"
    )


def uploaded_run(client: APIClient, **fields: Any) -> Run:
    response = upload(client, **fields)
    assert response.status_code == 202, response.content[:400]
    return Run.objects.get(pk=response.json()["id"])


def stdout_of(run: Run) -> str:
    return LogReader(run.output_dir).read_bytes(stream="stdout")[0].decode()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- storing --------------------------------------------------------------------------------


def test_with_the_database_store_an_upload_keeps_its_bytes_in_the_database(
    client: APIClient, settings
) -> None:
    settings.OUTPUT_STORE = "database"
    run = uploaded_run(client)
    row = UploadedScript.objects.get()
    assert row.id.hex == Path(run.script_path).parent.name
    assert (row.name, row.path) == ("job.py", run.script_path)
    assert bytes(row.content) == SCRIPT
    assert row.sha256 == hashlib.sha256(SCRIPT).hexdigest()


def test_in_the_single_host_mode_no_copy_is_kept(client: APIClient, settings) -> None:
    settings.OUTPUT_STORE = "local"
    uploaded_run(client)
    assert not UploadedScript.objects.exists()


def test_a_dry_run_or_a_refused_request_leaves_no_row(client: APIClient, settings) -> None:
    settings.OUTPUT_STORE = "database"
    assert upload(client, dry_run="true").status_code == 200
    assert upload(client, timeout="-5").status_code == 400
    assert not UploadedScript.objects.exists()
    assert files_under(Path(settings.UPLOADS_ROOT)) == []


# -- materialising on the worker ------------------------------------------------------------


@pytest.mark.usefixtures("shared_uploads")
def test_a_host_without_the_file_writes_it_from_the_database_and_runs_it(client: APIClient, settings) -> None:
    run = uploaded_run(client)
    stored = Path(run.script_path)
    mode = stat.S_IMODE(stored.stat().st_mode)
    shutil.rmtree(stored.parent)  # as on a worker host: another data dir

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert stdout_of(run) == "from the database\n"
    assert stored.read_bytes() == SCRIPT
    assert stat.S_IMODE(stored.stat().st_mode) == mode  # as upload_store leaves it
    assert [p.name for p in stored.parent.iterdir()] == ["job.py"]  # no temporary file left


@pytest.mark.usefixtures("shared_uploads")
@pytest.mark.parametrize("receiving_copy_visible", [False, True])
def test_a_host_with_another_data_dir_runs_its_own_copy(
    client: APIClient, settings, tmp_path: Path, receiving_copy_visible: bool
) -> None:
    # Visible: both "hosts" on one machine, the receiving host's file is there but outside
    # this host's roots.
    run = uploaded_run(client)
    receiving = Path(settings.UPLOADS_ROOT)
    if not receiving_copy_visible:
        shutil.rmtree(receiving)
    settings.UPLOADS_ROOT = tmp_path / "worker-data" / "uploads"  # the worker host's

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert stdout_of(run) == "from the database\n"
    assert files_under(receiving) == ([Path(run.script_path)] if receiving_copy_visible else [])
    local = Path(settings.UPLOADS_ROOT) / Path(run.script_path).parent.name / "job.py"
    assert files_under(Path(settings.UPLOADS_ROOT)) == [local]
    assert local.read_bytes() == SCRIPT


@pytest.mark.usefixtures("shared_uploads")
def test_a_tampered_copy_is_refused(client: APIClient, settings) -> None:
    run = uploaded_run(client)
    shutil.rmtree(Path(run.script_path).parent)
    UploadedScript.objects.update(content=b"import os; os.system('evil')\n")

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary and run.error_summary["reason"] == "upload_corrupt"
    rejected = run.events.get(kind=EventKind.REJECTED).data
    assert rejected["field"] == "script_path" and "SHA-256" in rejected["message"]
    assert files_under(Path(settings.UPLOADS_ROOT)) == []


@pytest.mark.usefixtures("shared_uploads")
def test_without_the_database_store_a_missing_upload_is_refused_as_before(
    client: APIClient, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    run = uploaded_run(client)
    shutil.rmtree(Path(run.script_path).parent)
    monkeypatch.setattr(uploads_module, "output_store", lambda: "local")

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary and run.error_summary["reason"] == "not_found"
    assert files_under(Path(settings.UPLOADS_ROOT)) == []


@pytest.mark.usefixtures("shared_uploads")
def test_a_run_whose_path_is_not_the_uploads_recorded_path_is_never_materialised(
    client: APIClient, settings, tmp_path: Path
) -> None:
    # A run pointing at <somewhere>/<an upload's id>/job.py: same folder name and file
    # name as a stored upload, but not the path it was stored at.
    run = uploaded_run(client)
    shutil.rmtree(Path(run.script_path).parent)
    elsewhere = tmp_path / "scripts" / Path(run.script_path).parent.name / "job.py"
    Run.objects.filter(pk=run.pk).update(script_path=str(elsewhere))

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary and run.error_summary["reason"] == "not_found"
    assert not elsewhere.parent.exists()
    assert files_under(Path(settings.UPLOADS_ROOT)) == []


@pytest.mark.usefixtures("shared_uploads")
def test_a_row_with_an_unsafe_name_or_a_folder_leaving_the_uploads_root_writes_nothing(
    client: APIClient, settings, tmp_path: Path
) -> None:
    run = uploaded_run(client)
    folder = Path(run.script_path).parent
    shutil.rmtree(folder)
    # An unsafe name in the row and the path: refused before any write.
    unsafe = str(folder / ".bashrc")
    UploadedScript.objects.update(name=".bashrc", path=unsafe)
    assert uploads_module.upload_materialise(script_path=unsafe) is None
    assert files_under(Path(settings.UPLOADS_ROOT)) == []

    # The upload's folder is a symlink out of the uploads root: refused, nothing written.
    UploadedScript.objects.update(name="job.py", path=run.script_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder.symlink_to(outside)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary and run.error_summary["reason"] == "path_not_allowed"
    assert list(outside.iterdir()) == []


# -- deleting -------------------------------------------------------------------------------


@pytest.mark.usefixtures("shared_uploads")
def test_the_row_goes_with_the_last_run_that_refers_to_it(client: APIClient) -> None:
    first = uploaded_run(client)
    again = run_enqueue(params=first.request_parameters(), source="restart")  # a restart
    other = uploaded_run(client)
    Run.objects.update(status=RunStatus.COMPLETED)
    first.refresh_from_db()

    run_delete(run=first)
    assert UploadedScript.objects.count() == 2  # the restart still runs it

    runs_delete(ids=[again.pk, uuid.uuid4()])
    assert list(UploadedScript.objects.values_list("path", flat=True)) == [other.script_path]
