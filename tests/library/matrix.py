"""Role-matrix rows of the library endpoints (merged by tests/scriptops/test_role_matrix.py).

The requests build the rows they need from the matrix's ``Ctx``: ``ctx.script`` is a
Python file inside the allowed root; the root is registered as a folder root and the
file recorded as its script.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from library.models import FolderRoot, Preset, Scan, ScanState, Script, Tag
from prechecks.models import CheckJob

R = (401, 200, 200, 200, 200)  # read
X = (401, 403, 202, 202, 202)  # execute (queued)
W = (401, 403, 403, 200, 200)  # write
W201 = (401, 403, 403, 201, 201)
W202 = (401, 403, 403, 202, 202)
A = (401, 403, 403, 403, 200)  # admin
A201 = (401, 403, 403, 403, 201)
A204 = (401, 403, 403, 403, 204)
X201 = (401, 403, 201, 201, 201)  # execute: create (a preset)

# (URL name, method):            anonymous readonly executor user  admin
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("library-root-list", "get"): R,
    ("library-root-list", "post"): A201,
    ("library-root-detail", "get"): R,
    ("library-root-detail", "patch"): A,
    ("library-root-detail", "delete"): A,
    ("library-root-scan", "post"): W202,
    ("library-root-scan-detail", "get"): R,
    ("library-root-scans", "get"): R,
    ("library-script-list", "get"): R,
    ("library-script-detail", "get"): R,
    ("library-script-detail", "patch"): W,
    ("library-script-status", "put"): W,
    ("library-script-notes", "get"): R,
    ("library-script-history", "get"): R,
    ("library-script-content", "get"): R,
    ("library-script-tag", "post"): W,
    ("library-script-tag", "delete"): W,
    ("library-script-run", "post"): X,
    ("library-script-runs", "get"): R,
    ("library-tag-list", "get"): R,
    ("library-tag-list", "post"): W201,
    ("library-tag-detail", "get"): R,
    ("library-tag-detail", "patch"): W,
    ("library-tag-detail", "delete"): W,
    ("library-duplicates", "get"): R,
    ("library-stats", "get"): R,
    ("library-script-check", "get"): R,
    ("library-script-check", "post"): W202,
    ("library-check", "post"): W202,
    ("library-check-job", "get"): R,
    ("browse", "get"): R,
    ("library-picker", "get"): R,
    ("library-script-presets", "get"): R,
    ("library-script-presets", "post"): X201,
    # A shared preset: everyone sees it and may launch it, admins change it.
    ("library-preset", "get"): R,
    ("library-preset", "patch"): A,
    ("library-preset", "delete"): A204,
    ("library-preset-run", "post"): X,
}


def _root(ctx: Any) -> FolderRoot:
    folder = os.path.realpath(Path(ctx.script).parent)
    root, _ = FolderRoot.objects.get_or_create(path=folder, defaults={"name": "matrix"})
    return root


def _script(ctx: Any) -> Script:
    path = Path(ctx.script)
    script, _ = Script.objects.get_or_create(
        root=_root(ctx),
        path=str(path),
        defaults={"relpath": path.name, "name": path.name, "language": "python", "extension": ".py"},
    )
    return script


def _tag(ctx: Any) -> Tag:
    tag, _ = Tag.objects.get_or_create(name="matrix")
    return tag


def _scan(ctx: Any) -> Scan:
    root = _root(ctx)
    return root.scans.filter(state=ScanState.COMPLETED).first() or Scan.objects.create(
        root=root, state=ScanState.COMPLETED
    )


def _new_folder(ctx: Any) -> str:
    folder = Path(ctx.script).parent / "matrix-new"
    folder.mkdir(exist_ok=True)
    return str(folder)


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return {"data": data, "format": "json"}


REQUESTS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "library-root-list": lambda c: (
        "/api/library/folder-roots",
        _json({"name": "matrix-new", "path": _new_folder(c)}),
    ),
    "library-root-detail": lambda c: (f"/api/library/folder-roots/{_root(c).pk}", _json({"name": "renamed"})),
    "library-root-scan": lambda c: (f"/api/library/folder-roots/{_root(c).pk}/scan", {}),
    "library-root-scan-detail": lambda c: (
        f"/api/library/folder-roots/{_root(c).pk}/scan/{_scan(c).pk}",
        {},
    ),
    "library-root-scans": lambda c: (f"/api/library/folder-roots/{_root(c).pk}/scans", {}),
    "library-script-list": lambda c: ("/api/library/scripts", {"data": {"search": "ok"}}),
    "library-script-detail": lambda c: (f"/api/library/scripts/{_script(c).pk}", _json({"owner": "matrix"})),
    "library-script-status": lambda c: (
        f"/api/library/scripts/{_script(c).pk}/status",
        _json({"status": "draft"}),
    ),
    "library-script-notes": lambda c: (f"/api/library/scripts/{_script(c).pk}/notes", {}),
    "library-script-history": lambda c: (f"/api/library/scripts/{_script(c).pk}/history", {}),
    "library-script-content": lambda c: (f"/api/library/scripts/{_script(c).pk}/content", {}),
    "library-script-tag": lambda c: (f"/api/library/scripts/{_script(c).pk}/tags/{_tag(c).pk}", {}),
    "library-script-run": lambda c: (f"/api/library/scripts/{_script(c).pk}/run", _json({"args": ["x"]})),
    "library-script-runs": lambda c: (f"/api/library/scripts/{_script(c).pk}/runs", {}),
    "library-tag-list": lambda c: ("/api/library/tags", _json({"name": "matrix-new", "color": "#123456"})),
    "library-tag-detail": lambda c: (f"/api/library/tags/{_tag(c).pk}", _json({"color": "#654321"})),
    "library-duplicates": lambda c: ("/api/library/duplicates", {"data": {"kind": "all"}}),
    "library-stats": lambda c: ("/api/library/stats", {}),
    "library-script-check": lambda c: (
        f"/api/library/scripts/{_script(c).pk}/check",
        _json({"kinds": ["secret"]}),
    ),
    "library-check": lambda c: ("/api/library/check", _json({"path": str(c.script), "kinds": ["secret"]})),
    "library-check-job": lambda c: (f"/api/library/checks/{_check_job(c).pk}", {}),
    "browse": lambda c: ("/api/browse", {"data": {"path": str(Path(c.script).parent)}}),
    "library-picker": lambda c: ("/api/library/picker", {"data": {"q": "ok"}}),
    "library-script-presets": lambda c: (
        f"/api/library/scripts/{_script(c).pk}/presets",
        _json({"name": "mine", "options": {"timeout": 30}}),
    ),
    "library-preset": lambda c: (f"/api/library/presets/{_preset(c).pk}", _json({"name": "renamed"})),
    "library-preset-run": lambda c: (f"/api/library/presets/{_preset(c).pk}/run", _json({})),
}


def _preset(c: Any) -> Preset:
    preset, _ = Preset.objects.get_or_create(
        script=_script(c), name="matrix", owner=None, defaults={"options": {}}
    )
    return preset


def _check_job(c: Any) -> CheckJob:
    job, _ = CheckJob.objects.get_or_create(kinds="secret", defaults={"state": "done"})
    return job
