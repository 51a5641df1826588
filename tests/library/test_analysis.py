"""What a scan reads from a file: language, description, argparse parameters, binary sniffing."""

from __future__ import annotations

import hashlib

import pytest

from library.analysis import analyse, is_binary, language_of

ARGPARSE_SCRIPT = b'''#!/usr/bin/env python3
"""Rotate the logs of a service.

Keeps the newest N files.
"""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("service", help="which service")
parser.add_argument("--keep", "-k", type=int, default=7, help="files to keep")
parser.add_argument("--dry-run", action="store_true")
parser.add_argument("--level", choices=["info", "debug"], default="info")
args = parser.parse_args()
raise SystemExit("never imported, never run")
'''


@pytest.mark.parametrize(
    ("name", "head", "language"),
    [
        ("a.py", b"print(1)\n", "python"),
        ("a.sh", b"echo hi\n", "shell"),
        ("deploy", b"#!/usr/bin/env bash\necho\n", "shell"),
        ("tool", b"#!/usr/bin/python3.11 -u\n", "python"),
        ("a.js", b"console.log(1)\n", "javascript"),
        ("job", b"#!/usr/bin/env node\n", "javascript"),
        ("a.rb", b"puts 1\n", "ruby"),
        ("a.pl", b"print 1;\n", "perl"),
        ("a.ps1", b"Write-Host hi\n", "powershell"),
        ("q.sql", b"select 1;\n", "sql"),
        ("notes.txt", b"hello\n", "other"),
        ("weird.txt", b"#!/bin/sh\necho\n", "shell"),  # the shebang decides what runs it
    ],
)
def test_language_by_extension_and_shebang(name: str, head: bytes, language: str) -> None:
    assert analyse(name, head).language == language


def test_argparse_parameters_are_read_without_running_the_script() -> None:
    found = analyse("rotate.py", ARGPARSE_SCRIPT)

    assert found.description == "Rotate the logs of a service.\n\nKeeps the newest N files."
    by_name = {p["name"]: p for p in found.parameters}
    assert list(by_name) == ["service", "keep", "dry_run", "level"]
    assert by_name["service"]["positional"] is True
    assert by_name["service"]["required"] is True
    assert (by_name["keep"]["type"], by_name["keep"]["default"]) == ("int", 7)
    assert by_name["keep"]["flags"] == ["--keep", "-k"]
    assert by_name["dry_run"]["type"] == "flag"
    assert by_name["level"]["choices"] == ["info", "debug"]
    assert found.sha256 == hashlib.sha256(ARGPARSE_SCRIPT).hexdigest()
    assert found.line_count == ARGPARSE_SCRIPT.count(b"\n")


def test_description_from_a_leading_comment_block() -> None:
    body = b"#!/bin/bash\n# Backs up the database.\n# Runs nightly.\n\nset -e\n# not this\n"
    assert analyse("backup.sh", body).description == "Backs up the database.\nRuns nightly."
    assert analyse("q.sql", b"-- Monthly totals\nselect 1;\n").description == "Monthly totals"


def test_a_python_file_that_does_not_parse_still_gets_a_record() -> None:
    found = analyse("broken.py", b"# Broken on purpose\ndef (:\n")
    assert found.language == "python"
    assert found.parameters == []
    assert found.description == "Broken on purpose"


def test_binary_files_are_recognised() -> None:
    assert is_binary(b"\x7fELF\x00\x01\x02")
    assert not is_binary("héllo wörld\n".encode())
    found = analyse("tool.py", b"\x00\x01binary")
    assert found.is_binary and found.description == "" and found.parameters == []


def test_language_of_env_with_flags() -> None:
    assert language_of("x", "/usr/bin/env -S ruby -w") == "ruby"
    assert language_of("x", "") == "other"
