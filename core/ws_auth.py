"""Websocket authentication: :func:`core.principals.principal_from` for Channels.

A key (``Authorization: Bearer``, ``X-API-Key`` or ``?api_key=sops_...``, seed 004:
browsers cannot set headers on a websocket) or the session cookie. Sets
``scope["user"]`` and ``scope["role"]`` (the effective role, or None: no credentials,
or a key that was refused). Consumers close unauthenticated sockets with 4401 and
unauthorised ones with 4403. An address that sent too many bad keys
(:mod:`core.key_guard`) is answered here, before any consumer: the handshake is accepted
and closed with 4429 (daphne cannot answer a handshake with an HTTP 429). No CSRF check:
a handshake is a GET, and browsers' ``Origin`` is checked instead (:func:`origin_checked`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.datastructures import CaseInsensitiveMapping
from django.utils.module_loading import import_string

from core.aio import live_read
from core.key_guard import TooManyBadKeys
from core.principals import InvalidApiKey, Principal, principal_from

CLOSE_TOO_MANY_BAD_KEYS = 4429


@live_read
def _principal(scope: dict[str, Any], session_user: object) -> Principal | None:
    headers = CaseInsensitiveMapping(
        {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers") or []}
    )
    query = {name: values[0] for name, values in parse_qs(scope.get("query_string", b"").decode()).items()}
    client = scope.get("client")
    address = str(client[0]) if client else None
    return principal_from(headers=headers, query=query, session_user=session_user, address=address)


async def _refuse_throttled(receive: Any, send: Any) -> None:
    """Accept the handshake and close it with 4429 (the socket's counterpart of a 429)."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": CLOSE_TOO_MANY_BAD_KEYS})


class ApiKeyOrSessionMiddleware(AuthMiddleware):  # type: ignore[misc]  # channels ships no type information
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        self.populate_scope(scope)
        try:
            await self.resolve_scope(scope)
        except TooManyBadKeys:
            return await _refuse_throttled(receive, send)
        return await self.inner(scope, receive, send)

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        # The session's user first, then the principal: a key wins over the session.
        # Without a session cookie (API clients) there is no user to look up: no trip
        # to a thread for it (a websocket's handshake made eight, this one of them).
        if getattr(scope.get("session"), "session_key", None):
            await super().resolve_scope(scope)
        else:
            scope["user"]._wrapped = AnonymousUser()
        try:
            principal = await _principal(scope, scope["user"]._wrapped)
        except InvalidApiKey:
            principal = None
        scope["user"]._wrapped = principal.user if principal is not None else AnonymousUser()
        scope["role"] = principal.role if principal is not None else None


class WebsocketSession:
    """The handshake's cookies and session in the scope (``cookies``, ``session``), as
    Channels' ``CookieMiddleware(SessionMiddleware(...))`` sets them, without wrapping
    ``send``.

    Channels' wrapper saves a modified session and sets its cookie on
    ``http.response.start``, which a websocket never sends; yet it looked at the session
    on every message sent (~3 % of daphne's CPU in bursts of launches, py-spy). Nothing
    here writes the session: the session is only read, to know the user."""

    def __init__(self, inner: Any):
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers") or []:
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin-1"))
                break
        store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
        session = store(cookies.get(settings.SESSION_COOKIE_NAME))
        return await self.inner({**scope, "cookies": cookies, "session": session}, receive, send)


def WebsocketAuthStack(inner: Any) -> Any:
    return WebsocketSession(ApiKeyOrSessionMiddleware(inner))


class BrowserOriginValidator(OriginValidator):  # type: ignore[misc]  # channels ships no type information
    """Checks ``Origin`` against ALLOWED_HOSTS when there is one.

    Browsers always send ``Origin`` on websocket handshakes, so a page on another site
    cannot ride a signed-in user's session cookie. Clients that send none (curl,
    scripts) are not browsers; they must still authenticate (usually by API key).
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return bool(self.validate_origin(parsed_origin))


def origin_checked(inner: Any) -> Any:
    from django.conf import settings

    return BrowserOriginValidator(inner, list(settings.ALLOWED_HOSTS))
