"""The audit log's hook in core: the request being served, and a recorder registry.

The audit log lives in the ``audit`` app, one floor above core; core's own services
(API keys, users) must record too, but core imports no app above it. So core offers
:func:`audit_emit`, which hands the event to whatever recorder the ``audit`` app
registered in its ``AppConfig.ready()`` (:func:`recorder_register`) — and does nothing
when none is installed. The apps above ``audit`` call ``audit.services.record`` directly.

:class:`core.middleware.AuditContextMiddleware` keeps the Django request being served in a
context variable, so a record made deep inside a service knows who acted and from where
(``request.user`` is read when the event is written: by then DRF has authenticated the
caller, session or API key) without every service taking a ``request=`` argument.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest

current_request: ContextVar[HttpRequest | None] = ContextVar("scriptops_current_request", default=None)

Recorder = Callable[..., Any]
_recorders: list[Recorder] = []


def recorder_register(recorder: Recorder) -> None:
    """Install the function :func:`audit_emit` calls (once per process; idempotent)."""
    if recorder not in _recorders:
        _recorders.append(recorder)


def audit_emit(
    *,
    action: str,
    object_type: str = "",
    object_id: object = "",
    summary: str = "",
    data: dict[str, Any] | None = None,
    actor: Any = None,
    request: HttpRequest | None = None,
) -> None:
    """Record an audit event through the registered recorder (see the module docstring)."""
    for recorder in _recorders:
        recorder(
            action=action,
            object_type=object_type,
            object_id=object_id,
            summary=summary,
            data=data,
            actor=actor,
            request=request,
        )
