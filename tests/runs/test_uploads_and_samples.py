"""Disk work behind the runs API, outside the views: stored uploads and resource samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runs.models import Run
from runs.selectors import SAMPLES_FILE, run_samples
from runs.services.uploads import safe_upload_name, upload_discard, upload_store


def test_each_upload_gets_a_folder_of_its_own_with_a_safe_name(settings, tmp_path: Path) -> None:
    settings.UPLOADS_ROOT = tmp_path / "uploads"
    settings.OUTPUT_STORE = "local"  # the files alone (the database copy: test_upload_database.py)
    first = upload_store(name="../../etc/job.py", chunks=[b"print(1)\n"])
    second = upload_store(name="job.py", chunks=[b"print(", b"2)\n"])
    assert first.name == second.name == "job.py"
    assert first.parent != second.parent
    assert first.parent.parent == second.parent.parent == settings.UPLOADS_ROOT
    assert second.read_bytes() == b"print(2)\n"
    upload_discard(first)
    assert not first.parent.exists() and second.exists()


def test_a_failed_write_leaves_no_folder_behind(settings, tmp_path: Path) -> None:
    settings.UPLOADS_ROOT = tmp_path / "uploads"
    settings.OUTPUT_STORE = "local"

    def chunks():
        yield b"half"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        upload_store(name="job.sh", chunks=chunks())
    assert list(settings.UPLOADS_ROOT.iterdir()) == []


@pytest.mark.parametrize(("raw", "safe"), [("my job (1).py", "my_job_1_.py"), (".hidden.sh", "hidden.sh")])
def test_upload_names_are_made_safe(raw: str, safe: str) -> None:
    assert safe_upload_name(raw) == safe


def test_samples_are_thinned_and_a_line_being_written_is_skipped(settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    run = Run(script_path="x.py")
    run.output_dir.mkdir(parents=True)
    rows = [json.dumps({"ts": i, "cpu": 1.0, "rss": 10, "children": 0, "attempt": 1}) for i in range(5000)]
    (run.output_dir / SAMPLES_FILE).write_text("\n".join(rows) + '\n{"ts": 50')
    samples = run_samples(run, max_points=1000)
    assert 900 <= len(samples) <= 1001
    assert samples[0]["ts"] == 0 and all(isinstance(s, dict) for s in samples)
    assert run_samples(Run(script_path="y.py")) == []
