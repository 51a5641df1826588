"""Sign-ins and sign-outs: Django's own explicit events, recorded in the audit log.

``user_logged_in``/``user_login_failed``/``user_logged_out`` are sent by
``django.contrib.auth`` itself at the moment of the sign-in (the dashboard's form, the
admin's, the browsable API's), not guessed from model changes: they are the services'
calls here. A failed sign-in has no actor; the username tried is its object.
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from audit.services import record


def _where(request: HttpRequest | None) -> dict[str, Any]:
    path = getattr(request, "path", "") or ""
    return {"via": "admin" if path.startswith("/admin") else "dashboard" if path else "other", "path": path}


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(
        action="auth.login",
        object_type="user",
        object_id=user.pk,
        summary=f"{user.get_username()} signed in",
        data=_where(request),
        actor=user,
        request=request,
    )


def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    record(
        action="auth.logout",
        object_type="user",
        object_id=user.pk,
        summary=f"{user.get_username()} signed out",
        data=_where(request),
        actor=user,
        request=request,
    )


def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    record(
        action="auth.login_failed",
        object_type="user",
        object_id=username,
        summary=f"Failed sign-in as {username!r}",
        data={**_where(request), "username": username},
        actor="",
        request=request,
    )


def _locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    name = str(username or "")[:150]
    record(
        action="auth.locked_out",
        object_type="user",
        object_id=name,
        summary=f"Sign-ins as {name!r} from {ip_address or 'an unknown address'} locked out",
        data={**_where(request), "username": name, "address": ip_address},
        actor="",
        request=request,
    )


def connect() -> None:
    user_locked_out.connect(_locked_out, dispatch_uid="audit.locked_out")
    user_logged_in.connect(_logged_in, dispatch_uid="audit.login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit.logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit.login_failed")
