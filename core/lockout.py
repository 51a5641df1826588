"""Sign-in lockout: django-axes, wired to ScriptOps' settings, pages and client addresses.

django-axes records every failed sign-in (the dashboard's form, the admin's, the
browsable API's: all go through ``django.contrib.auth.authenticate``) as an
``AccessAttempt`` row, shown to admins in the admin (Axes > Access attempts; deleting a
row, or ``manage.py axes_reset`` / ``axes_reset_ip`` / ``axes_reset_username``, lifts
it). What this module adds:

- **two limits**: ``SCRIPTOPS_LOGIN_FAILURE_LIMIT`` failures of one username from one
  address lock that pair; ``SCRIPTOPS_LOGIN_ADDRESS_FAILURE_LIMIT`` failures from one
  address, whatever the usernames, lock the address (password spraying). Locking a
  username from *every* address would let anyone lock any user out, so that is not done.
- **a growing window**: the lockout lasts ``SCRIPTOPS_LOGIN_COOLOFF_MINUTES`` and doubles
  for each further round of failures from the address (up to
  ``SCRIPTOPS_LOGIN_COOLOFF_MAX_MINUTES``); each attempt while locked counts and restarts it.
- **the answer**: a page saying so with status 429 and ``Retry-After`` (JSON for API
  and XHR callers).
- **the address**: the one daphne reports (``REMOTE_ADDR``; behind a proxy, daphne's
  ``--proxy-headers`` takes it from ``X-Forwarded-For``), never a header a client sets.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.errors import error_body

LOCKED_OUT_TEMPLATE = "dashboard/locked_out.html"


def client_address(request: HttpRequest) -> str | None:
    """The client's address as daphne resolved it (``AXES_CLIENT_IP_CALLABLE``)."""
    return request.META.get("REMOTE_ADDR") or None


def _failures(queryset: Any) -> int:
    return int(queryset.aggregate(total=Sum("failures_since_start"))["total"] or 0)


def cooloff(request: HttpRequest | None = None) -> timedelta:
    """How long failures count and a lockout lasts (``AXES_COOLOFF_TIME``).

    The base window, doubled for each full round of ``LOGIN_FAILURE_LIMIT`` failures the
    address has beyond the first: 5 failures lock for 15 minutes, 10 for 30, 15 for an
    hour... Attempt rows keep their own expiry (``AXES_USE_ATTEMPT_EXPIRATION``), so a
    long window of one address is not cut short by another's short one.
    """
    base = timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES)
    longest = max(base, timedelta(minutes=settings.LOGIN_COOLOFF_MAX_MINUTES))
    address = getattr(request, "axes_ip_address", None) if request is not None else None
    if not address:
        return base
    limit = int(settings.AXES_FAILURE_LIMIT)
    rounds = _failures(AccessAttempt.objects.filter(ip_address=address)) // limit
    if rounds <= 1:
        return base
    return min(base * (1 << min(rounds - 1, 20)), longest)


class LockoutHandler(AxesDatabaseHandler):  # type: ignore[misc]  # django-axes ships no type information
    """Axes' database handler with a limit of its own for a whole address.

    ``AXES_LOCKOUT_PARAMETERS`` is ``[["username", "ip_address"], "ip_address"]``: axes
    hands this the failures of the pair, then of the address. Axes compares the largest
    with one limit; here the address's count is compared with its own, larger, limit.
    """

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        counts = [_failures(attempts) for attempts in self.get_user_attempts(request, credentials)]
        pair = counts[0] if counts else 0
        address = counts[1] if len(counts) > 1 else 0
        if address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(pair, settings.AXES_FAILURE_LIMIT)
        return pair


class LockoutBackend(AxesStandaloneBackend):  # type: ignore[misc]  # django-axes ships no type information
    """Refuses sign-ins while locked out; Django's ``ModelBackend`` then checks passwords.

    Without a request (``Client.login`` in tests, a management command) there is no
    address to count against: axes' check is skipped instead of raising.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]


def _wants_json(request: HttpRequest) -> bool:
    return (
        request.path.startswith("/api/")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or "application/json" in request.headers.get("Accept", "")
    )


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The answer while locked out (``AXES_LOCKOUT_CALLABLE``): 429, ``Retry-After``.

    Axes calls it as ``(request, response, credentials)`` or ``(request, credentials)``;
    neither is needed.
    """
    seconds = max(1, math.ceil(cooloff(request).total_seconds()))
    minutes = math.ceil(seconds / 60)
    unit = "minute" if minutes == 1 else "minutes"
    message = (
        f"Too many failed sign-ins. Try again in {minutes} {unit}, "
        "or ask an administrator to lift the lockout."
    )
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse(error_body("locked_out", message), status=429)
    else:
        response = render(request, LOCKED_OUT_TEMPLATE, {"message": message, "minutes": minutes}, status=429)
    response["Retry-After"] = str(seconds)
    return response
