"""``GET /api/audit``: admins only, filters, pages, CSV; the admin site shows it read-only."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import record
from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def backdate(event: AuditEvent, days: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET at = %s WHERE id = %s",
            [timezone.now() - timedelta(days=days), event.pk],
        )


@pytest.fixture
def admin(client_for: Callable[[str], APIClient]) -> APIClient:
    client = client_for(Role.ADMIN)
    AuditEvent.objects.filter(action="api_key.create")._raw_delete(connection.alias)  # the fixtures' own keys
    return client


@pytest.mark.parametrize("role", [Role.READONLY, Role.EXECUTOR, Role.USER])
def test_only_admins_read_the_audit_log(client_for: Callable[[str], APIClient], role: str) -> None:
    client = client_for(role)
    assert client.get("/api/audit").status_code == 403
    assert client.get("/api/audit/export").status_code == 403
    assert client.get("/api/audit?format=csv").status_code == 403


def test_anonymous_callers_are_refused() -> None:
    assert APIClient().get("/api/audit").status_code in (401, 403)
    assert APIClient().get("/api/audit/export").status_code in (401, 403)


def test_the_api_cannot_write_the_log(admin: APIClient) -> None:
    event = record(action="test.thing")
    for method in ("post", "put", "patch", "delete"):
        assert getattr(admin, method)("/api/audit", {"action": "x"}, format="json").status_code == 405
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


def test_filters(admin: APIClient) -> None:
    alice = UserFactory(username="alice", role=Role.USER)
    launch = record(action="run.launch", object_type="run", object_id="r1", actor=alice)
    record(action="run.stop", object_type="run", object_id="r1")
    record(action="tag.create", object_type="tag", object_id="7", actor=alice)
    old = record(action="run.delete", object_type="run", object_id="r0")
    backdate(old, 10)

    def ids(**query: str) -> list[int]:
        response = admin.get("/api/audit", query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert len(ids()) == 4
    assert ids(actor="alice") == ids(actor=str(alice.pk)) and len(ids(actor="alice")) == 2
    assert ids(action="run.launch") == [launch.pk]
    assert len(ids(action="run.")) == 3  # a prefix
    assert len(ids(object_type="run", object_id="r1")) == 2
    assert ids(until=(timezone.now() - timedelta(days=5)).date().isoformat()) == [old.pk]
    assert old.pk not in ids(since=(timezone.now() - timedelta(days=1)).isoformat())
    row = admin.get("/api/audit", {"action": "run.launch"}).json()["results"][0]
    assert (row["actor"], row["actor_id"], row["object_type"], row["object_id"]) == (
        "alice",
        alice.pk,
        "run",
        "r1",
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"format": "xml"}, "format"),
        ({"actor": "x" * 300}, "actor"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(admin: APIClient, query: dict[str, str], field: str) -> None:
    response = admin.get("/api/audit", query)
    assert response.status_code == 400
    body = response.json()
    assert field in body["details"] and field in body["message"]


def test_pages(admin: APIClient) -> None:
    for i in range(7):
        record(action="test.page", object_id=str(i))
    first = admin.get("/api/audit", {"page_size": 3}).json()
    assert first["count"] == 7 and len(first["results"]) == 3 and first["next"] and first["previous"] is None
    assert [row["object_id"] for row in first["results"]] == ["6", "5", "4"]  # newest first
    last = admin.get("/api/audit", {"page_size": 3, "page": 3}).json()
    assert [row["object_id"] for row in last["results"]] == ["0"]
    assert admin.get("/api/audit", {"page": 9}).status_code == 404


@pytest.mark.parametrize("url", ["/api/audit?format=csv", "/api/audit/export"])
def test_csv_export_streams_the_filtered_events(admin: APIClient, url: str) -> None:
    record(
        action="run.launch", object_type="run", object_id="r1", summary="=cmd|' /C calc'!A0", data={"k": 1}
    )
    record(action="tag.create", object_type="tag", object_id="7")
    response = admin.get(url + ("&" if "?" in url else "?") + "action=run.launch")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["at", "actor", "action", "object_type", "object_id"]
    assert len(rows) == 2
    assert rows[1][2:5] == ["run.launch", "run", "r1"]
    assert rows[1][5] == "'=cmd|' /C calc'!A0"  # never a formula in a spreadsheet
    assert rows[1][-1] == '{"k": 1}'


def test_a_bad_filter_on_the_export_is_a_400_too(admin: APIClient) -> None:
    response = admin.get("/api/audit/export", {"since": "nope"})
    assert response.status_code == 400
    assert "since" in response.json()["details"]
    response = admin.get("/api/audit/export", {"format": "json"})  # the export is CSV
    assert response.status_code == 400
    assert "format" in response.json()["details"]


# -- the admin site -------------------------------------------------------------------------


def test_the_admin_shows_the_log_read_only() -> None:
    superuser = UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    event = record(action="test.thing", summary="kept")
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200  # a view, no form
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert (
        client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"summary": "changed"}).status_code == 403
    )
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).summary == "kept"

    from django.contrib.admin import site

    model_admin = site._registry[AuditEvent]
    request = type("R", (), {"user": superuser})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
