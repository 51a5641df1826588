"""Dependency scanning: ``requirements*.txt`` and ``pyproject.toml`` (``[project]
dependencies``) next to the script and in its root, read with ``packaging`` — the scanned
packages are never installed or imported. Pinned versions are matched against OSV
advisories from a local folder (JSON or YAML files, e.g. a checkout of the PyPA advisory
database) and/or an OSV-compatible API (``POST /v1/querybatch``, then ``GET /v1/vulns/ID``).
Unpinned requirements are reported as such."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from prechecks.tools.base import UNPARSABLE, UNPINNED, Finding, Severity, ToolError, ToolFailed, ToolReport

_OSV_LEVELS: dict[str, Severity] = {
    "LOW": "low",
    "MODERATE": "medium",
    "MEDIUM": "medium",
    "HIGH": "high",
    "CRITICAL": "critical",
}


@dataclass(frozen=True)
class Declared:
    """One requirement line: where it is, its name, and its pinned version if any."""

    file: str
    line: int | None
    name: str
    version: str | None
    text: str


def dependency_files(path: Path, root: Path | None) -> list[Path]:
    """``requirements*.txt`` and ``pyproject.toml`` next to the script and in its root."""
    folders = [path.parent]
    if root is not None and root.resolve() != path.parent.resolve():
        folders.append(root)
    found: list[Path] = []
    for folder in folders:
        try:
            names = sorted(p for p in folder.glob("requirements*.txt") if p.is_file())
        except OSError:
            names = []
        found.extend(names)
        if (folder / "pyproject.toml").is_file():
            found.append(folder / "pyproject.toml")
    return found


def _display(file: Path, path: Path, root: Path | None) -> str:
    for base in (root, path.parent):
        if base is None:
            continue
        try:
            return str(file.relative_to(base))
        except ValueError:
            continue
    return file.name


def _pinned(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def _requirements_txt(file: Path, display: str) -> Iterator[Declared | Finding]:
    text = file.read_text(encoding="utf-8", errors="replace")
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        logical.append((start, pending + raw))
        pending = ""
    if pending:
        logical.append((start, pending))
    for number, raw in logical:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-"):
            continue  # options (-r, -c, --index-url...) and editable installs are not pins
        line = re.split(r"\s+--?\w", line, maxsplit=1)[0].strip()  # per-line options (--hash=)
        yield from _one_requirement(line, display, number)


def _one_requirement(line: str, display: str, number: int | None) -> Iterator[Declared | Finding]:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        yield Finding(
            tool="dependencies",
            rule_id=UNPARSABLE,
            severity="low",
            confidence="high",
            file=display,
            line=number,
            message=f"cannot read requirement {line[:120]!r}: not checked against advisories",
            kind="dependency",
            anchor=line,
        )
        return
    version = None if req.url else _pinned(req)
    yield Declared(display, number, canonicalize_name(req.name), version, line)


def _pyproject(file: Path, display: str) -> Iterator[Declared | Finding]:
    text = file.read_text(encoding="utf-8", errors="replace")
    data = tomllib.loads(text)
    deps = data.get("project", {}).get("dependencies", [])
    lines = text.splitlines()
    for dep in deps if isinstance(deps, list) else []:
        number = next((i for i, line in enumerate(lines, 1) if str(dep) in line), None)
        yield from _one_requirement(str(dep), display, number)


def requirements_read(path: Path, root: Path | None) -> tuple[list[Declared], ToolReport]:
    """The requirements found, and findings for unpinned or unreadable ones."""
    reqs: list[Declared] = []
    findings: list[Finding] = []
    errors: list[ToolError] = []
    for file in dependency_files(path, root):
        display = _display(file, path, root)
        try:
            items = list(
                _pyproject(file, display) if file.suffix == ".toml" else _requirements_txt(file, display)
            )
        except (OSError, tomllib.TOMLDecodeError) as exc:
            errors.append(ToolError("dependencies", f"cannot read {display}: {exc}"))
            continue
        for item in items:
            if isinstance(item, Finding):
                findings.append(item)
            elif item.version is None:
                findings.append(
                    Finding(
                        tool="dependencies",
                        rule_id=UNPINNED,
                        severity="low",
                        confidence="high",
                        file=display,
                        line=item.line,
                        message=f"{item.name} is not pinned to one version ({item.text[:120]}): "
                        "not checked against advisories",
                        kind="dependency",
                        anchor=item.name,
                    )
                )
            else:
                reqs.append(item)
    return reqs, ToolReport(findings=tuple(findings), errors=tuple(errors))


def _sort_key(value: str) -> Version:
    return Version("0") if value == "0" else Version(value)


def osv_affects(advisory: dict[str, Any], name: str, version: Version) -> bool:
    """Whether an OSV advisory names this PyPI package at this version: listed in
    ``versions``, or inside an ``ECOSYSTEM`` range (introduced / fixed / last_affected)."""
    if advisory.get("withdrawn"):
        return False
    for affected in advisory.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or canonicalize_name(str(package.get("name", ""))) != name:
            continue
        for listed in affected.get("versions") or []:
            try:
                if Version(str(listed)) == version:
                    return True
            except InvalidVersion:
                continue
        for rng in affected.get("ranges") or []:
            if rng.get("type") != "ECOSYSTEM":
                continue
            events: list[tuple[Version, str]] = []
            for event in rng.get("events") or []:
                for what, value in event.items():
                    try:
                        events.append((_sort_key(str(value)), what))
                    except InvalidVersion:
                        continue
            hit = False
            # Walk the events in version order: an introduction at or below the version
            # opens the range, a fix at or below (or a last affected below) closes it.
            for at, what in sorted(events, key=lambda e: e[0]):
                if what == "introduced" and version >= at:
                    hit = True
                elif (what == "fixed" and version >= at) or (what == "last_affected" and version > at):
                    hit = False
            if hit:
                return True
    return False


def _fixed_versions(advisory: dict[str, Any], name: str) -> list[str]:
    fixed: list[str] = []
    for affected in advisory.get("affected") or []:
        if canonicalize_name(str((affected.get("package") or {}).get("name", ""))) != name:
            continue
        for rng in affected.get("ranges") or []:
            fixed += [str(e["fixed"]) for e in rng.get("events") or [] if "fixed" in e]
    return fixed


def _osv_severity(advisory: dict[str, Any]) -> Severity:
    # GHSA-style records carry a word; a known vulnerability of unknown weight counts as high.
    for holder in [advisory.get("database_specific") or {}] + [
        a.get("ecosystem_specific") or {} for a in advisory.get("affected") or []
    ]:
        word = str(holder.get("severity", "")).upper() if isinstance(holder, dict) else ""
        if word in _OSV_LEVELS:
            return _OSV_LEVELS[word]
    return "high"


def _vuln_finding(req: Declared, advisory: dict[str, Any], source: str) -> Finding:
    vuln_id = str(advisory.get("id", "unknown"))
    summary = str(advisory.get("summary") or advisory.get("details") or "").strip().splitlines()
    fixed = _fixed_versions(advisory, req.name)
    text = f"{req.name} {req.version}: {vuln_id}"
    if summary:
        text += f" — {summary[0][:200]}"
    if fixed:
        text += f" (fixed in {', '.join(sorted(set(fixed)))})"
    return Finding(
        tool=source,
        rule_id=vuln_id,
        severity=_osv_severity(advisory),
        confidence="high",
        file=req.file,
        line=req.line,
        message=text,
        kind="dependency",
        anchor=f"{req.name}=={req.version}",
    )


@dataclass
class AdvisoryIndex:
    """OSV advisories of a folder, by canonical package name. Loaded once per process and
    reloaded when the folder's signature changes (see :func:`advisory_index`)."""

    signature: str
    by_package: dict[str, list[dict[str, Any]]]
    unreadable: int = 0


_INDEX_CACHE: dict[str, tuple[float, AdvisoryIndex]] = {}
# How long a process trusts its loaded advisory folder before looking at it again
# (a walk of a 4,000-file checkout takes tens of milliseconds: not on every launch).
ADVISORY_RECHECK_SECONDS = 60.0


def _advisory_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith((".json", ".yaml", ".yml")):
                yield Path(dirpath, name)


def advisory_signature(folder: Path) -> str:
    """Changes when a file of the folder is added, removed, replaced or rewritten."""
    digest = hashlib.sha256(str(folder).encode())
    for file in sorted(_advisory_files(folder)):
        st = file.stat()
        digest.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def advisory_index(folder: Path, *, now: float | None = None) -> AdvisoryIndex:
    if not folder.is_dir():
        raise ToolFailed(f"the advisory folder {folder} does not exist (SCRIPTOPS_ADVISORY_DIR)")
    now = time.monotonic() if now is None else now
    cached = _INDEX_CACHE.get(str(folder))
    if cached and now - cached[0] < ADVISORY_RECHECK_SECONDS:
        return cached[1]
    signature = advisory_signature(folder)
    if cached and cached[1].signature == signature:
        _INDEX_CACHE[str(folder)] = (now, cached[1])
        return cached[1]
    index = AdvisoryIndex(signature=signature, by_package={})
    for file in _advisory_files(folder):
        try:
            advisory = _load_advisory(file)
        except (OSError, ValueError):
            index.unreadable += 1
            continue
        if not isinstance(advisory, dict):
            continue
        names = {
            canonicalize_name(str((a.get("package") or {}).get("name", "")))
            for a in advisory.get("affected") or []
            if isinstance(a, dict) and (a.get("package") or {}).get("ecosystem") == "PyPI"
        }
        for name in names:
            index.by_package.setdefault(name, []).append(advisory)
    _INDEX_CACHE[str(folder)] = (now, index)
    return index


def _load_advisory(file: Path) -> Any:
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        return json.loads(text)
    import yaml  # the PyPA advisory database is YAML; PyYAML comes with Bandit and drf-spectacular

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _match_folder(reqs: Iterable[Declared], folder: Path) -> ToolReport:
    try:
        index = advisory_index(folder)
    except ToolFailed as exc:
        return ToolReport(errors=(ToolError("advisories", str(exc)),))
    findings: list[Finding] = []
    for req in reqs:
        assert req.version is not None
        try:
            version = Version(req.version)
        except InvalidVersion:
            continue
        reported: set[str] = set()
        for advisory in index.by_package.get(req.name, []):
            ids = {str(advisory.get("id")), *map(str, advisory.get("aliases") or [])}
            if reported & ids or not osv_affects(advisory, req.name, version):
                continue
            reported |= ids  # the same flaw under its PYSEC and GHSA ids: once
            findings.append(_vuln_finding(req, advisory, "osv-folder"))
    return ToolReport(findings=tuple(findings))


def _http_json(url: str, payload: Any | None, *, timeout: float) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # an administrator-configured http(s) URL
        url, data=data, headers={"Content-Type": "application/json"}, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read(10 * 1024 * 1024))


def _match_api(reqs: Sequence[Declared], base_url: str, *, timeout: float) -> ToolReport:
    if not base_url.startswith(("http://", "https://")):
        return ToolReport(errors=(ToolError("osv-api", "SCRIPTOPS_OSV_URL must be an http(s) URL"),))
    base = base_url.rstrip("/")
    deadline = time.monotonic() + timeout
    queries = [{"package": {"name": r.name, "ecosystem": "PyPI"}, "version": r.version} for r in reqs]
    try:
        answer = _http_json(f"{base}/v1/querybatch", {"queries": queries}, timeout=timeout)
        results = answer["results"]
        findings: list[Finding] = []
        details: dict[str, dict[str, Any]] = {}
        for req, result in zip(reqs, results, strict=True):
            for vuln in (result or {}).get("vulns") or []:
                vuln_id = str(vuln["id"])
                if vuln_id not in details:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    details[vuln_id] = _http_json(f"{base}/v1/vulns/{vuln_id}", None, timeout=left)
                findings.append(_vuln_finding(req, details[vuln_id], "osv-api"))
    except (TimeoutError, OSError, ValueError, KeyError, TypeError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}"
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"answered HTTP {exc.code}"
        return ToolReport(errors=(ToolError("osv-api", f"the OSV API at {base} {reason}"),))
    return ToolReport(findings=tuple(findings))


def dependencies_scan(
    path: Path,
    *,
    root: Path | None,
    advisory_dir: Path | None,
    osv_url: str | None,
    timeout: float,
) -> ToolReport:
    """Requirements next to the script (and in its root) against the advisory sources."""
    reqs, report = requirements_read(path, root)
    if not dependency_files(path, root):
        return ToolReport(notes=("no requirements*.txt or pyproject.toml next to the script",))
    if not reqs:
        return report
    if advisory_dir is None and not osv_url:
        return report + ToolReport(
            errors=(
                ToolError(
                    "advisories",
                    "no advisory source configured (set SCRIPTOPS_ADVISORY_DIR or SCRIPTOPS_OSV_URL): "
                    "pinned requirements were not checked",
                ),
            )
        )
    if advisory_dir is not None:
        report += _match_folder(reqs, advisory_dir)
    if osv_url:
        report += _match_api(reqs, osv_url, timeout=timeout)
    return report
