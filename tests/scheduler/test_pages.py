"""The Scheduler page (``/scheduler/``): signed-in only, and each role gets only the controls it may use."""

from __future__ import annotations

import pytest
from django.test import Client

from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# role -> (may run tasks and fire events, may create/edit/pause/delete tasks)
CONTROLS = {
    Role.READONLY: (False, False),
    Role.EXECUTOR: (True, False),
    Role.USER: (True, True),
    Role.ADMIN: (True, True),
}


def signed_in(role: str) -> Client:
    client = Client()
    client.force_login(UserFactory(username=f"page-{role}", role=role))
    return client


@pytest.mark.parametrize("path", ["/scheduler/", "/scheduler"])
def test_the_page_sends_anonymous_visitors_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("role", list(CONTROLS))
def test_the_page_renders_for_each_role_with_only_its_controls(role: str) -> None:
    response = signed_in(role).get("/scheduler/")

    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["scheduler/scheduler.html", "dashboard/base.html"]
    assert response.context["nav"] == "scheduler"
    assert response.context["role"] == role
    html = response.content.decode()
    assert '<a href="/scheduler/" class="active" aria-current="page">Scheduler</a>' in html
    assert "js/scheduler.js" in html
    assert "css/scheduler.css" in html
    # The page's scripts call the API with the session: they need the CSRF cookie.
    assert "csrftoken" in response.cookies

    may_run, may_manage = CONTROLS[role]
    assert f'data-can-run="{int(may_run)}"' in html
    assert f'data-can-manage="{int(may_manage)}"' in html
    assert ('data-testid="fire-event"' in html) is may_run
    assert ('data-testid="new-task"' in html) is may_manage
    assert ('id="task-form"' in html) is may_manage
    # Everyone may read a task's details and history.
    assert 'id="task-drawer"' in html


def test_a_superuser_is_an_admin_on_the_page() -> None:
    client = Client()
    client.force_login(UserFactory(username="page-root", role=Role.READONLY, is_superuser=True))
    response = client.get("/scheduler/")
    assert response.status_code == 200
    assert response.context["role"] == Role.ADMIN
    assert 'data-testid="new-task"' in response.content.decode()


def test_the_form_offers_the_policies_the_api_accepts() -> None:
    from scheduler.models import MisfirePolicy, OverlapPolicy

    html = signed_in(Role.USER).get("/scheduler/").content.decode()
    for value in [*OverlapPolicy.values, *MisfirePolicy.values]:
        assert f'<option value="{value}">' in html
