"""Paths the kernel cannot take (overlong, an overlong name, NUL) are a 400 naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.paths import NAME_MAX, PATH_MAX, path_problem
from core.roles import Role

pytestmark = pytest.mark.django_db


def bad_paths(root: Path) -> dict[str, str]:
    return {
        "long-name": f"{root}/{'a' * 5000}/",
        "name-over-NAME_MAX": f"{root}/{'b' * (NAME_MAX + 1)}",
        "over-PATH_MAX": f"{root}/" + "/".join(["c" * 200] * (PATH_MAX // 200 + 1)),
        "nul": f"{root}/x\x00y",
    }


@pytest.fixture
def admin(client_for) -> APIClient:
    return client_for(Role.ADMIN)


@pytest.mark.parametrize("case", ["long-name", "name-over-NAME_MAX", "over-PATH_MAX"])
def test_browse_answers_400_naming_path(admin: APIClient, roots: Path, case: str) -> None:
    response = admin.get("/api/browse", {"path": bad_paths(roots)[case]})

    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "validation_error"
    assert "path" in body["details"]
    assert "too long" in body["message"]


def test_browse_still_lists_a_deep_but_legal_folder(admin: APIClient, roots: Path) -> None:
    deep = roots / ("d" * NAME_MAX)
    deep.mkdir()

    assert admin.get("/api/browse", {"path": str(deep)}).status_code == 200


@pytest.mark.parametrize("case", ["long-name", "name-over-NAME_MAX", "over-PATH_MAX", "nul"])
def test_a_folder_root_answers_400_naming_path(admin: APIClient, roots: Path, case: str) -> None:
    response = admin.post(
        "/api/library/folder-roots", {"name": "r", "path": bad_paths(roots)[case]}, format="json"
    )

    assert response.status_code == 400, response.content[:300]
    assert "path" in response.json()["details"]


def test_path_problem_names_each_limit() -> None:
    assert path_problem("/srv/ok.sh") is None
    assert "NUL" in (path_problem("/srv/a\x00b") or "")
    assert "too long" in (path_problem("/" + "a" * (NAME_MAX + 1)) or "")
    assert "too long" in (path_problem("/a" * PATH_MAX) or "")
    assert "cannot be encoded" in (path_problem("/srv/\ud800") or "")
