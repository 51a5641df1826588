"""GET /api/browse (seed 003): folders inside the allowed roots, nothing outside them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from tests.library.helpers import error, field_error, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(roots: Path, client_for) -> APIClient:
    return client_for(Role.READONLY)


@pytest.fixture
def tree(roots: Path) -> Path:
    write(roots / "b.sh", "echo b\n")
    write(roots / "A.py", "print('a')\n")
    write(roots / "zeta" / "deep.py", "print(1)\n")
    write(roots / "alpha" / ".keep", "")
    return roots


def test_without_a_path_the_allowed_roots_are_listed(
    reader: APIClient, tree: Path, settings, tmp_path: Path
) -> None:
    settings.ALLOWED_ROOTS = [tree, tmp_path / "not-created"]
    body = reader.get("/api/browse").json()
    assert body["success"] is True and body["path"] is None and body["parent"] is None
    assert [(i["path"], i["type"]) for i in body["items"]] == [(str(tree.resolve()), "folder")]
    assert isinstance(body["items"][0]["mtime"], float)


def test_a_folder_is_listed_folders_first_then_files_by_name(reader: APIClient, tree: Path) -> None:
    body = reader.get("/api/browse", {"path": str(tree)}).json()
    assert body["success"] is True
    assert body["path"] == str(tree.resolve()) and body["parent"] is None  # an allowed root
    assert [(i["name"], i["type"]) for i in body["items"]] == [
        ("alpha", "folder"),
        ("zeta", "folder"),
        ("A.py", "file"),
        ("b.sh", "file"),
    ]
    a_py = body["items"][2]
    assert a_py["path"] == str(tree.resolve() / "A.py") and a_py["size"] == len("print('a')\n")
    assert a_py["mtime"] == pytest.approx(os.stat(tree / "A.py").st_mtime)
    assert "size" not in body["items"][0]


def test_a_subfolder_has_its_parent(reader: APIClient, tree: Path) -> None:
    body = reader.get("/api/browse/", {"path": str(tree / "zeta")}).json()
    assert body["parent"] == str(tree.resolve())
    assert [i["name"] for i in body["items"]] == ["deep.py"]


@pytest.mark.parametrize("path", ["relative/path", "zeta", "./zeta"])
def test_a_relative_path_is_a_400(reader: APIClient, tree: Path, path: str) -> None:
    assert "absolute" in field_error(reader.get("/api/browse", {"path": path}), "path")


def test_a_nul_byte_is_a_400(reader: APIClient, tree: Path) -> None:
    error(reader.get(f"/api/browse?path={tree}%00/x"), 400)


def test_a_file_is_not_a_folder(reader: APIClient, tree: Path) -> None:
    assert "not a folder" in field_error(reader.get("/api/browse", {"path": str(tree / "A.py")}), "path")


@pytest.mark.parametrize("path", ["/", "/etc", "{tree}/..", "{tree}/zeta/../../x"])
def test_outside_the_allowed_roots_is_a_403(reader: APIClient, tree: Path, path: str) -> None:
    body = error(reader.get("/api/browse", {"path": path.format(tree=tree)}), 403, "permission_denied")
    assert "outside the allowed roots" in body["message"]


def test_a_missing_folder_is_a_404(reader: APIClient, tree: Path) -> None:
    error(reader.get("/api/browse", {"path": str(tree / "nope")}), 404, "not_found")


def test_symlinks_leading_out_are_neither_listed_nor_followed(
    reader: APIClient, tree: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.txt", "secret\n")
    (tree / "escape").symlink_to(outside, target_is_directory=True)
    (tree / "escape.txt").symlink_to(outside / "secret.txt")
    (tree / "inside").symlink_to(tree / "zeta", target_is_directory=True)
    (tree / "broken").symlink_to(tree / "nothing-here")

    listed = reader.get("/api/browse", {"path": str(tree)}).json()

    names = {i["name"]: i["type"] for i in listed["items"]}
    assert "escape" not in names and "escape.txt" not in names and "broken" not in names
    assert names["inside"] == "folder"
    error(reader.get("/api/browse", {"path": str(tree / "escape")}), 403)
    error(reader.get("/api/browse", {"path": str(tree / "escape" / "secret.txt")}), 403)
    via_link = reader.get("/api/browse", {"path": str(tree / "inside")}).json()
    assert via_link["path"] == str((tree / "zeta").resolve()) and via_link["items"][0]["name"] == "deep.py"


def test_an_unreadable_folder_is_a_403(
    reader: APIClient, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    def refuse(path: object) -> object:
        if str(path) == str(tree.resolve()):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)  # type: ignore[call-overload]

    # Running as root, a chmod 000 folder would still be readable: simulate the EACCES.
    monkeypatch.setattr(os, "scandir", refuse)
    assert "may not list" in error(reader.get("/api/browse", {"path": str(tree)}), 403)["message"]


def test_anonymous_callers_are_refused(tree: Path) -> None:
    error(APIClient().get("/api/browse", {"path": str(tree)}), 401)


def test_a_huge_folder_is_listed_folders_first_and_capped(
    roots: Path, client_for: Callable[[str], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from library import selectors

    monkeypatch.setattr(selectors, "MAX_ITEMS", 5)
    for i in range(8):
        (roots / f"file{i}.py").write_text("")
    (roots / "zzz-folder").mkdir()

    body = client_for("readonly").get("/api/browse", {"path": str(roots)}).json()

    assert (body["total"], body["truncated"]) == (9, True)
    assert len(body["items"]) == 5
    assert body["items"][0] == {**body["items"][0], "name": "zzz-folder", "type": "folder"}
