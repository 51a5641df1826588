"""Sign-in lockout (core.lockout, django-axes): the dashboard's form and the admin's."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"
FORMS = {"dashboard": "/login/", "admin": "/admin/login/"}


def attempt(client: Client, url: str, username: str, password: str, **extra: str):
    return client.post(url, {"username": username, "password": password}, **extra)


def fail(client: Client, url: str, username: str, times: int, **extra: str) -> list[int]:
    return [attempt(client, url, username, "wrong-password", **extra).status_code for _ in range(times)]


@pytest.mark.parametrize("form", FORMS)
def test_the_nth_failure_locks_the_user_out_of_that_address(form: str) -> None:
    url = FORMS[form]
    UserFactory(username="alice", role=Role.ADMIN, is_staff=True, is_superuser=True)
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    assert fail(client, url, "alice", limit - 1) == [200] * (limit - 1)  # the form again, with its error

    locked = attempt(client, url, "alice", "wrong-password")

    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == int(settings.LOGIN_COOLOFF_MINUTES * 60)
    assert b"Too many failed sign-ins" in locked.content
    assert b'data-testid="locked-out"' in locked.content
    # Even the right password is refused now, and no session is opened.
    right = attempt(client, url, "alice", PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_another_address_is_not_locked_out_by_someone_elses_failures() -> None:
    UserFactory(username="alice", role=Role.USER)
    fail(Client(), "/login/", "alice", settings.AXES_FAILURE_LIMIT, REMOTE_ADDR="203.0.113.9")

    response = attempt(Client(), "/login/", "alice", PASSWORD, REMOTE_ADDR="198.51.100.4")

    assert response.status_code == 302 and response["Location"] == "/"


def test_many_usernames_from_one_address_lock_the_address() -> None:
    UserFactory(username="alice", role=Role.USER)
    client = Client()
    per_user = settings.AXES_FAILURE_LIMIT - 1  # never enough to lock one pair
    names = iter(f"user{i}" for i in range(1000))
    codes: list[int] = []
    while len(codes) < settings.LOGIN_ADDRESS_FAILURE_LIMIT:
        codes += fail(client, "/login/", next(names), per_user)
    assert 429 in codes

    assert attempt(client, "/login/", "alice", PASSWORD).status_code == 429
    assert attempt(Client(), "/login/", "alice", PASSWORD, REMOTE_ADDR="198.51.100.4").status_code == 302


def test_the_lockout_grows_with_further_failures() -> None:
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    fail(client, "/login/", "mallory", limit)
    first = int(attempt(client, "/login/", "mallory", "x")["Retry-After"])
    fail(client, "/login/", "mallory", limit)

    later = int(attempt(client, "/login/", "mallory", "x")["Retry-After"])

    assert first == int(settings.LOGIN_COOLOFF_MINUTES * 60)
    assert later >= 2 * first


def test_a_json_caller_gets_a_json_429() -> None:
    client = Client()
    fail(client, "/login/", "bob", settings.AXES_FAILURE_LIMIT - 1)

    response = attempt(client, "/login/", "bob", "x", HTTP_ACCEPT="application/json")

    assert response.status_code == 429
    assert response.json()["error"] == "locked_out"
    assert response["Retry-After"]


def test_admins_see_the_lockout_and_lift_it_in_the_admin() -> None:
    UserFactory(username="alice", role=Role.USER)
    UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True)
    locked_client = Client(REMOTE_ADDR="203.0.113.9")
    fail(locked_client, "/login/", "alice", settings.AXES_FAILURE_LIMIT)
    admin = Client()
    assert attempt(admin, "/admin/login/", "root", PASSWORD).status_code == 302

    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"alice" in listing.content and b"203.0.113.9" in listing.content
    rows = list(AccessAttempt.objects.values_list("pk", flat=True))
    lifted = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": rows, "post": "yes"},
    )

    assert lifted.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert attempt(locked_client, "/login/", "alice", PASSWORD).status_code == 302


def test_the_axes_reset_command_lifts_a_lockout() -> None:
    UserFactory(username="alice", role=Role.USER)
    client = Client()
    fail(client, "/login/", "alice", settings.AXES_FAILURE_LIMIT)
    assert attempt(client, "/login/", "alice", PASSWORD).status_code == 429

    call_command("axes_reset_username", "alice")

    assert attempt(client, "/login/", "alice", PASSWORD).status_code == 302


def test_a_successful_sign_in_does_not_count() -> None:
    UserFactory(username="alice", role=Role.USER)
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        client = Client()
        assert attempt(client, "/login/", "alice", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()
