"""Executable scripts without an extension are indexed by their shebang (and can run);
Python files that do not parse are indexed with a visible parse error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from library.analysis import analyse, interpreter_of, language_of
from library.models import Script
from library.services import root_create
from runs.models import Run
from runs.services.execution import build_plan
from tests.library.helpers import scan_now, scanned_root, write

pytestmark = pytest.mark.django_db

LIST = "/api/library/scripts"


# -- the shebang names the language --------------------------------------------------------


@pytest.mark.parametrize(
    ("shebang", "interpreter", "language"),
    [
        ("/usr/bin/env python3", "python", "python"),
        ("/usr/bin/python3.11 -u", "python", "python"),
        ("/usr/bin/env python3.12", "python", "python"),
        ("/usr/bin/perl -w", "perl", "perl"),
        ("/bin/bash", "bash", "shell"),
        ("/bin/sh -e", "sh", "shell"),
        ("/usr/bin/env -S node --experimental-modules", "node", "javascript"),
        ("/usr/bin/env -Snode", "node", "javascript"),
        ("/usr/bin/env --split-string=ruby -w", "ruby", "ruby"),
        ("/usr/bin/env -i PATH=/usr/bin ruby3.2", "ruby", "ruby"),
        ("/usr/bin/env -u PYTHONPATH python3", "python", "python"),
        ("/usr/bin/env /opt/tools/bin/python3", "python", "python"),
        (" /usr/bin/env bash", "bash", "shell"),  # "#! /usr/bin/env bash"
        ("/usr/bin/make -f", "make", "other"),
        ("/usr/bin/env", "", "other"),
        ("", "", "other"),
    ],
)
def test_the_language_of_a_file_without_extension_comes_from_its_shebang(
    shebang: str, interpreter: str, language: str
) -> None:
    assert interpreter_of(shebang) == interpreter
    assert language_of("tool", shebang) == language


def test_an_extensionless_python_script_is_described_from_its_docstring_and_argparse() -> None:
    found = analyse(
        "rotate",
        b'#!/usr/bin/env python3\n"""Rotate logs."""\nimport argparse\n'
        b'p = argparse.ArgumentParser()\np.add_argument("--keep", type=int)\n',
    )
    assert (found.language, found.shebang) == ("python", "/usr/bin/env python3")
    assert found.description == "Rotate logs."
    assert [p["name"] for p in found.parameters] == ["keep"]
    assert found.parse_error == ""


# -- scans index executable shebang scripts -------------------------------------------------


@pytest.fixture
def bin_folder(roots: Path) -> Path:
    base = roots / "team"
    write(base / "rotate", '#!/usr/bin/env python3\n"""Rotate the logs."""\nprint("rotated")\n')
    write(base / "report", "#!/usr/bin/perl -w\n# Mail the report.\nprint 1;\n")
    write(base / "deploy", "#!/bin/bash\n# Push a release.\necho push\n")
    write(base / "serve", "#!/usr/bin/env -S node --no-warnings\n// Serve files.\n")
    write(base / "tools" / "tidy", "#!/usr/bin/env ruby3.2\n# Tidy up.\nputs 1\n")
    write(base / "hello.py", "print('hi')\n", mode=0o644)
    # Left out: not executable; no shebang; binary; no known interpreter; an extension
    # that no glob includes.
    write(base / "notes", "#!/bin/sh\necho not executable\n", mode=0o644)
    write(base / "plain", "echo no shebang\n")
    write(base / "program", b"\x7fELF\x02\x01\x01\x00\x00\x00")
    write(base / "build", "#!/usr/bin/make -f\nall:\n")
    write(base / "run.txt", "#!/bin/sh\necho\n")
    return base


def test_a_scan_indexes_executable_scripts_without_extension_by_their_shebang(bin_folder: Path) -> None:
    root = scanned_root(bin_folder)

    found = {s.relpath: s for s in root.scripts.all()}

    assert sorted(found) == ["deploy", "hello.py", "report", "rotate", "serve", "tools/tidy"]
    assert {name: found[name].language for name in found} == {
        "deploy": "shell",
        "hello.py": "python",
        "report": "perl",
        "rotate": "python",
        "serve": "javascript",
        "tools/tidy": "ruby",
    }
    rotate = found["rotate"]
    assert (rotate.extension, rotate.shebang, rotate.description) == (
        "",
        "/usr/bin/env python3",
        "Rotate the logs.",
    )
    assert found["report"].description == "Mail the report."
    assert found["serve"].shebang == "/usr/bin/env -S node --no-warnings"
    assert len(rotate.sha256) == 64 and rotate.line_count == 3


def test_a_rescan_leaves_unchanged_shebang_scripts_alone(bin_folder: Path) -> None:
    root = scanned_root(bin_folder)

    again = scan_now(root)

    assert (again.files_added, again.files_updated, again.files_unchanged) == (0, 0, 6)
    assert again.error_count == 0


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (["*.sh", "*.py"], ["deploy", "hello.py", "rotate"]),
        (["tid*.rb"], ["tools/tidy"]),  # as if it were tidy.rb
        (["*.pl"], ["report"]),
        (["*.lua"], []),
        (["ser*"], ["serve"]),  # the name itself still matches as before
    ],
)
def test_include_globs_decide_by_the_shebangs_language(
    bin_folder: Path, include: list[str], expected: list[str]
) -> None:
    root = root_create(name="team", path=str(bin_folder), include_patterns=include)
    scan_now(root)
    assert sorted(root.scripts.values_list("relpath", flat=True)) == expected


def test_exclude_globs_still_leave_shebang_scripts_out(bin_folder: Path) -> None:
    root = root_create(name="team", path=str(bin_folder), exclude_patterns=["deploy", "tools"])
    scan_now(root)
    assert sorted(root.scripts.values_list("relpath", flat=True)) == ["hello.py", "report", "rotate", "serve"]


def test_an_extensionless_script_swapped_for_a_symlink_is_not_followed(
    bin_folder: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path / "outside" / "secret", '#!/usr/bin/env python3\n"""TOP SECRET."""\n')
    (bin_folder / "rotate").unlink()
    (bin_folder / "rotate").symlink_to(secret)

    root = scanned_root(bin_folder)

    assert not root.scripts.filter(name="rotate").exists()
    assert not root.scripts.filter(description__contains="SECRET").exists()


def test_an_extensionless_script_replaced_between_stat_and_sniff_is_left_out(
    bin_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from library.services import scans

    secret = write(tmp_path / "outside" / "secret", '#!/usr/bin/env python3\n"""TOP SECRET."""\n')
    real_sniff = scans._shebang_script_included

    def swap_then_sniff(candidate: scans.Candidate, mode: int, include: re.Pattern[str]) -> bool:
        if candidate.name == "rotate":
            # After the walk's stat, someone puts a link to a file outside the root there.
            (bin_folder / "rotate").unlink()
            (bin_folder / "rotate").symlink_to(secret)
        return real_sniff(candidate, mode, include)

    monkeypatch.setattr(scans, "_shebang_script_included", swap_then_sniff)

    root = scanned_root(bin_folder)

    assert not root.scripts.filter(name="rotate").exists()
    assert not root.scripts.filter(description__contains="SECRET").exists()


def test_a_symlink_inside_the_root_to_a_shebang_script_is_indexed(bin_folder: Path) -> None:
    (bin_folder / "rotate-now").symlink_to(bin_folder / "rotate")

    root = scanned_root(bin_folder)

    assert root.scripts.get(name="rotate-now").language == "python"


def test_an_extensionless_shebang_script_runs_from_the_library(roots: Path, client_for) -> None:
    bin_folder = roots / "team"
    write(bin_folder / "greet", '#!/usr/bin/env python3\nimport sys\nprint("hello", sys.argv[1])\n')
    write(bin_folder / "count", '#!/bin/sh\necho "count $1"\n')
    scanned_root(bin_folder)
    executor = client_for(Role.EXECUTOR)

    for name, expected in (("greet", "hello world"), ("count", "count world")):
        script = Script.objects.get(name=name)
        response = executor.post(f"/api/library/scripts/{script.pk}/run", {"args": ["world"]}, format="json")
        assert response.status_code == 202, response.content
        run_id = response.json()["id"]
        done = executor.get(f"/api/runs/{run_id}").json()
        assert (done["status"], done["exit_code"]) == ("completed", 0), done
        assert expected in executor.get(f"/api/runs/{run_id}/logs").content.decode()


def test_an_extensionless_python_script_runs_unbuffered(roots: Path) -> None:
    script = write(roots / "team" / "tail-logs", "#!/usr/bin/env python3\nprint('line')\n")

    plan = build_plan(Run(script_path=str(script), args=[], env_vars={}))

    # Without it, a Python script's output reaches the live viewer only when it exits.
    assert plan["env"].get("PYTHONUNBUFFERED") == "1"


# -- parse errors ------------------------------------------------------------------------


def test_a_python_syntax_error_is_recorded_with_its_line() -> None:
    found = analyse("broken.py", b"# Broken on purpose\ndef (:\n")

    assert found.parse_error.startswith("SyntaxError: ")
    assert "(line 2, column 5)" in found.parse_error
    assert found.description == "Broken on purpose"  # still described from its comments


def test_indentation_errors_and_python2_prints_are_parse_errors() -> None:
    assert analyse("a.py", b"if True:\nprint(1)\n").parse_error.startswith("IndentationError: ")
    legacy = analyse("legacy", b'#!/usr/bin/python2\nprint "hi"\n').parse_error
    assert legacy.startswith("SyntaxError: Missing parentheses") and "(line 2, column 1)" in legacy


def test_files_that_parse_or_are_not_python_have_no_parse_error() -> None:
    assert analyse("ok.py", b"x = 1\n").parse_error == ""
    assert analyse("a.sh", b"if then fi ((\n").parse_error == ""
    assert analyse("blob.py", b"\x00\x01def (:").parse_error == ""  # binary: not parsed


def test_a_file_read_only_in_part_is_not_called_broken() -> None:
    cut = b'"""Big."""\nx = (\n'  # what the read cap leaves of a longer file
    assert analyse("big.py", cut).parse_error
    assert analyse("big.py", cut, complete=False).parse_error == ""


def test_a_file_longer_than_the_read_cap_is_not_flagged(roots: Path, settings) -> None:
    settings.LIBRARY_MAX_READ_BYTES = 20
    write(roots / "team" / "big.py", '"""A big script."""\nvalues = [\n    1,\n    2,\n]\n')

    root = scanned_root(roots / "team")

    assert root.scripts.get().parse_error == ""


def test_a_scan_records_the_parse_error_and_clears_it_once_fixed(roots: Path) -> None:
    path = write(roots / "team" / "broken.py", '"""Nightly job."""\ndef run(:\n    pass\n')
    write(roots / "team" / "fine.py", '"""Fine."""\n')
    root = scanned_root(roots / "team")

    broken = root.scripts.get(name="broken.py")
    assert "SyntaxError" in broken.parse_error and "line 2" in broken.parse_error
    assert root.scripts.get(name="fine.py").parse_error == ""

    path.write_text('"""Nightly job."""\ndef run():\n    pass\n')
    scan_now(root)

    broken.refresh_from_db()
    assert broken.parse_error == "" and broken.description == "Nightly job."


def test_the_api_shows_the_parse_error_in_the_list_and_the_record(roots: Path, client_for) -> None:
    write(roots / "team" / "broken.py", "def (:\n")
    write(roots / "team" / "fine.py", "x = 1\n")
    scanned_root(roots / "team")
    reader: APIClient = client_for(Role.READONLY)

    listed = {item["name"]: item for item in reader.get(LIST).json()["results"]}
    broken = Script.objects.get(name="broken.py")
    record = reader.get(f"{LIST}/{broken.pk}").json()

    assert listed["broken.py"]["parse_error"].startswith("SyntaxError: ")
    assert listed["fine.py"]["parse_error"] == ""
    assert record["parse_error"] == broken.parse_error != ""
