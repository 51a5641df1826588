"""Creating, changing and deleting scheduled tasks, and their webhook tokens.

Every rule a task must satisfy is checked here (:func:`task_clean`), whoever calls: the
API, the admin, a shell. Bad input raises :class:`TaskError`, a 400 naming each field.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record
from core.errors import Conflict, InvalidInput
from core.models import User
from library.models import Script
from library.services import script_run_check
from runs.request import RunRequestInvalid, run_request_clean
from scheduler.models import (
    EVENT_NAME,
    EVENT_NAME_MESSAGE,
    RUN_OPTION_FIELDS,
    MisfirePolicy,
    OverlapPolicy,
    ScheduledTask,
    ScheduleType,
    TaskEvent,
)
from scheduler.schedules import ScheduleError, cron_clean, interval_clean, zone
from scheduler.selectors import dependency_cycle

WEBHOOK_PREFIX = "whk_"
EVENT_NAME_RE = re.compile(rf"^{EVENT_NAME}$")
MAX_EVENTS = 50
MAX_DEPENDENCIES = 100
# Environment values are never returned by the API; a client sending this placeholder
# back (a GET → PUT round trip) keeps the stored value.
MASKED = "********"

SCHEDULE_FIELDS = ("schedule_type", "interval_seconds", "cron", "timezone")
TASK_FIELDS = (
    "name",
    "description",
    "enabled",
    "owner",
    "script_id",
    "script_path",
    *RUN_OPTION_FIELDS,
    *SCHEDULE_FIELDS,
    "depends_on",
    "events",
    "overlap_policy",
    "max_concurrent",
    "misfire_policy",
)


class TaskError(InvalidInput):
    """Bad input to a scheduler service: ``{field: [message, …]}`` (a 400 through the API)."""

    @property
    def errors(self) -> dict[str, list[str]]:
        return self.fields


def hash_token(raw: str) -> str:
    """Webhook tokens are stored as their SHA-256, like API keys."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> str:
    return WEBHOOK_PREFIX + secrets.token_urlsafe(32)


@dataclass
class Cleaned:
    """A task's new state: model field values, and the relations when they change."""

    fields: dict[str, Any]
    depends_on: list[int] | None = None
    events: list[str] | None = None
    schedule_changed: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _current(task: ScheduledTask | None) -> dict[str, Any]:
    if task is None:
        return {
            "name": "",
            "description": "",
            "enabled": True,
            "script": None,
            "script_path": "",
            "schedule_type": ScheduleType.NONE,
            "interval_seconds": None,
            "cron": "",
            "timezone": "UTC",
            "overlap_policy": OverlapPolicy.SKIP,
            "max_concurrent": None,
            "misfire_policy": MisfirePolicy.RUN_ONCE,
        }
    values = {
        name: getattr(task, name)
        for name in (
            "name",
            "description",
            "enabled",
            "script_path",
            *RUN_OPTION_FIELDS,
            *SCHEDULE_FIELDS,
            "overlap_policy",
            "max_concurrent",
            "misfire_policy",
        )
    }
    values["script"] = task.script
    return values


def task_clean(*, task: ScheduledTask | None, data: dict[str, Any], now: datetime | None = None) -> Cleaned:
    """Check ``data`` (all fields on create, the changed ones on update) against every rule.

    Returns the new field values; raises :class:`TaskError` listing every problem found.
    """
    unknown = sorted(set(data) - set(TASK_FIELDS))
    if unknown:
        raise TaskError({name: [f"Unknown field {name!r}."] for name in unknown})
    now = now or timezone.now()
    current = _current(task)
    out = Cleaned(fields={})
    _clean_name(task, data, out)
    if "description" in data:
        description = data["description"] or ""
        if not isinstance(description, str) or "\x00" in description:
            out.error("description", "The description must be text without NUL characters.")
        else:
            out.fields["description"] = description
    for name in ("enabled", "owner"):
        if name in data:
            out.fields[name] = data[name]
    _clean_script_and_options(task, data, current, out)
    _clean_schedule(task, data, current, out, now)
    _clean_policies(data, current, out)
    _clean_relations(task, data, out)
    if out.errors:
        raise TaskError(out.errors)
    return out


def _clean_name(task: ScheduledTask | None, data: dict[str, Any], out: Cleaned) -> None:
    if "name" not in data:
        if task is None:
            out.error("name", "A task name is required.")
        return
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        out.error("name", "A task name is required.")
        return
    name = name.strip()
    if "\x00" in name:
        out.error("name", "The name contains a NUL character.")
        return
    if len(name) > 200:
        out.error("name", "A task name has at most 200 characters.")
        return
    clash = ScheduledTask.objects.filter(name__iexact=name)
    if task is not None:
        clash = clash.exclude(pk=task.pk)
    if clash.exists():
        out.error("name", f"A task named {name!r} already exists (names ignore case).")
        return
    out.fields["name"] = name


def _clean_script_and_options(
    task: ScheduledTask | None, data: dict[str, Any], current: dict[str, Any], out: Cleaned
) -> None:
    if task is not None and not any(
        name in data for name in ("script_id", "script_path", *RUN_OPTION_FIELDS)
    ):
        return  # unchanged: not re-checked (a vanished file must not block editing a description)
    script_id = data.get("script_id")
    path = data.get("script_path") or ""
    script: Script | None = current["script"]
    raw_path: str = "" if script is not None else current["script_path"]
    if script_id is not None:
        script = Script.objects.select_related("root").filter(pk=script_id).first()
        if script is None:
            out.error("script_id", f"There is no library script with id {script_id}.")
            return
        if path and (task is None or path != script.path):
            out.error("script_id", "Give script_id or script_path, not both.")
            return
        try:
            script_run_check(script=script)  # archived, missing, moved outside its root
        except Conflict as exc:
            out.error("script_id", exc.message)
            return
        raw_path = script.path
    elif path:
        script, raw_path = None, path
    elif "script_id" in data and "script_path" not in data and task is not None and script is not None:
        out.error("script_id", "script_id or script_path is required.")
        return
    if not raw_path:
        out.error("script_path", "script_id or script_path is required.")
        return
    options = {name: data.get(name, current.get(name)) for name in RUN_OPTION_FIELDS}
    options = {name: value for name, value in options.items() if value is not None or name in data}
    env = options.get("env_vars")
    if task is not None and isinstance(env, dict):
        stored = task.env_vars or {}
        options["env_vars"] = {
            name: stored[name] if value == MASKED and name in stored else value for name, value in env.items()
        }
    if task is not None and options.get("slack_webhook") == MASKED:
        options["slack_webhook"] = task.slack_webhook  # sent back as GET shows it: unchanged
    try:
        request = run_request_clean({"script_path": raw_path, **options})
    except RunRequestInvalid as exc:
        at = "script_id" if script is not None else "script_path"
        for name, messages in exc.fields.items():
            for message in messages:
                out.error(at if name == "script_path" else name, message)
        return
    params = request.run_fields()
    out.fields["script"] = script
    out.fields["script_path"] = script.path if script is not None else params["script_path"]
    for name in RUN_OPTION_FIELDS:
        out.fields[name] = params[name]


def _given(data: dict[str, Any], name: str) -> bool:
    return data.get(name) not in (None, "")


def _clean_schedule(
    task: ScheduledTask | None, data: dict[str, Any], current: dict[str, Any], out: Cleaned, now: datetime
) -> None:
    if not any(name in data for name in SCHEDULE_FIELDS) and task is not None:
        return
    kind = data.get("schedule_type")
    if kind is None:
        if _given(data, "cron"):
            kind = ScheduleType.CRON
        elif _given(data, "interval_seconds"):
            kind = ScheduleType.INTERVAL
        else:
            kind = current["schedule_type"] if task is not None else ScheduleType.NONE
    if kind not in ScheduleType.values:
        out.error("schedule_type", f"schedule_type must be one of {', '.join(ScheduleType.values)}.")
        return
    tz_name = data.get("timezone") or current["timezone"]
    fields: dict[str, Any] = {"schedule_type": kind, "interval_seconds": None, "cron": ""}
    try:
        tz = zone(tz_name)
        fields["timezone"] = tz_name
        if kind == ScheduleType.INTERVAL:
            if _given(data, "cron"):
                raise ScheduleError("cron", "An interval schedule takes no cron expression.")
            interval = data.get("interval_seconds", current["interval_seconds"])
            if interval is None:
                raise ScheduleError("interval_seconds", "An interval schedule needs interval_seconds.")
            fields["interval_seconds"] = interval_clean(interval)
        elif kind == ScheduleType.CRON:
            if _given(data, "interval_seconds"):
                raise ScheduleError("interval_seconds", "A cron schedule takes no interval_seconds.")
            fields["cron"] = cron_clean(data.get("cron") or current["cron"], tz=tz, now=now)
        else:
            for name in ("interval_seconds", "cron"):
                if _given(data, name):
                    raise ScheduleError(name, f"schedule_type none takes no {name}.")
    except ScheduleError as exc:
        out.error(exc.field, exc.message)
        return
    out.fields.update(fields)
    out.schedule_changed = any(fields[name] != current[name] for name in fields)


def _clean_policies(data: dict[str, Any], current: dict[str, Any], out: Cleaned) -> None:
    overlap = data.get("overlap_policy", current["overlap_policy"])
    if overlap not in OverlapPolicy.values:
        out.error("overlap_policy", f"overlap_policy must be one of {', '.join(OverlapPolicy.values)}.")
    elif "overlap_policy" in data:
        out.fields["overlap_policy"] = overlap
    misfire = data.get("misfire_policy", current["misfire_policy"])
    if misfire not in MisfirePolicy.values:
        out.error("misfire_policy", f"misfire_policy must be one of {', '.join(MisfirePolicy.values)}.")
    elif "misfire_policy" in data:
        out.fields["misfire_policy"] = misfire
    limit = data.get("max_concurrent")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            out.error("max_concurrent", "max_concurrent must be a whole number of at least 1, or null.")
        elif overlap != OverlapPolicy.ALLOW:
            out.error("max_concurrent", "max_concurrent only applies with overlap_policy allow.")
        else:
            out.fields["max_concurrent"] = limit
    elif "max_concurrent" in data or overlap != OverlapPolicy.ALLOW:
        # Leaving allow drops its limit: it would mean nothing under another policy.
        out.fields["max_concurrent"] = None


def _clean_relations(task: ScheduledTask | None, data: dict[str, Any], out: Cleaned) -> None:
    if data.get("depends_on") is not None:
        wanted = list(dict.fromkeys(data["depends_on"]))
        if len(wanted) > MAX_DEPENDENCIES:
            out.error("depends_on", f"A task depends on at most {MAX_DEPENDENCIES} others.")
            return
        found = set(ScheduledTask.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        unknown = [str(pk) for pk in wanted if pk not in found]
        if unknown:
            out.error("depends_on", f"Unknown task id(s): {', '.join(unknown)}.")
        elif task is not None:
            cycle = dependency_cycle(task_id=task.pk, upstream_ids=wanted)
            if cycle:
                names = dict(ScheduledTask.objects.filter(pk__in=cycle).values_list("pk", "name"))
                path = " → ".join(names[pk] for pk in cycle)
                out.error(
                    "depends_on",
                    f"This would create a dependency cycle: {path} (each runs after the one before it).",
                )
        out.depends_on = wanted
    if data.get("events") is not None:
        events = list(dict.fromkeys(data["events"]))
        bad = [name for name in events if not isinstance(name, str) or not EVENT_NAME_RE.match(name)]
        if bad:
            out.error(
                "events",
                f"Invalid event name(s): {', '.join(repr(b) for b in bad[:5])}. {EVENT_NAME_MESSAGE}",
            )
        elif len(events) > MAX_EVENTS:
            out.error("events", f"A task listens to at most {MAX_EVENTS} events.")
        out.events = events


def _apply_relations(task: ScheduledTask, cleaned: Cleaned) -> None:
    if cleaned.depends_on is not None:
        task.depends_on.set(cleaned.depends_on)
    if cleaned.events is not None:
        TaskEvent.objects.filter(task=task).exclude(name__in=cleaned.events).delete()
        have = set(TaskEvent.objects.filter(task=task).values_list("name", flat=True))
        TaskEvent.objects.bulk_create(TaskEvent(task=task, name=n) for n in cleaned.events if n not in have)


def _name_taken(exc: IntegrityError) -> TaskError:
    return TaskError("name", f"A task with this name already exists (names ignore case): {exc}")


def task_create(
    *, user: User | None = None, webhook: bool = False, now: datetime | None = None, **data: Any
) -> tuple[ScheduledTask, str | None]:
    """Create a task. Returns it and, with ``webhook``, its raw webhook token (shown once)."""
    now = now or timezone.now()
    with transaction.atomic():
        cleaned = task_clean(task=None, data=data, now=now)
        fields = dict(cleaned.fields)
        if "owner" not in fields:
            fields["owner"] = user if getattr(user, "is_authenticated", False) else None
        task = ScheduledTask(**fields, created_at=now, updated_at=now)
        task.next_run_at = task.first_run_after(now)
        raw = new_token() if webhook else None
        if raw:
            task.webhook_hash = hash_token(raw)
        try:
            with transaction.atomic():
                task.save()
        except IntegrityError as exc:  # a concurrent create took the name
            raise _name_taken(exc) from exc
        _apply_relations(task, cleaned)
        _record(
            task,
            "create",
            f"Scheduled task {task.name!r} created",
            {"fields": sorted(data), "webhook": bool(raw)},
        )
    return task, raw


def _record(task: ScheduledTask, verb: str, summary: str, data: dict[str, Any] | None = None) -> None:
    # Names of the changed fields, not their values: a task's environment may hold secrets.
    record(
        action=f"scheduled_task.{verb}",
        object_type="scheduled_task",
        object_id=task.pk,
        summary=summary,
        data={"name": task.name, **(data or {})},
    )


def task_update(*, task: ScheduledTask, now: datetime | None = None, **data: Any) -> ScheduledTask:
    """Change a task; a new schedule (or re-enabling) counts the next due time from ``now``."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked: two updates of one task (or an update and a tick) do not interleave.
        locked = (
            ScheduledTask.objects.select_for_update(of=("self",)).select_related("script").get(pk=task.pk)
        )
        cleaned = task_clean(task=locked, data=data, now=now)
        changed = [name for name, value in cleaned.fields.items() if getattr(locked, name) != value]
        for name in changed:
            setattr(locked, name, cleaned.fields[name])
        if cleaned.schedule_changed or "enabled" in changed:
            locked.next_run_at = locked.first_run_after(now)
            changed.append("next_run_at")
        locked.updated_at = now
        try:
            with transaction.atomic():
                locked.save(update_fields=[*changed, "updated_at"])
        except IntegrityError as exc:
            raise _name_taken(exc) from exc
        _apply_relations(locked, cleaned)
        fields = sorted(set(changed) | set(data))
        _record(
            locked,
            "update",
            f"Scheduled task {locked.name!r} changed: {', '.join(fields) or 'nothing'}",
            {"changed": fields},
        )
    return locked


def task_delete(*, task: ScheduledTask) -> None:
    """Delete a task and its history (its runs stay). Refused while others depend on it."""
    with transaction.atomic():
        dependents = list(task.dependents.order_by("name").values_list("name", flat=True))
        if dependents:
            raise Conflict(
                f"{task.name} cannot be deleted: {', '.join(dependents)} depend(s) on it. "
                "Remove it from their depends_on first."
            )
        _record(task, "delete", f"Scheduled task {task.name!r} deleted")
        task.delete()


def task_enable(*, task: ScheduledTask, now: datetime | None = None) -> ScheduledTask:
    """Enable a task; its next due time is counted from now (no burst of missed ticks)."""
    now = now or timezone.now()
    task.enabled = True
    enabled = ScheduledTask.objects.filter(pk=task.pk, enabled=False).update(
        enabled=True, next_run_at=task.first_run_after(now), updated_at=now
    )
    task.refresh_from_db()
    if enabled:
        _record(task, "enable", f"Scheduled task {task.name!r} enabled")
    return task


def task_pause(*, task: ScheduledTask, now: datetime | None = None) -> ScheduledTask:
    """Disable a task: no ticks, events, dependency or webhook runs (manual runs still work)."""
    now = now or timezone.now()
    was_enabled = ScheduledTask.objects.filter(pk=task.pk, enabled=True).exists()
    ScheduledTask.objects.filter(pk=task.pk).update(enabled=False, next_run_at=None, updated_at=now)
    task.refresh_from_db()
    if was_enabled:
        _record(task, "disable", f"Scheduled task {task.name!r} disabled")
    return task


def task_webhook_rotate(*, task: ScheduledTask) -> str:
    """Give the task a new webhook token (the old one stops working). Returns it, raw, once."""
    raw = new_token()
    ScheduledTask.objects.filter(pk=task.pk).update(webhook_hash=hash_token(raw), updated_at=timezone.now())
    task.refresh_from_db()
    _record(task, "webhook_rotate", f"Webhook token of scheduled task {task.name!r} rotated")
    return raw


def task_webhook_remove(*, task: ScheduledTask) -> None:
    had = ScheduledTask.objects.filter(pk=task.pk).exclude(webhook_hash="").exists()
    ScheduledTask.objects.filter(pk=task.pk).update(webhook_hash="", updated_at=timezone.now())
    task.refresh_from_db()
    if had:
        _record(task, "webhook_remove", f"Webhook of scheduled task {task.name!r} removed")
