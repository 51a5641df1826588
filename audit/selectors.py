"""Reading the audit log: the filtered events and their CSV rendering."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, time

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditEvent
from core.errors import InvalidInput

# The actions the services record, for the Audit page's suggestions (a filter takes any).
KNOWN_ACTIONS = (
    "auth.login",
    "auth.login_failed",
    "auth.locked_out",
    "auth.logout",
    "api_key.create",
    "api_key.update",
    "api_key.revoke",
    "user.create",
    "user.update",
    "user.role_change",
    "user.password_change",
    "user.delete",
    "run.launch",
    "run.rerun",
    "run.restart",
    "run.stop",
    "run.kill",
    "run.cancel",
    "run.pause",
    "run.resume",
    "run.delete",
    "library_root.create",
    "library_root.update",
    "library_root.delete",
    "library_root.scan",
    "script.update",
    "script.tag_attach",
    "script.tag_detach",
    "tag.create",
    "tag.update",
    "tag.delete",
    "preset.create",
    "preset.update",
    "preset.delete",
    "scheduled_task.create",
    "scheduled_task.update",
    "scheduled_task.delete",
    "scheduled_task.enable",
    "scheduled_task.disable",
    "scheduled_task.webhook_rotate",
    "scheduled_task.webhook_remove",
)

FILTERS = ("actor", "action", "object_type", "object_id", "since", "until")
CSV_COLUMNS = (
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "summary",
    "ip",
    "user_agent",
    "request_id",
    "data",
)


def _moment(name: str, raw: str, *, end_of_day: bool) -> datetime:
    """An ISO date or date-time; a bare date means its whole day (``until`` inclusive)."""
    try:
        parsed = parse_datetime(raw)
        if parsed is None:
            day = parse_date(raw)
            if day is None:
                raise ValueError(raw)
            parsed = datetime.combine(day, time.max if end_of_day else time.min)
    except ValueError:
        raise InvalidInput(
            name, f"{name!r} must be an ISO 8601 date or date-time (2026-01-31 or 2026-01-31T12:00:00Z)."
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def audit_events(*, filters: Mapping[str, str]) -> QuerySet[AuditEvent]:
    """The events matching ``filters`` (see :data:`FILTERS`), newest first.

    ``actor`` is a username (a user deleted since is still found by name) or a user id;
    ``action`` is exact, or a prefix when it ends with a dot (``run.``); ``since``/``until``
    are ISO dates or date-times. A bad value raises :class:`InvalidInput` naming it.
    """
    events = AuditEvent.objects.all()
    for name, raw in filters.items():
        if name in FILTERS and len(raw) > 255:
            raise InvalidInput(name, f"{name!r} is too long (at most 255 characters).")
    if actor := filters.get("actor", "").strip():
        match = Q(actor_name=actor)
        if actor.isdigit() and len(actor) < 19:
            match |= Q(actor_id=int(actor))
        events = events.filter(match)
    if action := filters.get("action", "").strip():
        events = (
            events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
        )
    if object_type := filters.get("object_type", "").strip():
        events = events.filter(object_type=object_type)
    if object_id := filters.get("object_id", "").strip():
        events = events.filter(object_id=object_id)
    since = filters.get("since", "").strip()
    until = filters.get("until", "").strip()
    start = _moment("since", since, end_of_day=False) if since else None
    end = _moment("until", until, end_of_day=True) if until else None
    if start is not None and end is not None and start > end:
        raise InvalidInput("until", "'until' is before 'since'.")
    if start is not None:
        events = events.filter(at__gte=start)
    if end is not None:
        events = events.filter(at__lte=end)
    return events.order_by("-at", "-id")


def _line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


def _cell(text: str) -> str:
    # A cell a spreadsheet would run as a formula (=, +, -, @) is quoted with a leading '.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_csv(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    """The events as CSV, a header then one line per event, streamed in chunks."""
    yield _line(list(CSV_COLUMNS))
    for event in events.iterator(chunk_size=1000):
        yield _line(
            [
                event.at.isoformat(),
                _cell(event.actor_name),
                event.action,
                _cell(event.object_type),
                _cell(event.object_id),
                _cell(event.summary),
                event.ip or "",
                _cell(event.user_agent),
                _cell(event.request_id),
                json.dumps(event.data, sort_keys=True, default=str),
            ]
        )
