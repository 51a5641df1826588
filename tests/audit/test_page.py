"""The Audit page: admins only, and its nav link only for them."""

from __future__ import annotations

import pytest
from django.test import Client

from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def signed_in(role: str) -> Client:
    client = Client()
    client.force_login(UserFactory(username=f"{role}-page", role=role))
    return client


def test_admins_get_the_page_and_the_link() -> None:
    client = signed_in(Role.ADMIN)
    page = client.get("/audit/")
    assert page.status_code == 200
    assert b'src="/static/js/audit.js"' in page.content or b"js/audit.js" in page.content
    assert b'data-testid="nav-audit"' in client.get("/").content


@pytest.mark.parametrize("role", [Role.READONLY, Role.EXECUTOR, Role.USER])
def test_others_get_a_403_and_no_link(role: str) -> None:
    client = signed_in(role)
    assert client.get("/audit/").status_code == 403
    assert b'data-testid="nav-audit"' not in client.get("/").content


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get("/audit/")
    assert response.status_code == 302 and "/login" in response["Location"]
