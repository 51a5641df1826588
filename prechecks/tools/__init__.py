"""The pre-run checks themselves, in plain Python: code analysis, secret scanning and
dependency scanning of one script. No Django, no database: :mod:`prechecks.services`
caches, stores and judges what these functions return.

Each check returns a :class:`ToolReport`: typed :class:`Finding` s, or :class:`ToolError` s
when a tool could not give an answer (missing, crashed, timed out, unparsable output).
An error is never "clean": callers must treat it as "not known to be safe".

The field's standard tools do the analysis, each in a child process with a time limit so a
pathological file cannot hang a worker:

- :mod:`~prechecks.tools.code`: Bandit (``python -m bandit -f json``) for Python,
  ShellCheck (``shellcheck -f json1``) for shell scripts;
- :mod:`~prechecks.tools.secrets`: detect-secrets, reporting the line and the kind of
  secret, never the secret (other tools' messages quoting a literal are masked too);
- :mod:`~prechecks.tools.dependencies`: requirements matched against OSV advisories.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

from prechecks.tools.base import (
    CHECKS_VERSION,
    KINDS,
    SEVERITIES,
    UNPARSABLE,
    UNPINNED,
    Finding,
    Kind,
    Severity,
    ToolError,
    ToolFailed,
    ToolReport,
    run_tool,
)
from prechecks.tools.code import code_analyse, shellcheck_path
from prechecks.tools.dependencies import (
    ADVISORY_RECHECK_SECONDS,
    advisory_index,
    advisory_signature,
    dependencies_scan,
    dependency_files,
    osv_affects,
)
from prechecks.tools.secrets import secrets_scan

__all__ = [
    "ADVISORY_RECHECK_SECONDS",
    "KINDS",
    "SEVERITIES",
    "UNPARSABLE",
    "UNPINNED",
    "Finding",
    "Kind",
    "Severity",
    "ToolError",
    "ToolReport",
    "advisory_index",
    "advisory_signature",
    "code_analyse",
    "dependencies_scan",
    "dependency_files",
    "osv_affects",
    "secrets_scan",
    "tool_versions",
]


_SHELLCHECK_VERSION: dict[tuple[str, int], str] = {}


def tool_versions() -> dict[str, str]:
    """The versions that decide whether a cached result still holds. ShellCheck is asked
    once per binary (its ``--version`` is a process start), the rest read from metadata."""
    versions = {"checks": CHECKS_VERSION}
    for dist in ("bandit", "detect-secrets", "packaging"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    binary = shellcheck_path()
    if binary is None:
        versions["shellcheck"] = "missing"
    else:
        try:
            key = (binary, os.stat(binary).st_mtime_ns)
        except OSError:
            key = (binary, 0)
        if key not in _SHELLCHECK_VERSION:
            try:
                _, out = run_tool([binary, "--version"], timeout=10, tool="shellcheck")
                match = re.search(r"version:\s*(\S+)", out)
                _SHELLCHECK_VERSION[key] = match.group(1) if match else "unknown"
            except ToolFailed:
                _SHELLCHECK_VERSION[key] = "unknown"
        versions["shellcheck"] = _SHELLCHECK_VERSION[key]
    return versions
