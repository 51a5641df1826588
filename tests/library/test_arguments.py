"""A launch of a library script is checked against its argparse parameters before it is
queued: argparse's own verdict, never a refusal of what the script might accept."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from library.analysis import analyse
from library.arguments import _loose, arguments_problem
from library.models import Script
from runs.models import Run
from tests.library.helpers import scanned_root, write

PARSER = """\
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("--count", type=int, default=1)
parser.add_argument("--ratio", type=float)
parser.add_argument("--mode", choices=["fast", "safe"], required=True)
parser.add_argument("--tags", nargs="+")
parser.add_argument("--pair", nargs=2, type=int)
parser.add_argument("-v", "--verbose", action="store_true")
args = parser.parse_args()
print(args)
"""


def params_of(tmp_path: Path, source: str = PARSER) -> list[dict[str, Any]]:
    return analyse("tool.py", source.encode()).parameters


def argparse_exit(tmp_path: Path, args: list[str], source: str = PARSER) -> int:
    """What the real script does with these arguments (the reference)."""
    script = tmp_path / "tool.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, timeout=30).returncode


GOOD = [
    ["host1", "--mode", "fast"],
    [
        "host1",
        "--mode",
        "safe",
        "--count",
        "3",
        "--ratio",
        "1.5",
        "--tags",
        "a",
        "b",
        "--pair",
        "1",
        "2",
        "-v",
    ],
    ["--mode=fast", "host1", "--unknown-extra", "x"],  # unknown to the static read: left alone
]
BAD = [
    (["host1", "--mode", "fast", "--count", "1.5"], "count", "invalid int value: '1.5'"),
    (["host1", "--mode", "slow"], "mode", "invalid choice: 'slow'"),
    (["host1"], None, "the following arguments are required: --mode"),
    (["--mode", "fast"], None, "the following arguments are required: target"),
    (["host1", "--mode", "fast", "--ratio", "x"], "ratio", "invalid float value: 'x'"),
    (["host1", "--mode", "fast", "--pair", "1"], "pair", "expected 2 arguments"),
    (["host1", "--mode", "fast", "--tags"], "tags", "expected at least one argument"),
]


@pytest.mark.parametrize("args", GOOD)
def test_arguments_the_script_accepts_pass(tmp_path: Path, args: list[str]) -> None:
    assert arguments_problem(params_of(tmp_path), args) is None
    if "--unknown-extra" not in args:
        assert argparse_exit(tmp_path, args) == 0


@pytest.mark.parametrize(("args", "name", "text"), BAD)
def test_arguments_the_script_refuses_are_named_as_argparse_names_them(
    tmp_path: Path, args: list[str], name: str | None, text: str
) -> None:
    problem = arguments_problem(params_of(tmp_path), args)
    assert problem is not None
    message, named = problem
    assert text in message
    assert named == name
    assert argparse_exit(tmp_path, args) == 2  # the script itself agrees


def test_a_parser_with_sub_commands_is_never_refused_for_what_is_missing(tmp_path: Path) -> None:
    source = """\
import argparse
p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd")
a = sub.add_parser("deploy")
a.add_argument("env")
a.add_argument("--replicas", type=int, required=True)
b = sub.add_parser("status")
p.parse_args()
"""
    script = tmp_path / "tool.py"
    script.write_text(source)
    params = analyse("tool.py", source.encode()).parameters
    assert _loose(str(script))
    assert arguments_problem(params, ["status"], strict=False) is None
    assert argparse_exit(tmp_path, ["status"], source) == 0
    # A value of the wrong type is still wrong whatever the sub-command.
    assert arguments_problem(params, ["deploy", "prod", "--replicas", "two"], strict=False) is not None


# -- through the API --------------------------------------------------------------------------


@pytest.fixture
def tool(roots: Path) -> Script:
    write(roots / "team" / "tool.py", PARSER)
    scanned_root(roots / "team")
    return Script.objects.get(name="tool.py")


@pytest.fixture
def executor(roots: Path, client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.EXECUTOR)


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["library", "api"])
def test_a_launch_with_arguments_the_script_refuses_is_a_400_naming_the_argument(
    executor: APIClient, tool: Script, where: str
) -> None:
    args = ["host1", "--mode", "fast", "--count", "1.5"]
    if where == "library":
        response = executor.post(f"/api/library/scripts/{tool.pk}/run", {"args": args}, format="json")
    else:
        response = executor.post("/api/run", {"script_path": tool.path, "args": args}, format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["details"]["args.count"] == ["argument --count: invalid int value: '1.5'"]
    assert "would refuse these arguments" in body["details"]["args"][0]
    assert not Run.objects.exists()  # nothing was queued


@pytest.mark.django_db
def test_a_dry_run_reports_the_same_problem(executor: APIClient, tool: Script) -> None:
    response = executor.post(
        "/api/run", {"script_path": tool.path, "args": ["host1"], "dry_run": True}, format="json"
    )
    assert response.status_code == 400
    assert "required: --mode" in response.json()["details"]["args"][0]


@pytest.mark.django_db
def test_a_launch_the_script_accepts_is_queued(executor: APIClient, tool: Script) -> None:
    response = executor.post(
        f"/api/library/scripts/{tool.pk}/run",
        {"args": ["host1", "--mode", "safe", "--count", "2"]},
        format="json",
    )
    assert response.status_code == 202, response.content
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_scripts_outside_the_library_are_not_checked(executor: APIClient, roots: Path) -> None:
    loose = write(roots / "team" / "loose.py", PARSER)  # on disk, never scanned
    response = executor.post("/api/run", {"script_path": str(loose), "args": ["--count", "x"]}, format="json")
    assert response.status_code == 202
