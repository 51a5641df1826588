"""Who is calling: one answer for the REST API, server-sent events and websockets.

:func:`principal_from` is the only place that turns credentials into a user and a
role. The REST API (``core.authentication``), the SSE views (``runs.streams``) and
websockets (``core.ws_auth``) call it; it accepts, first match wins:

1. ``Authorization: Bearer <key>``;
2. ``X-API-Key: <key>``;
3. ``?api_key=<key>``, only where the caller passes ``query``: websockets and the SSE
   stream, because a browser's ``WebSocket`` and ``EventSource`` cannot set headers
   (elsewhere a key in a URL would only end up in access logs);
4. the session's signed-in, active user, with Django's CSRF check on unsafe methods
   where the caller passes one (HTTP; a websocket handshake is a GET whose ``Origin``
   is checked instead).

A key that is given but unusable (unknown, expired, revoked, its user inactive) is
refused with :class:`InvalidApiKey`, never passed over for the session: a client
learns at once that its key is bad. Each such key counts against the caller's address
(:mod:`core.key_guard`); past the limit any key from there is refused with
:class:`core.key_guard.TooManyBadKeys` (429) without being looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from core.key_guard import bad_key_record, bad_keys_check
from core.models import ApiKey, User
from core.services import api_key_authenticate

# Seed 003 clients send the CSRF token as ``X-CSRF-Token``; Django reads ``X-CSRFToken``.
CSRF_HEADER_ALIAS = "HTTP_X_CSRF_TOKEN"
INVALID_KEY_MESSAGE = "Invalid, expired or revoked API key."


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: User
    role: str  # effective: a key's role capped at its user's current one
    api_key: ApiKey | None = None  # the key it came with; None for a session


class InvalidApiKey(Exception):
    """A key was given but cannot be used. Answer 401 (websockets: close 4401)."""

    def __init__(self) -> None:
        super().__init__(INVALID_KEY_MESSAGE)


class CsrfRefused(Exception):
    """A session caller's unsafe request lacks a valid CSRF token. Answer 403.

    Carries the principal, so a caller that checks the role first (the SSE views
    answer ``permission_denied`` before ``csrf_failed``) still can.
    """

    def __init__(self, reason: str, principal: Principal):
        super().__init__(reason)
        self.reason = reason
        self.principal = principal


def api_key_from(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The raw key a request brings, if any (``headers`` is case-insensitive)."""
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        bearer = authorization[7:].strip()
        if bearer:
            return bearer
    raw = headers.get("X-API-Key") or (query.get("api_key") if query is not None else None)
    return raw or None


def principal_from(
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
    session_user: object = None,
    csrf: Callable[[], str | None] | None = None,
    address: str | None = None,
) -> Principal | None:
    """The caller, or None when it brings no credentials.

    ``headers``: a case-insensitive mapping (``request.headers``). ``query``: where a
    ``?api_key=`` is accepted, the query parameters; else None. ``session_user``: the
    session's user (may be lazy: it is only looked at when no key is given). ``csrf``:
    for HTTP, returns why the request fails the CSRF check (None when it passes; see
    :func:`csrf_failure`); it is run for session callers only, since a key is not sent
    by browsers on their own. ``address``: the client's address, which bad keys count
    against (None: not counted).

    Raises :class:`InvalidApiKey`, :class:`core.key_guard.TooManyBadKeys` or
    :class:`CsrfRefused`.
    """
    raw = api_key_from(headers, query)
    if raw is not None:
        bad_keys_check(address=address)
        key = api_key_authenticate(raw=raw)
        if key is None:
            bad_key_record(address=address)
            raise InvalidApiKey
        return Principal(user=key.user, role=str(key.effective_role), api_key=key)
    if not isinstance(session_user, User) or not session_user.is_active:
        return None  # anonymous, or an account deactivated since it signed in
    principal = Principal(user=session_user, role=str(session_user.effective_role))
    reason = csrf() if csrf is not None else None
    if reason is not None:
        raise CsrfRefused(reason, principal)
    return principal


# -- CSRF ------------------------------------------------------------------------------


def csrf_header_alias(meta: MutableMapping[str, Any]) -> None:
    """Accept ``X-CSRF-Token`` (seed 003) where Django reads ``X-CSRFToken``."""
    if CSRF_HEADER_ALIAS in meta and settings.CSRF_HEADER_NAME not in meta:
        meta[settings.CSRF_HEADER_NAME] = meta[CSRF_HEADER_ALIAS]


class _Refused(Exception):
    pass


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own check, reporting the reason instead of rendering a 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        raise _Refused(reason)


def _no_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def csrf_failure(request: HttpRequest) -> str | None:
    """Why Django's CSRF check refuses ``request``; None when it passes (any safe method).

    ``request`` may also be a DRF ``Request``, as in DRF's own SessionAuthentication:
    it must be, for a form's ``csrfmiddlewaretoken`` to be read from the parsed body.
    """
    csrf_header_alias(request.META)
    check = _CsrfCheck(_no_view)
    check.process_request(request)  # reads the CSRF cookie into request.META
    try:
        check.process_view(request, _no_view, (), {})
    except _Refused as refused:
        return str(refused)
    return None
