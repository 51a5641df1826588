"""Code analysis: Bandit for Python, ShellCheck for shell scripts. In-file suppressions
(``# nosec``) are ignored: an exemption is an admin's accepted risk, recorded with who and
why, not a comment the script's author adds."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from prechecks.tools.base import (
    Finding,
    Severity,
    ToolError,
    ToolFailed,
    ToolReport,
    first_line,
    is_python,
    is_shell,
    read_lines,
    run_tool,
    source_line,
)

# Bandit rules whose message quotes the suspected password literally: masked.
_QUOTING_RULES = {"B105", "B106", "B107"}
_QUOTED = re.compile(r"""(['"]).*?\1""")
_SHELLCHECK_LEVELS: dict[str, Severity] = {
    "error": "high",
    "warning": "medium",
    "info": "low",
    "style": "low",
}
_BANDIT_LEVELS: dict[str, Severity] = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "UNDEFINED": "low"}


def code_analyse(path: Path, *, timeout: float, display: str | None = None) -> ToolReport:
    """Bandit for Python, ShellCheck for shell scripts; other kinds get a note."""
    display = display or path.name
    if is_python(path):
        return _bandit(path, timeout=timeout, display=display)
    if is_shell(path):
        return _shellcheck(path, timeout=timeout, display=display)
    return ToolReport(notes=(f"no code analyser for {path.suffix or 'this kind of'} file",))


def _bandit(path: Path, *, timeout: float, display: str) -> ToolReport:
    # -I: isolated mode, so neither the environment nor the script's folder can put
    # modules in front of Bandit's own.
    cmd = [sys.executable, "-I", "-m", "bandit", "-f", "json", "-q", "--ignore-nosec", "-n", "1", str(path)]
    try:
        _, out = run_tool(cmd, timeout=timeout, tool="bandit")
        data = json.loads(out)
        results = data["results"]
        errors = data.get("errors") or []
    except ToolFailed as exc:
        return ToolReport(errors=(ToolError("bandit", str(exc)),))
    except (ValueError, KeyError, TypeError):
        return ToolReport(errors=(ToolError("bandit", "bandit gave no readable JSON report"),))
    if errors:
        reasons = "; ".join(str(e.get("reason", "error")) for e in errors if isinstance(e, dict))
        return ToolReport(errors=(ToolError("bandit", f"bandit could not analyse the file: {reasons}"),))
    lines = read_lines(path)
    findings = []
    for item in results:
        rule = str(item.get("test_id", ""))
        message = str(item.get("issue_text", ""))
        if rule in _QUOTING_RULES:
            message = _QUOTED.sub(r"\1***\1", message)
        line = item.get("line_number")
        findings.append(
            Finding(
                tool="bandit",
                rule_id=rule,
                severity=_BANDIT_LEVELS.get(str(item.get("issue_severity", "")).upper(), "low"),
                confidence=str(item.get("issue_confidence", "")).lower() or "undefined",
                file=display,
                line=line if isinstance(line, int) else None,
                message=message,
                kind="code",
                anchor=source_line(lines, line if isinstance(line, int) else None),
            )
        )
    return ToolReport(findings=tuple(findings))


def shellcheck_path() -> str | None:
    return shutil.which("shellcheck")


def _shellcheck(path: Path, *, timeout: float, display: str) -> ToolReport:
    binary = shellcheck_path()
    if binary is None:
        return ToolReport(
            errors=(
                ToolError(
                    "shellcheck",
                    "shellcheck is not installed (Debian package 'shellcheck'): the shell script "
                    "was not analysed",
                ),
            )
        )
    cmd = [binary, "-f", "json1"]
    if not first_line(path).startswith(b"#!"):
        cmd += ["--shell", "bash"]  # ScriptOps runs a .sh without shebang with bash
    cmd.append(str(path))
    try:
        code, out = run_tool(cmd, timeout=timeout, tool="shellcheck")
        comments = json.loads(out)["comments"]
    except ToolFailed as exc:
        return ToolReport(errors=(ToolError("shellcheck", str(exc)),))
    except (ValueError, KeyError, TypeError):
        return ToolReport(errors=(ToolError("shellcheck", "shellcheck gave no readable JSON report"),))
    if code not in (0, 1):
        return ToolReport(errors=(ToolError("shellcheck", f"shellcheck failed (exit {code})"),))
    lines = read_lines(path)
    findings = []
    for item in comments:
        line = item.get("line")
        line = line if isinstance(line, int) else None
        findings.append(
            Finding(
                tool="shellcheck",
                rule_id=f"SC{item.get('code')}",
                severity=_SHELLCHECK_LEVELS.get(str(item.get("level")), "low"),
                confidence="high",
                file=display,
                line=line,
                message=str(item.get("message", "")),
                kind="code",
                anchor=source_line(lines, line),
            )
        )
    return ToolReport(findings=tuple(findings))
