"""core.ws_auth.WebsocketSession: a websocket's cookies and session, and its send untouched.

(The sockets' authentication as a whole, session cookie and keys, is tested end to end
through the consumers: tests/runs/test_consumers.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client

from core.ws_auth import WebsocketSession
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _through(headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], Any]:
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"], seen["send"] = scope, send

    async def send(message: dict[str, Any]) -> None:  # the server's
        return None

    async_to_sync(WebsocketSession(inner))({"type": "websocket", "headers": headers}, None, send)
    assert seen["send"] is send  # not wrapped: nothing runs per message sent
    return seen["scope"], send


def test_the_session_of_the_cookie_is_in_the_scope() -> None:
    user = UserFactory(username="browser")
    client = Client()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    scope, _ = _through([(b"cookie", f"theme=dark; {settings.SESSION_COOKIE_NAME}={key}".encode())])
    assert scope["cookies"] == {"theme": "dark", settings.SESSION_COOKIE_NAME: key}
    assert scope["session"].session_key == key
    assert str(scope["session"][SESSION_KEY]) == str(user.pk)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"cookie", b"theme=dark")],
        [(b"cookie", f"{settings.SESSION_COOKIE_NAME}=forged".encode())],
        [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={'x' * 32}".encode())],
    ],
    ids=["no cookie", "no session cookie", "malformed session key", "unknown session"],
)
def test_without_a_valid_session_cookie_the_session_is_empty(headers: list[tuple[bytes, bytes]]) -> None:
    scope, _ = _through(headers)
    assert SESSION_KEY not in scope["session"]  # no user
