"""Sign-ins, failed sign-ins and lockouts are audited with the client's address and user agent."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from core.roles import Role
from tests.audit.conftest import only
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FORMS = {"dashboard": "/login/", "admin": "/admin/login/"}
CLIENT = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": "AuditTest/1.0 (hostile)"}


@pytest.mark.parametrize("form", FORMS)
def test_a_sign_in_is_recorded_with_address_and_user_agent(form: str, events) -> None:
    user = UserFactory(username="alice", role=Role.ADMIN, is_staff=True, is_superuser=True)
    response = Client().post(FORMS[form], {"username": "alice", "password": "pw-for-tests"}, **CLIENT)
    assert response.status_code == 302

    event = only(events("auth.login"))
    assert (event.actor, event.actor_name, event.object_type, event.object_id) == (
        user,
        "alice",
        "user",
        str(user.pk),
    )
    assert (event.ip, event.user_agent) == ("203.0.113.7", "AuditTest/1.0 (hostile)")
    assert event.data["via"] == form


@pytest.mark.parametrize("form", FORMS)
def test_a_failed_sign_in_is_recorded_without_an_actor(form: str, events) -> None:
    UserFactory(username="alice", role=Role.USER)
    response = Client().post(FORMS[form], {"username": "alice", "password": "wrong"}, **CLIENT)
    assert response.status_code == 200

    event = only(events("auth.login_failed"))
    assert (event.actor, event.actor_name, event.object_id) == (None, "", "alice")
    assert (event.ip, event.user_agent) == ("203.0.113.7", "AuditTest/1.0 (hostile)")
    assert event.data["username"] == "alice"
    assert "wrong" not in str(event.data)  # never the password tried
    assert events("auth.login") == []


def test_a_lockout_is_recorded_once(events) -> None:
    UserFactory(username="alice", role=Role.USER)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "alice", "password": "wrong"}, **CLIENT)

    event = only(events("auth.locked_out"))
    assert (event.object_id, event.ip) == ("alice", "203.0.113.7")
    assert len(events("auth.login_failed")) == settings.AXES_FAILURE_LIMIT


def test_a_sign_out_is_recorded(events) -> None:
    user = UserFactory(username="alice", role=Role.USER)
    client = Client()
    client.force_login(user)
    client.post("/logout/", **CLIENT)
    event = only(events("auth.logout"))
    assert (event.actor, event.ip) == (user, "203.0.113.7")
