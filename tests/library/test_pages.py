"""The Library page (``/library/``): signed-in only, and each role gets only the controls it may use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from core.roles import Role
from library.models import DEFAULT_INCLUDE_PATTERNS, ScriptStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# role -> (may launch runs, may curate scripts/tags and scan, may register and remove roots)
CONTROLS = {
    Role.READONLY: (False, False, False),
    Role.EXECUTOR: (True, False, False),
    Role.USER: (True, True, False),
    Role.ADMIN: (True, True, True),
}


def signed_in(role: str, **extra: object) -> Client:
    client = Client()
    client.force_login(UserFactory(username=f"page-{role}", role=role, **extra))
    return client


@pytest.mark.parametrize("path", ["/library/", "/library"])
def test_the_page_sends_anonymous_visitors_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("role", list(CONTROLS))
def test_the_page_renders_for_each_role_with_only_its_controls(role: str, roots: Path) -> None:
    response = signed_in(role).get("/library/")

    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["library/library.html", "dashboard/base.html"]
    assert response.context["nav"] == "library"
    assert response.context["role"] == role
    html = response.content.decode()
    assert '<a href="/library/" class="active" aria-current="page">Library</a>' in html
    assert "js/library.js" in html
    assert "css/library.css" in html
    # The page's scripts call the API with the session: they need the CSRF cookie.
    assert "csrftoken" in response.cookies

    may_run, may_edit, is_admin = CONTROLS[role]
    assert f'data-can-execute="{int(may_run)}"' in html
    assert f'data-can-edit="{int(may_edit)}"' in html
    assert f'data-is-admin="{int(is_admin)}"' in html
    assert ('id="tag-form"' in html) is may_edit
    assert ('data-testid="root-new"' in html) is is_admin
    assert ('id="root-form"' in html) is is_admin
    assert ('id="folder-picker"' in html) is is_admin
    # Everyone browses scripts, reads their details and sees duplicates.
    for always in ('id="scripts-body"', 'id="script-sheet"', 'id="dups-body"', 'id="roots-list"'):
        assert always in html


def test_a_superuser_is_an_admin_on_the_page(roots: Path) -> None:
    response = signed_in(Role.READONLY, is_superuser=True).get("/library/")
    assert response.status_code == 200
    assert response.context["role"] == Role.ADMIN
    assert 'data-testid="root-new"' in response.content.decode()


def test_the_page_names_the_allowed_roots_for_the_empty_state_and_the_picker(roots: Path) -> None:
    response = signed_in(Role.ADMIN).get("/library/")
    html = response.content.decode()

    assert response.context["allowed_roots"] == [str(roots.resolve())]
    start = html.index('<script id="allowed-roots" type="application/json">') + len(
        '<script id="allowed-roots" type="application/json">'
    )
    assert json.loads(html[start : html.index("</script>", start)]) == [str(roots.resolve())]
    # The register form says where a root may live and starts from the default patterns.
    assert f"<code>{roots.resolve()}</code>" in html
    assert "\n".join(DEFAULT_INCLUDE_PATTERNS) in html


def test_the_status_filter_offers_every_lifecycle_status(roots: Path) -> None:
    html = signed_in(Role.READONLY).get("/library/").content.decode()
    for value in ScriptStatus.values:
        assert f'<option value="{value}">{value}</option>' in html


def test_the_runs_page_offers_force_only_to_admins(roots: Path) -> None:
    # The launch form's library part (filled by runs.js for /?script_id=<id>).
    assert 'id="library-force"' in signed_in(Role.ADMIN).get("/?script_id=1").content.decode()
    executor = signed_in(Role.EXECUTOR).get("/?script_id=1").content.decode()
    assert 'id="library-launch"' in executor
    assert 'id="library-force"' not in executor
