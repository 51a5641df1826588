"""The one router of the API: optional trailing slash, allowed methods only, bulk DELETE."""

from __future__ import annotations

import pytest
from django.urls import resolve
from rest_framework.test import APIClient

from core.roles import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/runs", "/api/runs/", "/api/library/tags", "/api/library/tags/"])
def test_the_trailing_slash_is_optional(client_for, path: str) -> None:
    assert client_for(Role.READONLY).get(path).status_code == 200


def test_a_viewset_that_allows_no_put_gets_no_put_route() -> None:
    match = resolve("/api/library/tags/1")
    assert set(match.func.actions) - {"head"} == {"get", "patch", "delete"}  # type: ignore[attr-defined]
    assert "put" in resolve("/api/scheduler/tasks/1").func.actions  # type: ignore[attr-defined]


def test_delete_on_a_list_route_is_the_bulk_destroy(client_for) -> None:
    client: APIClient = client_for(Role.ADMIN)
    response = client.delete("/api/runs", data=[], format="json")
    assert response.status_code == 400
    assert response.json()["details"]["ids"] == ["Send a non-empty JSON list of run ids."]
    assert resolve("/api/runs").func.actions["delete"] == "bulk_destroy"  # type: ignore[attr-defined]
    assert "delete" not in resolve("/api/library/tags").func.actions  # type: ignore[attr-defined]
