"""Writing the audit log: :func:`record`, the one function every service calls, and the
retention cleanup :func:`audit_prune`."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from core.audit import current_request
from core.models import User


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:  # a model instance, a path...: its text
            return str(o)


def _plain(data: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` as plain JSON values, whatever the caller put in it."""
    return json.loads(json.dumps(data or {}, cls=_Encoder))  # type: ignore[no-any-return]


def _address(request: HttpRequest | None) -> str | None:
    raw = request.META.get("REMOTE_ADDR") if request is not None else None
    try:
        return str(ipaddress.ip_address(raw)) if raw else None
    except ValueError:  # a test client's or a proxy's oddity: no address rather than a crash
        return None


def _user_of(request: HttpRequest | None) -> User | None:
    # Read now, not when the request arrived: DRF sets the API-key user on the Django
    # request while authenticating, after the middleware ran.
    user = getattr(request, "user", None) if request is not None else None
    return user if isinstance(user, User) and user.is_authenticated else None


def _event(
    *,
    action: str,
    object_type: str = "",
    object_id: object = "",
    summary: str = "",
    data: dict[str, Any] | None = None,
    actor: Any = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """The unsaved event :func:`record` writes (its arguments are :func:`record`'s)."""
    request = request if request is not None else current_request.get()
    # A user, or a name standing for nobody signed in ("" for a failed sign-in).
    user = actor if isinstance(actor, User) else None if isinstance(actor, str) else _user_of(request)
    name = user.get_username() if user is not None else (actor if isinstance(actor, str) else "")
    headers = request.headers if request is not None else {}
    return AuditEvent(
        actor=user if user is not None and user.pk is not None else None,
        actor_name=name[:150],
        action=action[:64],
        object_type=object_type[:64],
        object_id=str(object_id if object_id is not None else "")[:255],
        summary=summary[:500],
        data=_plain(data),
        ip=_address(request),
        user_agent=str(headers.get("User-Agent", ""))[:500],
        request_id=str(headers.get("X-Request-ID", ""))[:64],
    )


def record(
    *,
    action: str,
    object_type: str = "",
    object_id: object = "",
    summary: str = "",
    data: dict[str, Any] | None = None,
    actor: Any = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Append one event: ``action`` (``run.launch``) done to ``object_type``/``object_id``.

    ``actor`` is the user who acted (or a name, for nobody signed in); when not given, the
    signed-in user of the request being served (``core.audit.current_request``), else
    nobody (the system: the scheduler, a worker, a management command). The client
    address, user agent and ``X-Request-ID`` come from ``request`` or the request being
    served. Written in the caller's transaction: an action that rolls back leaves no
    event behind.
    """
    event = _event(
        action=action,
        object_type=object_type,
        object_id=object_id,
        summary=summary,
        data=data,
        actor=actor,
        request=request,
    )
    event.save()
    return event


def events_unsaved(events: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """The events :func:`record` would write, one per dict of its arguments, unsaved: for
    a caller that writes them with its own rows, in one INSERT for all (a launch of 500
    runs: ``core.precompiled.inserts_prepared``)."""
    return [_event(**fields) for fields in events]


def audit_prune(*, now: Any = None) -> int:
    """Delete the events older than ``SCRIPTOPS_AUDIT_RETENTION_DAYS`` (the daily cleanup).

    The only deletion of audit events there is: a raw delete, past the queryset's and the
    model's refusal.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    old = AuditEvent.objects.filter(at__lt=cutoff)
    return int(old._raw_delete(router.db_for_write(AuditEvent)))


PRUNE_SCHEDULE = "scriptops.audit.prune"


def prune_schedule_ensure() -> None:
    """The daily retention cleanup's django-q2 ``Schedule`` exists (created by migration
    0002; ensured again by every runner at start-up, as the scheduler's fallback tick is,
    so a database whose rows were flushed or restored without it still prunes)."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=PRUNE_SCHEDULE,
        defaults={"func": "audit.tasks.prune", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
