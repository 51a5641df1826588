"""Secret scanning with detect-secrets (all its plugins, its default entropy and heuristic
filters, minus the inline ``pragma: allowlist secret``: exemptions are admins' accepted
risks). It runs in a child process (:mod:`prechecks.tools._secrets_scan`) because its
settings are a process-wide singleton and the runner checks several scripts at once; the
child reports the line, the kind and a hash — never the secret."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prechecks.tools.base import Finding, ToolError, ToolFailed, ToolReport, run_tool

_HELPER = Path(__file__).with_name("_secrets_scan.py")
# Detectors matching a fixed format are sure; the keyword and entropy ones guess.
_GUESSING_DETECTORS = {"Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String"}


def secrets_scan(path: Path, *, timeout: float, display: str | None = None) -> ToolReport:
    """detect-secrets on the file; a finding says the line and the kind of secret only."""
    display = display or path.name
    cmd = [sys.executable, "-I", str(_HELPER), str(path)]
    try:
        code, out = run_tool(cmd, timeout=timeout, tool="detect-secrets")
        items = json.loads(out)
        if code != 0 or not isinstance(items, list):
            raise ValueError
    except ToolFailed as exc:
        return ToolReport(errors=(ToolError("detect-secrets", str(exc)),))
    except ValueError:
        return ToolReport(errors=(ToolError("detect-secrets", "detect-secrets gave no readable report"),))
    findings = []
    for item in items:
        kind_of_secret = str(item.get("type", "secret"))
        line = item.get("line")
        findings.append(
            Finding(
                tool="detect-secrets",
                rule_id=kind_of_secret.replace(" ", ""),
                severity="high",
                confidence="medium" if kind_of_secret in _GUESSING_DETECTORS else "high",
                file=display,
                line=line if isinstance(line, int) else None,
                message=f"{kind_of_secret} found (value masked)",
                kind="secret",
                # A hash of the secret: only ever used inside the keyed fingerprint.
                anchor=str(item.get("hash", "")),
            )
        )
    return ToolReport(findings=tuple(findings))
