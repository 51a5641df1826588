"""Curating scripts (audited), tags, and launching a library script."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record
from core.errors import Conflict
from core.models import User
from library.models import Script, ScriptChange, ScriptStatus, Tag
from library.services.roots import LibraryError, within
from runs.models import Run
from runs.services import run_enqueue

CURATED_FIELDS = ("status", "owner", "environment", "notes", "max_concurrent")
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@transaction.atomic
def script_update(*, script: Script, user: User | None = None, **changes: Any) -> Script:
    """Change curated fields; what changed is recorded in the audit trail (one entry)."""
    unknown = set(changes) - set(CURATED_FIELDS)
    if unknown:
        raise LibraryError(sorted(unknown)[0], f"{sorted(unknown)[0]} cannot be changed here.")
    if "status" in changes and changes["status"] not in ScriptStatus.values:
        raise LibraryError("status", f"status must be one of {', '.join(ScriptStatus.values)}.")
    diff = {
        name: [getattr(script, name), value]
        for name, value in changes.items()
        if getattr(script, name) != value
    }
    if not diff:
        return script
    for name, (_, value) in diff.items():
        setattr(script, name, value)
    script.updated_at = timezone.now()
    script.save(update_fields=[*diff, "updated_at"])
    ScriptChange.objects.create(script=script, user=user, action="update", changes=diff)
    record(
        action="script.update",
        object_type="script",
        object_id=script.pk,
        summary=f"{script.path}: {', '.join(sorted(diff))} changed",
        data={"path": script.path, "changes": diff},
        actor=_actor(user),
    )
    return script


def _actor(user: User | None) -> User | None:
    return user if getattr(user, "is_authenticated", False) else None


@transaction.atomic
def script_tag_attach(*, script: Script, tag: Tag, user: User | None = None) -> bool:
    """Attach ``tag``; False if it was already attached (nothing recorded then)."""
    if script.tags.filter(pk=tag.pk).exists():
        return False
    script.tags.add(tag)
    ScriptChange.objects.create(script=script, user=user, action="tag_attached", changes={"tag": tag.name})
    record(
        action="script.tag_attach",
        object_type="script",
        object_id=script.pk,
        summary=f"Tag {tag.name!r} attached to {script.path}",
        data={"path": script.path, "tag": tag.name, "tag_id": tag.pk},
        actor=_actor(user),
    )
    return True


@transaction.atomic
def script_tag_detach(*, script: Script, tag: Tag, user: User | None = None) -> bool:
    if not script.tags.filter(pk=tag.pk).exists():
        return False
    script.tags.remove(tag)
    ScriptChange.objects.create(script=script, user=user, action="tag_detached", changes={"tag": tag.name})
    record(
        action="script.tag_detach",
        object_type="script",
        object_id=script.pk,
        summary=f"Tag {tag.name!r} detached from {script.path}",
        data={"path": script.path, "tag": tag.name, "tag_id": tag.pk},
        actor=_actor(user),
    )
    return True


def _tag_fields(name: Any = None, color: Any = None, description: Any = None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise LibraryError("name", "A tag name is required.")
        if len(name.strip()) > 64:
            raise LibraryError("name", "A tag name has at most 64 characters.")
        fields["name"] = name.strip()
    if color is not None:
        if not isinstance(color, str) or not HEX_COLOR.match(color):
            raise LibraryError("color", f"{color!r} is not a colour: use #rrggbb, e.g. #3b82f6.")
        fields["color"] = color.lower()
    if description is not None:
        fields["description"] = str(description)[:500]
    return fields


def tag_create(*, name: str, color: str | None = None, description: str = "") -> Tag:
    fields = _tag_fields(name, color, description)
    if Tag.objects.filter(name__iexact=fields["name"]).exists():
        raise LibraryError("name", f"A tag named {fields['name']!r} already exists (names ignore case).")
    try:
        with transaction.atomic():
            tag = Tag.objects.create(**fields)
            record(
                action="tag.create",
                object_type="tag",
                object_id=tag.pk,
                summary=f"Tag {tag.name!r} created",
                data=fields,
            )
            return tag
    except IntegrityError as exc:  # created concurrently
        raise LibraryError("name", f"A tag named {fields['name']!r} already exists.") from exc


def tag_update(*, tag: Tag, **changes: Any) -> Tag:
    fields = _tag_fields(**changes)
    if "name" in fields and Tag.objects.filter(name__iexact=fields["name"]).exclude(pk=tag.pk).exists():
        raise LibraryError("name", f"A tag named {fields['name']!r} already exists (names ignore case).")
    for name, value in fields.items():
        setattr(tag, name, value)
    tag.save(update_fields=list(fields))
    record(
        action="tag.update",
        object_type="tag",
        object_id=tag.pk,
        summary=f"Tag {tag.name!r} changed: {', '.join(sorted(fields)) or 'nothing'}",
        data={"changes": fields},
    )
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag, user: User | None = None) -> int:
    """Delete a tag; it is detached from its scripts first (recorded on each)."""
    scripts = list(tag.scripts.all())
    ScriptChange.objects.bulk_create(
        ScriptChange(script=s, user=user, action="tag_detached", changes={"tag": tag.name, "deleted": True})
        for s in scripts
    )
    record(
        action="tag.delete",
        object_type="tag",
        object_id=tag.pk,
        summary=f"Tag {tag.name!r} deleted (detached from {len(scripts)} scripts)",
        data={"name": tag.name, "scripts": len(scripts)},
        actor=_actor(user),
    )
    tag.delete()
    return len(scripts)


def script_run_check(*, script: Script, force: bool = False) -> Path:
    """The real path of a script that may run now, or a 409 saying why it may not.

    Archived scripts refuse unless ``force`` (admins only: the caller checks); a file
    marked missing, gone from disk since the last scan, or now resolving outside its
    root refuses (the worker would reject it anyway, after queueing).
    """
    if script.status == ScriptStatus.ARCHIVED and not force:
        raise Conflict(
            f"{script.relpath} is archived: it cannot run (an admin may force it with force=true).",
            code="script_archived",
        )
    if script.missing_since is not None:
        raise Conflict(
            f"{script.relpath} is missing from disk since {script.missing_since:%Y-%m-%d %H:%M}.",
            code="script_missing",
        )
    real = Path(os.path.realpath(script.path))
    if not within(real, Path(os.path.realpath(script.root.path))):
        raise Conflict(
            f"{script.relpath} now resolves outside its folder root; rescan the root.", code="script_moved"
        )
    if not real.is_file():
        raise Conflict(f"{script.relpath} is not on disk any more; rescan its root.", code="script_missing")
    return real


def script_run_params(
    *,
    script: Script,
    params: dict[str, Any],
    force: bool = False,
    concurrency: tuple[str, int | None] | None = None,
) -> dict[str, Any]:
    """The fields of a run of a library script with RunRequest ``params`` (its path is the
    script's), for :func:`runs.services.run_enqueue`.

    Refuses with a 409 what :func:`script_run_check` refuses (archived unless ``force``,
    missing, moved outside its root).
    The script's ``max_concurrent`` applies across every worker (runs beyond it wait
    queued, in order) unless ``concurrency=(key, limit)`` overrides it.
    """
    script_run_check(script=script, force=force)
    if concurrency is not None:
        key, limit = concurrency
    elif script.max_concurrent:
        key, limit = script.concurrency_key, script.max_concurrent
    else:
        key, limit = "", None
    fields = dict(params)
    fields.pop("script_path", None)
    return {
        **fields,
        "script_path": script.path,
        "script": script,
        "concurrency_key": key,
        "concurrency_limit": limit,
    }


def script_enqueue(
    *,
    script: Script,
    params: dict[str, Any],
    user: User | None = None,
    source: str = "library",
    force: bool = False,
    concurrency: tuple[str, int | None] | None = None,
) -> Run:
    """Queue a run of a library script: see :func:`script_run_params`."""
    fields = script_run_params(script=script, params=params, force=force, concurrency=concurrency)
    return run_enqueue(params=fields, user=user, source=source)
