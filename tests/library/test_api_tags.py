"""Tags: unique names whatever their case, validated colours, script counts, attach and
detach (audited), deleting a tag detaches it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from library.models import ScriptChange, Tag
from tests.library.factories import ScriptFactory, TagFactory
from tests.library.helpers import error, field_error

pytestmark = pytest.mark.django_db

TAGS = "/api/library/tags"


@pytest.fixture
def client(roots: Path, client_for) -> APIClient:
    return client_for(Role.USER)


def test_create_a_tag(client: APIClient) -> None:
    response = client.post(
        TAGS, {"name": " Nightly ", "color": "#3B82F6", "description": "Runs at night"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["color"], body["description"]) == ("Nightly", "#3b82f6", "Runs at night")
    assert body["script_count"] == 0 and body["created_at"]
    assert client.post(TAGS, {"name": "plain"}, format="json").json()["color"] == "#6b7280"


@pytest.mark.parametrize("name", ["nightly", "NIGHTLY", "Nightly", " nightly "])
def test_names_are_unique_whatever_their_case(client: APIClient, name: str) -> None:
    TagFactory(name="Nightly")
    assert "already exists" in field_error(client.post(TAGS, {"name": name}, format="json"), "name")
    assert Tag.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "color": "blue"}, "color"),
        ({"name": "x", "color": "#12345"}, "color"),
        ({"name": "x", "color": "#12345g"}, "color"),
        ({"name": "x", "color": "#1234567"}, "color"),
        ({"name": "x", "color": None}, "color"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"color": "#000000"}, "name"),
        ({"name": "x", "script_count": 4}, "script_count"),
        ({"name": "x", "colour": "#000000"}, "colour"),
    ],
)
def test_bad_tags_are_400s_naming_the_field(client: APIClient, body: dict[str, object], field: str) -> None:
    assert field_error(client.post(TAGS, body, format="json"), field)
    assert not Tag.objects.exists()


def test_list_with_script_counts(client: APIClient) -> None:
    ops, web = TagFactory(name="ops"), TagFactory(name="Web")
    for script in (ScriptFactory(), ScriptFactory()):
        script.tags.add(ops)
    TagFactory(name="unused")

    body = client.get(TAGS).json()

    assert body["count"] == 3
    assert [(t["name"], t["script_count"]) for t in body["results"]] == [
        ("ops", 2),
        ("unused", 0),
        ("Web", 0),
    ]
    assert client.get(f"{TAGS}/{ops.pk}").json()["script_count"] == 2
    by_count = client.get(TAGS, {"ordering": "-script_count"}).json()["results"]
    assert by_count[0]["name"] == "ops"
    assert [t["name"] for t in client.get(TAGS, {"name": "WE"}).json()["results"]] == ["Web"]
    assert web.pk in [t["id"] for t in client.get(TAGS).json()["results"]]


def test_patch_a_tag(client: APIClient) -> None:
    tag = TagFactory(name="ops")
    TagFactory(name="web")
    url = f"{TAGS}/{tag.pk}"
    response = client.patch(url, {"name": "OPS", "color": "#ABCDEF"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["color"]) == ("OPS", "#abcdef")
    assert "already exists" in field_error(client.patch(url, {"name": "WEB"}, format="json"), "name")
    assert field_error(client.patch(url, {"color": "red"}, format="json"), "color")
    tag.refresh_from_db()
    assert (tag.name, tag.color) == ("OPS", "#abcdef")


def test_deleting_a_tag_detaches_it_from_its_scripts(client: APIClient) -> None:
    tag, keep = TagFactory(name="ops"), TagFactory(name="keep")
    scripts = [ScriptFactory(), ScriptFactory()]
    for script in scripts:
        script.tags.add(tag, keep)

    response = client.delete(f"{TAGS}/{tag.pk}")

    assert response.status_code == 200 and response.json() == {"deleted": True, "detached_from": 2}
    assert not Tag.objects.filter(pk=tag.pk).exists()
    for script in scripts:
        assert list(script.tags.all()) == [keep]
        entry = ScriptChange.objects.get(script=script)
        assert entry.action == "tag_detached" and entry.changes["tag"] == "ops"
        assert entry.user.username == "user-user"
    assert error(client.get(f"{TAGS}/{tag.pk}"), 404)


def test_attach_and_detach_answer_the_scripts_tags(client: APIClient) -> None:
    script = ScriptFactory()
    ops, web = TagFactory(name="ops", color="#111111"), TagFactory(name="web")
    base = f"/api/library/scripts/{script.pk}/tags"

    assert client.post(f"{base}/{web.pk}").json() == {
        "tags": [{"id": web.pk, "name": "web", "color": "#3b82f6"}]
    }
    both = client.post(f"{base}/{ops.pk}/")
    assert both.status_code == 200 and [t["name"] for t in both.json()["tags"]] == ["ops", "web"]
    assert client.post(f"{base}/{ops.pk}").status_code == 200  # again: nothing changes
    assert ScriptChange.objects.filter(script=script, action="tag_attached").count() == 2

    left = client.delete(f"{base}/{ops.pk}")
    assert left.status_code == 200 and left.json()["tags"] == [
        {"id": web.pk, "name": "web", "color": "#3b82f6"}
    ]
    assert client.delete(f"{base}/{ops.pk}").status_code == 200
    assert ScriptChange.objects.filter(script=script, action="tag_detached").count() == 1
    assert list(script.tags.all()) == [web]


def test_attach_to_unknown_scripts_or_tags_is_404(client: APIClient) -> None:
    script, tag = ScriptFactory(), TagFactory()
    error(client.post(f"/api/library/scripts/{script.pk}/tags/999"), 404)
    error(client.post(f"/api/library/scripts/999/tags/{tag.pk}"), 404)
    error(client.delete(f"/api/library/scripts/{script.pk}/tags/999"), 404)


def test_readers_and_executors_cannot_change_tags(client_for, roots: Path) -> None:
    script, tag = ScriptFactory(), TagFactory()
    for role in (Role.READONLY, Role.EXECUTOR):
        client = client_for(role)
        error(client.post(TAGS, {"name": "new"}, format="json"), 403)
        error(client.patch(f"{TAGS}/{tag.pk}", {"name": "new"}, format="json"), 403)
        error(client.delete(f"{TAGS}/{tag.pk}"), 403)
        error(client.post(f"/api/library/scripts/{script.pk}/tags/{tag.pk}"), 403)
        assert client.get(TAGS).status_code == 200
    assert not script.tags.exists() and Tag.objects.count() == 1
