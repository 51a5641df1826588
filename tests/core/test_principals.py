"""core.principals: one way to authenticate a caller, for HTTP, SSE and websockets.

The SSE and websocket sides are tested through their endpoints in tests/runs
(test_streams, test_consumers); here the function itself and the REST API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.utils.datastructures import CaseInsensitiveMapping
from rest_framework.test import APIClient

from core.models import User
from core.principals import (
    CsrfRefused,
    InvalidApiKey,
    api_key_from,
    csrf_failure,
    principal_from,
)
from core.roles import Role
from core.services import IssuedKey, api_key_create
from runs.models import Run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def headers(**values: str) -> CaseInsensitiveMapping[str]:
    return CaseInsensitiveMapping({name.replace("_", "-"): value for name, value in values.items()})


@pytest.fixture
def issued() -> IssuedKey:
    return api_key_create(user=UserFactory(username="keyed", role=Role.USER), name="k", role=Role.EXECUTOR)


def never_called() -> str | None:
    raise AssertionError("the CSRF check is for session callers only")


# -- the function -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "query"),
    [
        ({"Authorization": "Bearer {key}"}, None),
        ({"authorization": "bearer   {key}  "}, None),
        ({"X-API-Key": "{key}"}, None),
        ({"x-api-key": "{key}"}, None),
        ({}, {"api_key": "{key}"}),
    ],
    ids=["bearer", "bearer-any-case", "x-api-key", "x-api-key-any-case", "query"],
)
def test_a_key_is_taken_from_bearer_x_api_key_or_the_query(
    issued: IssuedKey, given: dict[str, str], query: dict[str, str] | None
) -> None:
    def fill(values: dict[str, str]) -> dict[str, str]:
        return {name: value.format(key=issued.raw) for name, value in values.items()}

    principal = principal_from(
        headers=CaseInsensitiveMapping(fill(given)),
        query=fill(query) if query is not None else None,
        csrf=never_called,
    )
    assert principal is not None
    assert principal.user == issued.key.user
    assert principal.api_key == issued.key
    assert principal.role == Role.EXECUTOR  # the key's own role, below its user's


def test_the_query_key_counts_only_where_the_caller_accepts_one(issued: IssuedKey) -> None:
    assert api_key_from(headers(), {"api_key": issued.raw}) == issued.raw
    assert api_key_from(headers(), None) is None
    assert principal_from(headers=headers(), query=None) is None


@pytest.mark.parametrize(
    "given",
    [
        {"Authorization": "Bearer sops_unknown"},
        {"X-API-Key": "sops_unknown"},
        {"X-API-Key": "no-prefix"},
    ],
)
def test_a_bad_key_is_refused_and_never_passed_over_for_the_session(given: dict[str, str]) -> None:
    user = UserFactory(username="signed-in", role=Role.ADMIN)
    with pytest.raises(InvalidApiKey, match="Invalid, expired or revoked"):
        principal_from(headers=CaseInsensitiveMapping(given), session_user=user)
    with pytest.raises(InvalidApiKey):
        principal_from(headers=headers(), query={"api_key": "sops_unknown"}, session_user=user)


def test_an_empty_bearer_falls_through_to_the_next_way(issued: IssuedKey) -> None:
    given = headers(Authorization="Bearer  ", X_API_Key=issued.raw)
    principal = principal_from(headers=given)
    assert principal is not None and principal.api_key == issued.key
    assert principal_from(headers=headers(Authorization="Basic dXNlcjpwdw==")) is None


def test_a_key_whose_user_was_deactivated_is_refused(issued: IssuedKey) -> None:
    User.objects.filter(pk=issued.key.user_id).update(is_active=False)
    with pytest.raises(InvalidApiKey):
        principal_from(headers=headers(Authorization=f"Bearer {issued.raw}"))


def test_the_session_user_needs_no_csrf_check_unless_one_is_given() -> None:
    user = UserFactory(username="browser", role=Role.READONLY)
    principal = principal_from(headers=headers(), session_user=user)
    assert principal is not None
    assert principal.user == user and principal.role == Role.READONLY and principal.api_key is None
    assert principal_from(headers=headers(), session_user=user, csrf=lambda: None) == principal


def test_anonymous_or_inactive_session_users_are_nobody() -> None:
    assert principal_from(headers=headers(), session_user=None) is None
    assert principal_from(headers=headers(), session_user=AnonymousUser()) is None
    gone = UserFactory(username="gone", role=Role.ADMIN, is_active=False)
    assert principal_from(headers=headers(), session_user=gone) is None


def test_a_session_failing_the_csrf_check_is_refused_with_its_principal() -> None:
    user = UserFactory(username="browser", role=Role.EXECUTOR)
    with pytest.raises(CsrfRefused) as refused:
        principal_from(headers=headers(), session_user=user, csrf=lambda: "CSRF token missing.")
    assert refused.value.reason == "CSRF token missing."
    assert refused.value.principal.user == user and refused.value.principal.role == Role.EXECUTOR


# -- the CSRF check -----------------------------------------------------------------------------


TOKEN = "t" * 32


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({}, True),
        ({"HTTP_X_CSRFTOKEN": "u" * 32}, True),
        ({"HTTP_X_CSRF_TOKEN": "u" * 32}, True),
        ({"HTTP_X_CSRFTOKEN": TOKEN}, False),
        ({"HTTP_X_CSRF_TOKEN": TOKEN}, False),  # seed 003's X-CSRF-Token
    ],
)
def test_csrf_failure_checks_unsafe_requests_against_the_cookie(extra: dict[str, str], refused: bool) -> None:
    request = RequestFactory().post("/api/run", **extra)
    request.COOKIES[settings.CSRF_COOKIE_NAME] = TOKEN
    request.META["HTTP_HOST"] = "testserver"
    reason = csrf_failure(request)
    assert (reason is not None) == refused, reason


@pytest.mark.parametrize(("sent", "expected"), [("u" * 32, 403), (TOKEN, 302)])
def test_django_views_take_the_seed_003_csrf_header(sent: str, expected: int) -> None:
    # core.middleware.CsrfHeaderAliasMiddleware, before Django's CsrfViewMiddleware.
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="leaving", role=Role.READONLY))
    client.cookies[settings.CSRF_COOKIE_NAME] = TOKEN
    assert client.post("/logout", HTTP_X_CSRF_TOKEN=sent).status_code == expected


def test_csrf_failure_passes_safe_methods() -> None:
    assert csrf_failure(RequestFactory().get("/api/runs")) is None


# -- the REST API ------------------------------------------------------------------------------


def test_rest_api_takes_bearer_and_x_api_key_and_refuses_bad_ones(issued: IssuedKey) -> None:
    client = APIClient()
    assert client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {issued.raw}").status_code == 200
    assert client.get("/api/runs", HTTP_X_API_KEY=issued.raw).status_code == 200
    for bad in ({"HTTP_AUTHORIZATION": "Bearer sops_nope"}, {"HTTP_X_API_KEY": "sops_nope"}):
        response = client.get("/api/runs", **bad)
        assert response.status_code == 401
        assert response.json()["error"] == "authentication_failed"
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_rest_api_takes_no_key_in_the_query(issued: IssuedKey) -> None:
    response = APIClient().get(f"/api/runs?api_key={issued.raw}")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_csrf_token_is_public_even_with_a_stale_key() -> None:
    client = APIClient()
    for extra in ({}, {"HTTP_AUTHORIZATION": "Bearer sops_revoked"}):
        response = client.get("/api/csrf_token", **extra)
        assert response.status_code == 200
        assert len(response.json()["csrf_token"]) >= 32
        assert settings.CSRF_COOKIE_NAME in response.cookies


def test_rest_api_takes_the_seed_003_csrf_header(roots: Path, make_script: Callable[..., Path]) -> None:
    user = UserFactory(username="webuser", role=Role.EXECUTOR)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    script = make_script("job.py", "print(1)\n")
    token = client.get("/api/csrf_token").json()["csrf_token"]
    wrong = client.post("/api/run", {"script_path": str(script)}, format="json", HTTP_X_CSRF_TOKEN="x" * 32)
    assert wrong.status_code == 403 and "CSRF" in wrong.json()["message"]
    accepted = client.post("/api/run", {"script_path": str(script)}, format="json", HTTP_X_CSRF_TOKEN=token)
    assert accepted.status_code == 202
    assert Run.objects.get().created_by == user


def test_a_session_is_refused_when_a_bad_key_comes_with_it() -> None:
    client = APIClient()
    client.force_login(UserFactory(username="both", role=Role.ADMIN))
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs", HTTP_X_API_KEY="sops_nope").status_code == 401
