"""``GET /api/browse?path=`` (seed 003): list a folder inside the allowed roots.

Everything is resolved (``realpath``) before it is checked, so a symlink cannot lead
out of the roots: asking for such a folder is a 403, and entries of a listed folder
whose real path leaves the roots are left out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import Capability
from library.serializers import BrowseSerializer
from library.services.roots import allowed_roots, within

# A folder of 100,000 files must not become a 10 MB answer: folders come first, so
# every subfolder stays reachable; ``total`` and ``truncated`` say what was left out.
MAX_ITEMS = 2000


def _inside(real: Path, roots: list[Path]) -> bool:
    return any(within(real, root) for root in roots)


def _item(path: Path, info: os.stat_result, *, is_dir: bool, name: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": name or path.name,
        "path": str(path),
        "type": "folder" if is_dir else "file",
        "mtime": info.st_mtime,
    }
    if not is_dir:
        item["size"] = info.st_size
    return item


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (i["type"] != "folder", i["name"].lower(), i["name"]))


def browse_roots(roots: list[Path]) -> dict[str, Any]:
    items = []
    for root in roots:
        try:
            info = root.stat()
        except OSError:
            continue  # a configured root that does not exist (yet): nothing to browse
        items.append(_item(root, info, is_dir=True, name=str(root)))
    return {"success": True, "path": None, "parent": None, "items": items}


def browse_folder(raw: str, roots: list[Path]) -> dict[str, Any]:
    """The entries of folder ``raw``: 400 if the path is malformed, 403 outside the roots,
    404 when it does not exist."""
    if "\x00" in raw:
        raise serializers.ValidationError({"path": ["The path contains a NUL byte."]})
    if not os.path.isabs(raw):
        raise serializers.ValidationError({"path": [f"{raw!r} is not an absolute path."]})
    real = Path(os.path.realpath(raw))
    if not _inside(real, roots):
        raise exceptions.PermissionDenied(f"{raw} is outside the allowed roots.")
    if not real.exists():
        raise exceptions.NotFound(f"{raw} does not exist.")
    if not real.is_dir():
        raise serializers.ValidationError({"path": [f"{raw} is not a folder."]})
    try:
        entries = list(os.scandir(real))
    except PermissionError as exc:
        raise exceptions.PermissionDenied(f"ScriptOps may not list {raw}: {exc.strerror}.") from exc
    items = []
    for entry in entries:
        target = Path(os.path.realpath(entry.path))
        if not _inside(target, roots):
            continue  # a symlink leading out of the roots: not shown, not followed
        try:
            info = os.stat(entry.path)
        except OSError:
            continue  # broken symlink, or gone since the listing
        if os.path.isdir(target):
            items.append(_item(real / entry.name, info, is_dir=True))
        elif os.path.isfile(target):
            items.append(_item(real / entry.name, info, is_dir=False))
    parent = None if real in roots else str(real.parent)
    ordered = _sorted(items)
    return {
        "success": True,
        "path": str(real),
        "parent": parent,
        "items": ordered[:MAX_ITEMS],
        "total": len(ordered),
        "truncated": len(ordered) > MAX_ITEMS,
    }


class BrowseView(APIView):
    """``GET /api/browse``: a folder's files and folders, or the allowed roots."""

    required_capability = Capability.READ

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "path",
                OpenApiTypes.STR,
                description="An absolute folder path inside the allowed roots; omit it for the roots.",
            )
        ],
        responses={
            200: BrowseSerializer,
            400: OpenApiResponse(description="Not an absolute path, or not a folder."),
            403: OpenApiResponse(description="Outside the allowed roots."),
            404: OpenApiResponse(description="No such folder."),
        },
    )
    def get(self, request: Request) -> Response:
        """Folders first, then files, by name. ``parent`` is null at an allowed root."""
        roots = allowed_roots()
        raw = request.query_params.get("path", "")
        if not raw:
            return Response(browse_roots(roots))
        return Response(browse_folder(raw, roots))
