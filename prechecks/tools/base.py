"""What every check shares: the finding and error types, running a tool in a child
process with a time limit, and telling a script's kind."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["code", "secret", "dependency"]
Severity = Literal["low", "medium", "high", "critical"]
KINDS: frozenset[str] = frozenset({"code", "secret", "dependency"})
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
# Dependency findings that are not known vulnerabilities (the policy treats them apart).
UNPINNED = "unpinned"
UNPARSABLE = "unparsable"

# Bumped whenever this package's reading of a tool's output changes: cached results made
# by an older reading are then not reused.
CHECKS_VERSION = "1"

_PYTHON_SHEBANG = re.compile(rb"#!.*?[/\s](?:python|pypy)[\d.]*(?:\s|$)")
_SHELL_SHEBANG = re.compile(rb"#!.*?[/\s](?:ba|da|k|)sh(?:\s|$)")
_SHELL_SUFFIXES = {".sh", ".bash", ".ksh", ".dash"}


@dataclass(frozen=True)
class Finding:
    """One problem found. ``message`` never holds a secret. ``anchor`` (not shown) is what
    identifies the finding across edits that move it — the source line, the secret's hash,
    the advisory — and only ever leaves this module inside a keyed hash
    (:meth:`fingerprint`)."""

    tool: str
    rule_id: str
    severity: Severity
    confidence: str
    file: str
    line: int | None
    message: str
    kind: Kind
    anchor: str = field(default="", repr=False, compare=False)

    def fingerprint(self, key: bytes) -> str:
        """A stable id for accepting this finding as a risk: the same problem in the same
        file keeps it when lines move. Keyed (HMAC) because the anchor of a secret is
        derived from the secret, and a plain hash of a short one could be brute-forced."""
        text = "\0".join((self.kind, self.tool, self.rule_id, self.file, self.anchor))
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ToolError:
    """A tool that gave no answer: the check is not clean, whatever the other tools said."""

    tool: str
    message: str


@dataclass(frozen=True)
class ToolReport:
    findings: tuple[Finding, ...] = ()
    errors: tuple[ToolError, ...] = ()
    # Tools that had nothing to look at (no code analyser for this file type, no
    # requirements file): said so, neither a finding nor an error.
    notes: tuple[str, ...] = ()

    def __add__(self, other: ToolReport) -> ToolReport:
        return ToolReport(
            self.findings + other.findings, self.errors + other.errors, self.notes + other.notes
        )


class ToolFailed(Exception):
    pass


def run_tool(cmd: Sequence[str], *, timeout: float, tool: str, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``cmd`` (never a shell string) and return (exit code, stdout). The child gets its
    own session so a time-out kills it and anything it started."""
    try:
        proc = subprocess.Popen(  # a fixed argv of a known tool, never a shell string
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as exc:
        raise ToolFailed(f"{tool} could not start: {exc.strerror or exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise ToolFailed(f"{tool} timed out after {timeout:g} s") from None
    if proc.returncode < 0:
        raise ToolFailed(f"{tool} was killed by signal {-proc.returncode}")
    if err.strip() and not out.strip():
        # No answer on stdout: the reason is on stderr (kept short, it may quote the file).
        raise ToolFailed(f"{tool} failed (exit {proc.returncode}): {err.strip().splitlines()[-1][:300]}")
    return proc.returncode, out


def first_line(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.readline(256)
    except OSError:
        return b""


def is_python(path: Path) -> bool:
    return path.suffix.lower() == ".py" or _PYTHON_SHEBANG.match(first_line(path)) is not None


def is_shell(path: Path) -> bool:
    return path.suffix.lower() in _SHELL_SUFFIXES or _SHELL_SHEBANG.match(first_line(path)) is not None


def source_line(lines: Sequence[str], number: int | None) -> str:
    if number is None or not 0 < number <= len(lines):
        return ""
    return lines[number - 1].strip()


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
