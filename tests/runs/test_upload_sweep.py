"""The lifetime of uploaded scripts: what refers to an upload (runs, registered referrers)
keeps it; the runner's housekeeping sweeps this host's upload folders and, with the
database store, the database copies that nothing refers to any more."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from runs.models import Run, RunStatus, UploadedScript
from runs.services import runs_delete
from runs.services import uploads as uploads_module
from runs.services.uploads import uploads_forget, uploads_referenced, uploads_sweep

pytestmark = pytest.mark.django_db

HOUR = 3600.0


@pytest.fixture
def uploads_root(settings: Any, tmp_path: Path) -> Path:
    settings.UPLOADS_ROOT = tmp_path / "uploads"
    settings.UPLOADS_ROOT.mkdir()
    return Path(settings.UPLOADS_ROOT)


@pytest.fixture
def database_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads_module, "output_store", lambda: "database")


@pytest.fixture
def referrer(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A registered referrer of a higher app, with the paths it refers to."""
    paths: set[str] = set()
    monkeypatch.setitem(
        uploads_module._referrers, "test", lambda wanted: [path for path in wanted if path in paths]
    )
    return paths


def stored(root: Path, *, age: float, name: str = "job.py", upload_id: uuid.UUID | None = None) -> Path:
    """An upload's file ``root/<id>/<name>``, its folder and file last touched ``age`` s ago."""
    folder = root / (upload_id or uuid.uuid4()).hex
    folder.mkdir(parents=True)
    target = folder / name
    target.write_bytes(b"print('hi')\n")
    then = time.time() - age
    os.utime(target, (then, then))
    os.utime(folder, (then, then))
    return target


def row(path: str, *, age: float, upload_id: uuid.UUID | None = None) -> UploadedScript:
    content = b"print('hi')\n"
    return UploadedScript.objects.create(
        id=upload_id or uuid.UUID(hex=Path(path).parent.name),
        name=Path(path).name,
        path=path,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        created_at=timezone.now() - timedelta(seconds=age),
    )


def run_of(path: Path | str, status: str = RunStatus.COMPLETED) -> Run:
    return Run.objects.create(script_path=str(path), status=status)


# -- what refers to an upload ---------------------------------------------------------------


def test_runs_and_registered_referrers_keep_paths(referrer: set[str]) -> None:
    run_of("/a/one.py")
    referrer.add("/a/two.py")
    assert uploads_referenced(paths=["/a/one.py", "/a/two.py", "/a/three.py"]) == {"/a/one.py", "/a/two.py"}


def test_a_referrer_is_asked_only_about_paths_no_run_refers_to(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def ask(wanted: list[str]) -> list[str]:
        asked.append(wanted)
        return []

    monkeypatch.setitem(uploads_module._referrers, "test", ask)
    run_of("/a/one.py")
    assert uploads_referenced(paths=["/a/one.py", "/a/two.py"]) == {"/a/one.py"}
    assert asked == [["/a/two.py"]]


def test_a_referrer_cannot_add_paths_it_was_not_asked_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(uploads_module._referrers, "test", lambda wanted: ["/elsewhere.py"])
    assert uploads_referenced(paths=["/a/one.py"]) == set()


def test_deleting_the_last_run_keeps_a_row_a_referrer_names(
    uploads_root: Path, database_store: None, referrer: set[str]
) -> None:
    kept, dropped = stored(uploads_root, age=0), stored(uploads_root, age=0)
    for path in (kept, dropped):
        row(str(path), age=0)
    runs = [run_of(kept), run_of(dropped)]
    referrer.add(str(kept))

    runs_delete(ids=[run.pk for run in runs])

    assert list(UploadedScript.objects.values_list("path", flat=True)) == [str(kept)]


def test_a_failing_referrer_keeps_every_row_and_the_runs_are_still_deleted(
    uploads_root: Path, database_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(wanted: list[str]) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setitem(uploads_module._referrers, "test", broken)
    path = stored(uploads_root, age=0)
    row(str(path), age=0)
    run = run_of(path)

    assert runs_delete(ids=[run.pk])["deleted"] == 1
    assert uploads_forget(script_paths=[str(path)]) == 0
    assert UploadedScript.objects.count() == 1
    assert not Run.objects.exists()


# -- the sweep: this host's folders ---------------------------------------------------------


def test_the_sweep_removes_only_old_folders_nothing_refers_to(uploads_root: Path, referrer: set[str]) -> None:
    unused = stored(uploads_root, age=HOUR)
    young = stored(uploads_root, age=5)  # its run may be being created right now
    by_run = stored(uploads_root, age=HOUR)
    by_referrer = stored(uploads_root, age=HOUR)
    run_of(by_run)
    referrer.add(str(by_referrer))
    not_ours = uploads_root / "not-an-upload"
    not_ours.mkdir()
    os.utime(not_ours, (time.time() - HOUR,) * 2)

    assert uploads_sweep(min_age=600) == 1

    assert not unused.parent.exists()
    assert young.exists() and by_run.exists() and by_referrer.exists() and not_ours.exists()


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_the_sweep_never_removes_the_script_of_a_queued_or_running_run(
    uploads_root: Path, status: str
) -> None:
    path = stored(uploads_root, age=HOUR)
    run_of(path, status=status)
    assert uploads_sweep(min_age=600) == 0
    assert path.exists()


def test_a_folder_with_a_freshly_written_copy_counts_as_touched(uploads_root: Path) -> None:
    path = stored(uploads_root, age=HOUR)
    os.utime(path)  # a worker host's copy, just written for a run
    assert uploads_sweep(min_age=600) == 0
    assert path.exists()


def test_the_sweep_never_follows_a_symlinked_folder(uploads_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.py").write_text("x")
    link = uploads_root / uuid.uuid4().hex
    link.symlink_to(outside)
    os.utime(link, (time.time() - HOUR,) * 2, follow_symlinks=False)

    assert uploads_sweep(min_age=600) == 0
    assert (outside / "keep.py").exists() and link.is_symlink()


def test_no_uploads_root_is_nothing_to_sweep(settings: Any, tmp_path: Path) -> None:
    settings.UPLOADS_ROOT = tmp_path / "absent"
    assert uploads_sweep() == 0


# -- the sweep: database copies -------------------------------------------------------------


@pytest.mark.usefixtures("database_store")
def test_the_sweep_deletes_old_rows_nothing_refers_to(uploads_root: Path, referrer: set[str]) -> None:
    receiving = "/srv/web-host/uploads"  # rows of uploads received by another host
    unused = row(f"{receiving}/{uuid.uuid4().hex}/a.py", age=HOUR)
    young = row(f"{receiving}/{uuid.uuid4().hex}/b.py", age=5)
    by_run = row(f"{receiving}/{uuid.uuid4().hex}/c.py", age=HOUR)
    by_referrer = row(f"{receiving}/{uuid.uuid4().hex}/d.py", age=HOUR)
    run_of(by_run.path, status=RunStatus.QUEUED)
    referrer.add(by_referrer.path)

    assert uploads_sweep(min_age=600) == 1

    assert set(UploadedScript.objects.values_list("pk", flat=True)) == {young.pk, by_run.pk, by_referrer.pk}
    assert unused.pk not in set(UploadedScript.objects.values_list("pk", flat=True))


@pytest.mark.usefixtures("database_store")
def test_a_worker_hosts_copy_is_judged_by_the_path_its_row_records(uploads_root: Path) -> None:
    # This worker host's copy lives under its own uploads root; the runs name the path
    # on the web host that received the upload.
    upload_id = uuid.uuid4()
    web_path = f"/srv/web-host/uploads/{upload_id.hex}/job.py"
    row(web_path, age=HOUR, upload_id=upload_id)
    copy = stored(uploads_root, age=HOUR, upload_id=upload_id)
    run = run_of(web_path)

    assert uploads_sweep(min_age=600) == 0
    assert copy.exists() and UploadedScript.objects.exists()

    run.delete()
    assert uploads_sweep(min_age=600) == 1
    assert not copy.parent.exists() and not UploadedScript.objects.exists()


@pytest.mark.usefixtures("database_store")
def test_a_run_queued_while_the_sweep_decides_keeps_its_row(
    uploads_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unused = row(f"/srv/web-host/uploads/{uuid.uuid4().hex}/a.py", age=HOUR)
    decide = uploads_module.uploads_referenced

    def then_queued(*, paths: Any) -> set[str]:
        found = decide(paths=paths)
        run_of(unused.path, status=RunStatus.QUEUED)  # the path typed again meanwhile
        return found

    monkeypatch.setattr(uploads_module, "uploads_referenced", then_queued)
    uploads_sweep(min_age=600)
    assert UploadedScript.objects.filter(pk=unused.pk).exists()


def test_in_the_single_host_mode_rows_are_not_looked_at(uploads_root: Path, settings: Any) -> None:
    settings.OUTPUT_STORE = "local"
    old = row(f"/srv/web-host/uploads/{uuid.uuid4().hex}/a.py", age=HOUR)
    assert uploads_sweep(min_age=600) == 0
    assert UploadedScript.objects.filter(pk=old.pk).exists()
