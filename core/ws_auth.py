"""Websocket authentication: the session cookie, or ``?api_key=sops_...`` (seed 004).

Sets ``scope["user"]`` and ``scope["role"]`` (the effective role, or None). Consumers
close unauthenticated sockets with 4401 and unauthorised ones with 4403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from channels.sessions import CookieMiddleware, SessionMiddleware

from core.services import api_key_authenticate


@database_sync_to_async
def _from_key(raw: str) -> tuple[Any, str | None]:
    key = api_key_authenticate(raw=raw)
    if key is None:
        return None, None
    return key.user, str(key.effective_role)


class ApiKeyOrSessionMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        raw = (query.get("api_key") or [None])[0]
        headers = dict(scope.get("headers") or [])
        header_key = headers.get(b"x-api-key")
        raw = raw or (header_key.decode() if header_key else None)
        if raw:
            user, role = await _from_key(raw)
            scope["user"]._wrapped = user if user is not None else _anonymous()
            scope["role"] = role
            scope["auth_failed"] = user is None
            return
        await super().resolve_scope(scope)
        user = scope["user"]
        scope["role"] = await _session_role(user)


def _anonymous() -> Any:
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


@database_sync_to_async
def _session_role(user: Any) -> str | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return str(user.effective_role)


def WebsocketAuthStack(inner: Any) -> Any:
    return CookieMiddleware(SessionMiddleware(ApiKeyOrSessionMiddleware(inner)))


class BrowserOriginValidator(OriginValidator):
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
