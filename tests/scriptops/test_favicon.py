"""A favicon everywhere: dashboard pages, the admin, the API docs, the browsable API,
error pages, and /favicon.ico for whatever names none."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ICON = "/static/img/favicon.svg"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True, role="admin"))
    return client


@pytest.mark.parametrize("path", ["/", "/admin/", "/api/docs/", "/api/runs", "/no-such-page/"])
def test_every_kind_of_page_names_the_favicon(admin_client: Client, path: str) -> None:
    response = admin_client.get(path, HTTP_ACCEPT="text/html")
    assert ICON in response.content.decode(), path


def test_the_sign_in_pages_name_it_and_the_admin_is_branded() -> None:
    assert ICON in Client().get("/login/").content.decode()
    page = Client().get("/admin/login/").content.decode()
    assert "ScriptOps administration" in page and ICON in page


def test_favicon_ico_leads_to_the_svg() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == ICON
