"""Scanning a root: incremental rescans, missing files, symlinks, unreadable files, one scan at a time."""

from __future__ import annotations

import errno
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from library.models import FolderRoot, Scan, ScanState, Script
from library.services import LibraryError, root_create, scan_execute, scan_start

pytestmark = pytest.mark.django_db


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(roots: Path) -> Path:
    base = roots / "team"
    write(base / "hello.py", '"""Say hello."""\nprint("hi")\n')
    write(base / "deploy" / "push.sh", "#!/bin/bash\n# Push a release.\necho push\n")
    write(base / "deploy" / "notes.txt", "not a script\n")
    write(base / ".git" / "hooks" / "pre-commit.sh", "echo hook\n")
    write(base / "node_modules" / "x" / "index.js", "module.exports = 1\n")
    write(base / "__pycache__" / "hello.cpython-311.py", "junk\n")
    return base


def scan(root: FolderRoot) -> Scan:
    started, joined = scan_start(root=root)
    assert not joined
    # tests/settings.py runs django-q2 synchronously: the scan already ran on commit.
    started.refresh_from_db()
    return started


def test_a_scan_indexes_scripts_and_skips_default_excludes(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))

    done = scan(root)

    assert done.state == ScanState.COMPLETED, done.message
    assert sorted(root.scripts.values_list("relpath", flat=True)) == ["deploy/push.sh", "hello.py"]
    assert (done.files_seen, done.files_added, done.files_updated, done.files_total) == (2, 2, 0, 2)
    push = root.scripts.get(name="push.sh")
    assert (push.language, push.description, push.line_count) == ("shell", "Push a release.", 3)
    assert done.timings["total"] >= 0 and done.finished_at is not None


def test_a_rescan_reads_only_what_changed(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    scan(root)
    hello = root.scripts.get(name="hello.py")
    Script.objects.filter(pk=hello.pk).update(description="sentinel: not re-read")
    write(tree / "deploy" / "push.sh", "#!/bin/bash\n# Push a release, faster.\necho push\n")
    os.utime(tree / "deploy" / "push.sh", ns=(1, 1))
    write(tree / "new.rb", "puts 1\n")

    done = scan(root)

    assert (done.files_unchanged, done.files_updated, done.files_added) == (1, 1, 1)
    assert root.scripts.get(name="hello.py").description == "sentinel: not re-read"
    assert root.scripts.get(name="push.sh").description == "Push a release, faster."


def test_vanished_files_are_marked_missing_then_removed_after_the_grace(tree: Path, settings) -> None:
    root = root_create(name="team", path=str(tree))
    scan(root)
    (tree / "hello.py").unlink()

    done = scan(root)

    hello = root.scripts.get(name="hello.py")
    assert hello.missing_since is not None
    assert (done.files_missing, done.files_removed) == (1, 0)

    settings.LIBRARY_MISSING_GRACE = 60
    Script.objects.filter(pk=hello.pk).update(missing_since=timezone.now() - timedelta(seconds=61))
    done = scan(root)

    assert done.files_removed == 1
    assert not root.scripts.filter(name="hello.py").exists()


def test_a_file_that_comes_back_is_no_longer_missing(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    scan(root)
    content = (tree / "hello.py").read_bytes()
    (tree / "hello.py").unlink()
    scan(root)
    (tree / "hello.py").write_bytes(content)

    scan(root)

    assert root.scripts.get(name="hello.py").missing_since is None


def test_symlinks_leaving_the_root_are_not_followed(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.py", "print('secret')\n")
    (tree / "escape.py").symlink_to(outside / "secret.py")
    (tree / "escape_dir").symlink_to(outside, target_is_directory=True)
    (tree / "inside.py").symlink_to(tree / "hello.py")
    root = root_create(name="team", path=str(tree))

    done = scan(root)

    names = set(root.scripts.values_list("relpath", flat=True))
    assert "escape.py" not in names and not any(n.startswith("escape_dir") for n in names)
    assert "inside.py" in names
    assert done.files_skipped == 2


def test_unreadable_files_are_reported_not_fatal(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tree / "locked.py"
    locked.write_text("print(1)\n")
    locked.chmod(0)
    if os.geteuid() == 0:
        # Root reads any file whatever its mode, so the EACCES an ordinary user gets is
        # simulated here (a mock only because the real condition cannot occur as root).
        real_open = os.open

        def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path) == str(locked):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", guarded)
    root = root_create(name="team", path=str(tree))

    done = scan(root)

    assert done.state == ScanState.COMPLETED
    assert done.error_count == 1
    assert done.errors[0]["path"].endswith("locked.py")
    assert root.scripts.filter(name="hello.py").exists()


def test_a_binary_file_that_looks_like_a_script_is_recorded_as_binary(tree: Path) -> None:
    (tree / "blob.py").write_bytes(b"\x00\x01\x02")
    root = root_create(name="team", path=str(tree))
    scan(root)
    assert root.scripts.get(name="blob.py").is_binary


def test_a_second_scan_while_one_is_active_joins_it(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    active = Scan.objects.create(root=root, state=ScanState.RUNNING, started_at=timezone.now())

    joined_scan, joined = scan_start(root=root)

    assert joined and joined_scan.pk == active.pk
    assert Scan.objects.filter(root=root).count() == 1


def test_a_stale_active_scan_does_not_block_forever(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    old = timezone.now() - timedelta(hours=1)
    dead = Scan.objects.create(root=root, state=ScanState.RUNNING, started_at=old, updated_at=old)

    fresh, joined = scan_start(root=root)

    dead.refresh_from_db()
    assert not joined and dead.state == ScanState.FAILED
    fresh.refresh_from_db()
    assert fresh.state == ScanState.COMPLETED


def test_a_scan_claimed_twice_runs_once(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    done = scan(root)
    assert scan_execute(scan_id=str(done.pk)) is None  # already completed: the claim fails


def test_a_root_that_vanished_fails_the_scan_with_a_message(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    FolderRoot.objects.filter(pk=root.pk).update(path=str(tree / "gone"))
    root.refresh_from_db()

    done = scan(root)

    assert done.state == ScanState.FAILED
    assert "does not exist" in done.message


def test_non_recursive_roots_and_custom_patterns(tree: Path) -> None:
    root = root_create(
        name="team", path=str(tree), recursive=False, include_patterns=["*.py", "*.txt"], exclude_patterns=[]
    )
    scan(root)
    assert sorted(root.scripts.values_list("relpath", flat=True)) == ["hello.py"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("relative/path", "not an absolute path"),
        ("/etc", "outside the allowed roots"),
        ("{roots}/nope", "not an existing folder"),
        ("{roots}/../..", "outside the allowed roots"),
    ],
)
def test_roots_must_be_existing_folders_inside_the_allowed_roots(
    roots: Path, path: str, message: str
) -> None:
    with pytest.raises(LibraryError, match=message):
        root_create(name="x", path=path.format(roots=roots))


def test_a_root_symlinked_from_outside_is_refused(roots: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (roots / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LibraryError, match="outside the allowed roots"):
        root_create(name="x", path=str(roots / "link"))


def test_deleting_a_root_removes_its_scripts_and_nothing_on_disk(tree: Path) -> None:
    root = root_create(name="team", path=str(tree))
    scan(root)
    root.delete()
    assert Script.objects.count() == 0
    assert (tree / "hello.py").exists()


def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_read(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from library.services import scans

    secret = write(tmp_path / "outside" / "secret.py", '"""TOP SECRET."""\n')
    real_walk = scans._walk

    def walk_then_swap(*args: Any) -> Any:
        found = real_walk(*args)
        # Between the walk and the read, someone replaces a script by a link to a file
        # outside the root: the scan must not read (and describe) that file.
        (tree / "hello.py").unlink()
        (tree / "hello.py").symlink_to(secret)
        return found

    monkeypatch.setattr(scans, "_walk", walk_then_swap)
    root = root_create(name="team", path=str(tree))

    done = scan(root)

    assert not root.scripts.filter(description__contains="SECRET").exists()
    assert any(e["path"].endswith("hello.py") for e in done.errors), done.errors


def test_the_live_feed_rows_carry_progress_and_duration(tree: Path) -> None:
    from library.selectors import scan_feed_rows

    root = root_create(name="team", path=str(tree))
    done = scan(root)
    walking = Scan.objects.create(root=root, state=ScanState.RUNNING, started_at=timezone.now())
    Scan.objects.filter(pk=walking.pk).update(files_total=200, files_processed=50)

    rows = {row["id"]: row for row in scan_feed_rows()}

    assert rows[done.pk]["progress"] == 100.0
    assert rows[done.pk]["duration"] is not None and rows[done.pk]["files_seen"] == 2
    assert rows[walking.pk]["progress"] == 25.0
    assert rows[walking.pk]["duration"] is None
