"""Folder roots: registered only inside ``SCRIPTOPS_ALLOWED_ROOTS``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from audit.services import record
from core.errors import InvalidInput
from core.models import User
from core.paths import path_check
from library.models import FolderRoot


class LibraryError(InvalidInput):
    """Bad input to a library service: ``field`` names what is wrong."""


def within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def allowed_roots() -> list[Path]:
    return [Path(os.path.realpath(r)) for r in settings.ALLOWED_ROOTS]


def root_path_check(path: str) -> Path:
    """The real path of an existing folder inside an allowed root, or :class:`LibraryError`."""
    if not isinstance(path, str) or not path.strip():
        raise LibraryError("path", "A folder path is required.")
    path_check(path, field="path", error=LibraryError)  # NUL, overlong path or name: 400
    if not os.path.isabs(path):
        raise LibraryError("path", f"{path!r} is not an absolute path.")
    real = Path(os.path.realpath(path))
    if not any(within(real, root) for root in allowed_roots()):
        listed = os.pathsep.join(str(r) for r in settings.ALLOWED_ROOTS)
        raise LibraryError("path", f"{path} is outside the allowed roots ({listed}).")
    if not real.is_dir():
        raise LibraryError("path", f"{path} is not an existing folder.")
    return real


def _patterns(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise LibraryError(field, 'Expected a list of non-empty glob patterns, e.g. ["*.py"].')
    if len(value) > 200:
        raise LibraryError(field, "At most 200 patterns.")
    return [p.strip() for p in value]


def root_create(
    *,
    name: str,
    path: str,
    user: User | None = None,
    include_patterns: list[str] | None = None,
    exclude_patterns: list[str] | None = None,
    recursive: bool = True,
) -> FolderRoot:
    real = root_path_check(path)
    if FolderRoot.objects.filter(path=str(real)).exists():
        raise LibraryError("path", f"{real} is already registered as a folder root.")
    if FolderRoot.objects.filter(name=name).exists():
        raise LibraryError("name", f"A folder root named {name!r} already exists.")
    fields: dict[str, Any] = {"name": name, "path": str(real), "recursive": recursive}
    if include_patterns is not None:
        fields["include_patterns"] = _patterns(include_patterns, "include_patterns")
    if exclude_patterns is not None:
        fields["exclude_patterns"] = _patterns(exclude_patterns, "exclude_patterns")
    root = FolderRoot.objects.create(
        created_by=user if getattr(user, "is_authenticated", False) else None, **fields
    )
    record(
        action="library_root.create",
        object_type="library_root",
        object_id=root.pk,
        summary=f"Folder root {root.name!r} registered: {root.path}",
        data=fields,
        actor=user if getattr(user, "is_authenticated", False) else None,
    )
    return root


def root_update(*, root: FolderRoot, **changes: Any) -> FolderRoot:
    """Rename a root or change its patterns / recursive flag (the path never changes)."""
    if "name" in changes and FolderRoot.objects.filter(name=changes["name"]).exclude(pk=root.pk).exists():
        raise LibraryError("name", f"A folder root named {changes['name']!r} already exists.")
    for field in ("include_patterns", "exclude_patterns"):
        if field in changes:
            changes[field] = _patterns(changes[field], field)
    for field, value in changes.items():
        setattr(root, field, value)
    root.save(update_fields=list(changes))
    record(
        action="library_root.update",
        object_type="library_root",
        object_id=root.pk,
        summary=f"Folder root {root.name!r} changed: {', '.join(sorted(changes)) or 'nothing'}",
        data={"changes": changes},
    )
    return root


@transaction.atomic
def root_delete(*, root: FolderRoot) -> int:
    """Remove a root and its scripts from the library (nothing on disk is touched)."""
    count = root.scripts.count()
    record(
        action="library_root.delete",
        object_type="library_root",
        object_id=root.pk,
        summary=f"Folder root {root.name!r} removed with its {count} scripts",
        data={"name": root.name, "path": root.path, "scripts": count},
    )
    root.delete()
    return count
