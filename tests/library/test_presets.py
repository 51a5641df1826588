"""Presets: named run options of a library script, a person's own or shared by an admin;
checked as a launch is; environment values never shown; a launch merges them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Preset, Script
from runs.models import Run
from tests.factories import UserFactory
from tests.library.helpers import scanned_root, write

pytestmark = pytest.mark.django_db

TOOL = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--count", type=int, default=1)
print("count", p.parse_args().count, "token", os.environ.get("TOKEN"))
"""


@pytest.fixture
def tool(roots: Path) -> Script:
    write(roots / "team" / "tool.py", TOOL)
    scanned_root(roots / "team")
    return Script.objects.get(name="tool.py")


@pytest.fixture
def clients(roots: Path, client_for: Callable[[str], APIClient]) -> dict[str, APIClient]:
    return {role: client_for(role) for role in (Role.READONLY, Role.EXECUTOR, Role.ADMIN)}


def url(script: Script) -> str:
    return f"/api/library/scripts/{script.pk}/presets"


def create(client: APIClient, script: Script, **body: Any) -> Any:
    return client.post(
        url(script), {"name": "nightly", "options": {"args": ["--count", "3"]}, **body}, format="json"
    )


def test_an_executor_saves_a_preset_and_sees_it_with_the_shared_ones(
    clients: dict[str, APIClient], tool: Script
) -> None:
    mine = create(
        clients[Role.EXECUTOR],
        tool,
        options={"args": "--count 3", "timeout": 30, "env_vars": {"TOKEN": "s3cret"}},
    )
    assert mine.status_code == 201, mine.content
    body = mine.json()
    assert body["options"] == {"args": ["--count", "3"], "timeout": 30, "env_vars": {"TOKEN": "********"}}
    assert (body["shared"], body["owner"], body["can_change"]) == (False, "executor-user", True)
    shared = create(clients[Role.ADMIN], tool, name="team default", shared=True)
    assert shared.status_code == 201, shared.content

    listed = clients[Role.EXECUTOR].get(url(tool)).json()["results"]
    assert [(p["name"], p["shared"], p["can_change"]) for p in listed] == [
        ("nightly", False, True),
        ("team default", True, False),
    ]
    # Another user does not see the executor's own preset.
    others = clients[Role.READONLY].get(url(tool)).json()["results"]
    assert [p["name"] for p in others] == ["team default"]
    assert "s3cret" not in str(clients[Role.EXECUTOR].get(f"/api/library/presets/{body['id']}").content)


def test_presets_are_checked_as_a_launch_is(clients: dict[str, APIClient], tool: Script) -> None:
    executor = clients[Role.EXECUTOR]
    bad_args = create(executor, tool, options={"args": ["--count", "many"]})
    assert bad_args.status_code == 400
    assert "invalid int value: 'many'" in bad_args.json()["details"]["args.count"][0]
    unknown = create(executor, tool, options={"script_path": "/etc/passwd"})
    assert unknown.status_code == 400 and "Not a preset option: script_path" in unknown.json()["message"]
    assert create(executor, tool, options={"timeout": -1}).status_code == 400
    assert create(executor, tool, name="  ").status_code == 400
    assert create(executor, tool).status_code == 201
    again = create(executor, tool, name="NIGHTLY")
    assert again.status_code == 400 and "already a preset" in again.json()["message"]
    assert create(executor, tool, shared=True).status_code == 403  # sharing is for admins
    assert create(clients[Role.READONLY], tool).status_code == 403
    assert (
        clients[Role.EXECUTOR].post("/api/library/scripts/999999/presets", {}, format="json").status_code
        == 404
    )


def test_only_the_owner_or_an_admin_changes_a_preset(
    clients: dict[str, APIClient], tool: Script, client_for: Any
) -> None:
    preset = create(
        clients[Role.EXECUTOR], tool, options={"env_vars": {"TOKEN": "s3cret", "MODE": "a"}}
    ).json()
    path = f"/api/library/presets/{preset['id']}"
    # A masked value keeps the stored one; a new value replaces it.
    changed = clients[Role.EXECUTOR].patch(
        path, {"name": "renamed", "options": {"env_vars": {"TOKEN": "********", "MODE": "b"}}}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert Preset.objects.get(pk=preset["id"]).options["env_vars"] == {"TOKEN": "s3cret", "MODE": "b"}
    shared = create(clients[Role.ADMIN], tool, name="shared", shared=True).json()
    assert (
        clients[Role.EXECUTOR]
        .patch(f"/api/library/presets/{shared['id']}", {"name": "x"}, format="json")
        .status_code
        == 403
    )
    assert clients[Role.EXECUTOR].delete(f"/api/library/presets/{shared['id']}").status_code == 403
    assert clients[Role.READONLY].get(path).status_code == 404  # not theirs, not shared
    assert clients[Role.ADMIN].delete(f"/api/library/presets/{shared['id']}").status_code == 204
    assert clients[Role.EXECUTOR].delete(path).status_code == 204
    assert not Preset.objects.exists()


def test_a_launch_with_a_preset_merges_its_options_under_the_callers(
    clients: dict[str, APIClient], tool: Script
) -> None:
    preset = create(
        clients[Role.EXECUTOR],
        tool,
        options={"args": ["--count", "3"], "timeout": 30, "env_vars": {"TOKEN": "s3cret"}},
    ).json()
    launched = clients[Role.EXECUTOR].post(
        f"/api/library/presets/{preset['id']}/run",
        {"args": ["--count", "5"], "env_vars": {"EXTRA": "1"}},
        format="json",
    )
    assert launched.status_code == 202, launched.content
    record = launched.json()
    assert record["args"] == ["--count", "5"] and record["timeout"] == 30
    assert record["env_vars"] == {"TOKEN": "********", "EXTRA": "********"}
    assert record["script"] == tool.pk and record["source"] == "library"
    run = Run.objects.get(pk=record["id"])
    assert run.env_vars == {"TOKEN": "s3cret", "EXTRA": "1"}
    # django-q2 runs synchronously in the unit tests: the script saw the preset's secret.
    logs = clients[Role.EXECUTOR].get(f"/api/runs/{record['id']}/logs").content.decode()
    assert "count 5 token s3cret" in logs

    refused = clients[Role.EXECUTOR].post(
        f"/api/library/presets/{preset['id']}/run", {"args": ["--count", "x"]}, format="json"
    )
    assert refused.status_code == 400
    plan = clients[Role.EXECUTOR].post(
        f"/api/library/presets/{preset['id']}/run", {"dry_run": True}, format="json"
    )
    assert plan.status_code == 200 and plan.json()["preset"] == preset["id"]
    forbidden = clients[Role.EXECUTOR].post(
        f"/api/library/presets/{preset['id']}/run", {"script_path": "/etc/passwd"}, format="json"
    )
    assert forbidden.status_code == 400


def test_the_admin_lists_presets_with_environment_values_masked(tool: Script) -> None:
    user = UserFactory(username="root", is_superuser=True, is_staff=True, role="admin")
    preset = Preset.objects.create(
        script=tool, name="p", owner=user, options={"env_vars": {"TOKEN": "s3cret"}}
    )
    client = Client()
    client.force_login(user)
    page = client.get(f"/admin/library/preset/{preset.pk}/change/")
    assert page.status_code == 200
    assert "s3cret" not in page.content.decode() and "********" in page.content.decode()
