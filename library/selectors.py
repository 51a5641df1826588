"""Reads of the library: duplicates, statistics, file content, scan progress for the feed."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from core.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, TooLarge, Unsupported
from core.paths import path_check
from library.analysis import is_binary
from library.models import SCAN_ACTIVE, FolderRoot, Scan, Script, Tag
from library.services.roots import within
from prechecks.models import CheckFinding, CheckStatus, LatestCheck
from prechecks.selectors import NOT_CHECKED

DUPLICATE_KINDS = ("name", "content")
DUPLICATE_MEMBER_FIELDS = (
    "id",
    "root_id",
    "path",
    "relpath",
    "name",
    "size",
    "line_count",
    "sha256",
    "status",
)


class BinaryContent(Unsupported):
    default_code = "binary_content"


class ContentGone(Gone):
    default_code = "file_gone"


def _group_key(kind: str) -> tuple[str, ...]:
    return ("name", "size", "line_count") if kind == "name" else ("sha256",)


def duplicate_groups(*, kind: str = "name", scripts: Any = None, limit: int = 500) -> list[dict[str, Any]]:
    """Groups of two or more scripts that look like copies, largest groups first.

    ``name``: same name, size and line count (seed 001's rule); ``content``: same SHA-256.
    """
    qs = Script.objects.all() if scripts is None else scripts
    keys = _group_key(kind)
    if kind == "content":
        qs = qs.exclude(sha256="")
    groups = list(
        qs.values(*keys).annotate(count=Count("id")).filter(count__gt=1).order_by("-count", *keys)[:limit]
    )
    if not groups:
        return []
    cond = Q()
    for group in groups:
        cond |= Q(**{k: group[k] for k in keys})
    members: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in qs.filter(cond).order_by("path").values(*DUPLICATE_MEMBER_FIELDS):
        members.setdefault(tuple(row[k] for k in keys), []).append(row)
    return [
        {
            "kind": kind,
            "key": {k: g[k] for k in keys},
            "count": g["count"],
            "scripts": members.get(tuple(g[k] for k in keys), []),
        }
        for g in groups
    ]


def duplicate_counts(scripts: Any = None) -> dict[str, dict[str, int]]:
    qs = Script.objects.all() if scripts is None else scripts
    out: dict[str, dict[str, int]] = {}
    for kind in DUPLICATE_KINDS:
        keys = _group_key(kind)
        base = qs.exclude(sha256="") if kind == "content" else qs
        rows = (
            base.values(*keys).annotate(count=Count("id")).filter(count__gt=1).values_list("count", flat=True)
        )
        counts = list(rows)
        out[kind] = {"groups": len(counts), "scripts": sum(counts)}
    return out


def library_stats() -> dict[str, Any]:
    """Counts by language, status, root and tag; totals; duplicate counts."""
    scripts = Script.objects.all()
    totals = scripts.aggregate(scripts=Count("id"), lines=Sum("line_count"), bytes=Sum("size"))
    roots = {r.pk: r.name for r in FolderRoot.objects.all()}
    by_root = [
        {"root_id": row["root_id"], "name": roots.get(row["root_id"], ""), "count": row["count"]}
        for row in scripts.values("root_id").annotate(count=Count("id")).order_by("-count")
    ]
    by_tag = [
        {"tag_id": t.pk, "name": t.name, "color": t.color, "count": t.count}
        for t in Tag.objects.annotate(count=Count("scripts")).order_by("-count", "name")
    ]
    return {
        "total_scripts": totals["scripts"] or 0,
        "total_lines": totals["lines"] or 0,
        "total_bytes": totals["bytes"] or 0,
        "missing": scripts.filter(missing_since__isnull=False).count(),
        "roots": len(roots),
        "tags": len(by_tag),
        "by_language": _counts(scripts, "language"),
        "by_status": _counts(scripts, "status"),
        "by_root": by_root,
        "by_tag": by_tag,
        "duplicates": duplicate_counts(scripts),
    }


def _counts(qs: Any, field: str) -> dict[str, int]:
    return {
        row[field]: row["count"] for row in qs.values(field).annotate(count=Count("id")).order_by("-count")
    }


def script_content(script: Script) -> str:
    """The file's UTF-8 text, read fresh from disk and only if still inside its root.

    413 past ``SCRIPTOPS_LIBRARY_CONTENT_MAX_BYTES``, 415 for binary files, 410 when the
    file is gone, 409 when it now resolves outside its root.
    """
    real = Path(os.path.realpath(script.path))
    if not within(real, Path(os.path.realpath(script.root.path))):
        raise Conflict(f"{script.relpath} now resolves outside its folder root; it is not served.")
    cap = settings.LIBRARY_CONTENT_MAX_BYTES
    try:
        with open(real, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > cap:
                raise TooLarge(f"{script.relpath} is {size} bytes; the content view serves at most {cap}.")
            data = fh.read(cap + 1)
    except FileNotFoundError as exc:
        raise ContentGone(f"{script.relpath} is not on disk any more.") from exc
    except IsADirectoryError as exc:
        raise ContentGone(f"{script.relpath} is not a file any more.") from exc
    except PermissionError as exc:
        raise Forbidden(f"ScriptOps may not read {script.relpath}: {exc.strerror}.") from exc
    if len(data) > cap:
        raise TooLarge(f"{script.relpath} grew past {cap} bytes; the content view serves at most {cap}.")
    if is_binary(data):
        raise BinaryContent(f"{script.relpath} is a binary file, not UTF-8 text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BinaryContent(f"{script.relpath} is not valid UTF-8 text.") from exc


def highlight(script: Script, text: str) -> dict[str, str]:
    """Server-side syntax highlighting (Pygments): ``{"html", "css", "lexer"}``."""
    from pygments import highlight as pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename, guess_lexer
    from pygments.util import ClassNotFound

    aliases = {"shell": "bash", "batch": "batch", "other": "text"}
    try:
        lexer = get_lexer_for_filename(script.name, text)
    except ClassNotFound:
        try:
            lexer = get_lexer_by_name(aliases.get(script.language, script.language))
        except ClassNotFound:
            lexer = guess_lexer(text) if text.strip() else get_lexer_by_name("text")
    formatter = HtmlFormatter(cssclass="highlight", linenos="table", lineanchors="L", anchorlinenos=True)
    return {
        "html": pyg_highlight(text, lexer, formatter),
        "css": formatter.get_style_defs(".highlight"),
        "lexer": lexer.name,
    }


SCAN_FEED_FIELDS = (
    "id",
    "root_id",
    "state",
    "phase",
    "files_total",
    "files_processed",
    "files_seen",
    "files_added",
    "files_updated",
    "files_unchanged",
    "files_missing",
    "files_removed",
    "files_skipped",
    "error_count",
    "started_at",
    "finished_at",
    "message",
)


def scan_feed_rows(*, recent: timedelta = timedelta(seconds=30)) -> list[dict[str, Any]]:
    """Active scans and those that ended a moment ago: what the live feed reports."""
    since = timezone.now() - recent
    rows = Scan.objects.filter(Q(state__in=SCAN_ACTIVE) | Q(updated_at__gte=since)).values(*SCAN_FEED_FIELDS)
    out = []
    for row in rows:
        total, started, finished = row["files_total"], row["started_at"], row["finished_at"]
        row["progress"] = round(100 * row["files_processed"] / total, 1) if total else None
        if row["state"] == "completed":
            row["progress"] = 100.0
        row["duration"] = round((finished - started).total_seconds(), 3) if started and finished else None
        out.append(dict(row))
    return out


# -- browse (GET /api/browse, seed 003) ------------------------------------------------
# A folder of 100,000 files must not become a 10 MB answer: folders come first, so
# every subfolder stays reachable; ``total`` and ``truncated`` say what was left out.
MAX_ITEMS = 2000


def _inside_roots(real: Path, roots: list[Path]) -> bool:
    return any(within(real, root) for root in roots)


def _browse_item(
    path: Path, info: os.stat_result, *, is_dir: bool, name: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": name or path.name,
        "path": str(path),
        "type": "folder" if is_dir else "file",
        "mtime": info.st_mtime,
    }
    if not is_dir:
        item["size"] = info.st_size
    return item


def _browse_sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (i["type"] != "folder", i["name"].lower(), i["name"]))


def browse_roots(roots: list[Path]) -> dict[str, Any]:
    items = []
    for root in roots:
        try:
            info = root.stat()
        except OSError:
            continue  # a configured root that does not exist (yet): nothing to browse
        items.append(_browse_item(root, info, is_dir=True, name=str(root)))
    return {"success": True, "path": None, "parent": None, "items": items}


def browse_folder(raw: str, roots: list[Path]) -> dict[str, Any]:
    """The entries of folder ``raw``: 400 if the path is malformed, 403 outside the roots,
    404 when it does not exist."""
    # A NUL byte, an overlong path or name: 400 before the file system is asked (it
    # would raise, not answer).
    path_check(raw, field="path")
    if not os.path.isabs(raw):
        raise InvalidInput("path", f"{raw!r} is not an absolute path.")
    real = Path(os.path.realpath(raw))
    if not _inside_roots(real, roots):
        raise Forbidden(f"{raw} is outside the allowed roots.")
    if not real.exists():
        raise NotFound(f"{raw} does not exist.")
    if not real.is_dir():
        raise InvalidInput("path", f"{raw} is not a folder.")
    try:
        entries = list(os.scandir(real))
    except PermissionError as exc:
        raise Forbidden(f"ScriptOps may not list {raw}: {exc.strerror}.") from exc
    items = []
    for entry in entries:
        target = Path(os.path.realpath(entry.path))
        if not _inside_roots(target, roots):
            continue  # a symlink leading out of the roots: not shown, not followed
        try:
            info = os.stat(entry.path)
        except OSError:
            continue  # broken symlink, or gone since the listing
        if os.path.isdir(target):
            items.append(_browse_item(real / entry.name, info, is_dir=True))
        elif os.path.isfile(target):
            items.append(_browse_item(real / entry.name, info, is_dir=False))
    parent = None if real in roots else str(real.parent)
    ordered = _browse_sorted(items)
    return {
        "success": True,
        "path": str(real),
        "parent": parent,
        "items": ordered[:MAX_ITEMS],
        "total": len(ordered),
        "truncated": len(ordered) > MAX_ITEMS,
    }


# -- pre-run check badges (issue 13) ---------------------------------------------------------

#: The values of the scripts list's ``?check=`` filter (documented in the README).
CHECK_FILTERS = ("clean", "findings", "secret", "high", "error", "not_checked")
_SEVERITIES_DESC = ("critical", "high", "medium", "low")


def _badge(row: dict[str, Any]) -> str:
    """The label of one latest check, as ``prechecks.selectors.check_badges`` makes it."""
    if row["secrets"]:
        return "secret found"
    if row["result__status"] == CheckStatus.ERROR:
        tools = ", ".join(sorted({str(e.get("tool", "")) for e in row["result__errors"] or [] if e}))
        return f"error: {tools}" if tools else "error"
    for severity in _SEVERITIES_DESC:
        if row[severity]:
            return f"{row[severity]} {severity}"
    return "clean"


def script_check_badges(*, paths: list[str]) -> dict[str, str]:
    """The check badge of each script path of a page ("2 high", "secret found", "clean",
    "error: bandit", "not checked"), in one query whatever the page's size: the latest
    check of each path with its findings counted by kind and severity in the same SELECT."""
    counted = {
        severity: Count("result__findings", filter=Q(result__findings__severity=severity))
        for severity in _SEVERITIES_DESC
    }
    rows = (
        LatestCheck.objects.filter(script_path__in=paths)
        .values("script_path", "result__status", "result__errors")
        .annotate(secrets=Count("result__findings", filter=Q(result__findings__kind="secret")), **counted)
    )
    found = {row["script_path"]: _badge(row) for row in rows}
    return {path: found.get(path, NOT_CHECKED) for path in paths}


def scripts_by_check(scripts: Any, value: str) -> Any:
    """Scripts (a queryset) whose latest check matches a ``?check=`` value (:data:`CHECK_FILTERS`)."""
    latest = LatestCheck.objects.filter(script_path=OuterRef("path"))
    findings = CheckFinding.objects.filter(result_id=OuterRef("result_id"))
    if value == "not_checked":
        return scripts.exclude(Exists(latest))
    if value == "clean":
        return scripts.filter(Exists(latest.filter(result__status=CheckStatus.CLEAN)))
    if value == "error":
        return scripts.filter(Exists(latest.filter(result__status=CheckStatus.ERROR)))
    if value == "findings":
        return scripts.filter(Exists(latest.filter(Exists(findings))))
    if value == "secret":
        return scripts.filter(Exists(latest.filter(Exists(findings.filter(kind="secret")))))
    if value == "high":
        severe = findings.filter(severity__in=("high", "critical"))
        return scripts.filter(Exists(latest.filter(Exists(severe))))
    raise InvalidInput("check", f"Unknown check filter {value!r}; one of: {', '.join(CHECK_FILTERS)}.")
