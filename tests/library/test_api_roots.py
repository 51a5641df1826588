"""Folder roots over the API: register (admins, inside the allowed roots), list, rename,
delete (the files stay), scan (202, joined), poll a scan, the scan history."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from library.models import FolderRoot, Scan, ScanState, Script
from tests.library.factories import ScanFactory
from tests.library.helpers import error, field_error, scan_now, scanned_root, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(roots: Path, client_for) -> APIClient:
    return client_for(Role.ADMIN)


@pytest.fixture
def tree(roots: Path) -> Path:
    base = roots / "team"
    write(base / "hello.py", '"""Say hello."""\nprint("hi")\n')
    write(base / "deploy" / "push.sh", "#!/bin/bash\n# Push.\necho push\n")
    return base


def test_an_admin_registers_a_root_and_gets_it_back(admin: APIClient, tree: Path) -> None:
    response = admin.post(
        "/api/library/folder-roots",
        {"name": "team", "path": str(tree), "include_patterns": ["*.py"], "recursive": False},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "team" and body["path"] == str(tree.resolve())
    assert body["include_patterns"] == ["*.py"] and body["recursive"] is False
    assert body["script_count"] == 0 and body["last_scan"] is None and body["active_scan"] is None
    assert FolderRoot.objects.get(pk=body["id"]).created_by.username == "admin-user"


def test_the_registered_path_is_the_real_path(admin: APIClient, tree: Path, roots: Path) -> None:
    (roots / "alias").symlink_to(tree, target_is_directory=True)
    response = admin.post(
        "/api/library/folder-roots", {"name": "a", "path": str(roots / "alias")}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["path"] == str(tree.resolve())


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "path": "relative/dir"}, "path", "not an absolute path"),
        ({"name": "x", "path": "/etc"}, "path", "outside the allowed roots"),
        ({"name": "x", "path": "{tree}/nope"}, "path", "not an existing folder"),
        ({"name": "x", "path": "{tree}/hello.py"}, "path", "not an existing folder"),
        ({"name": "x"}, "path", "required"),
        ({"path": "{tree}"}, "name", "required"),
        ({"name": "", "path": "{tree}"}, "name", "blank"),
        ({"name": "x", "path": "{tree}", "include_patterns": "*.py"}, "include_patterns", "list"),
        ({"name": "x", "path": "{tree}", "exclude_patterns": [""]}, "exclude_patterns", "blank"),
        ({"name": "x", "path": "{tree}", "colour": "red"}, "colour", "Unknown"),
        ({"name": "x", "path": "{tree}", "script_count": 3}, "script_count", "read-only"),
    ],
)
def test_bad_roots_are_400s_naming_the_field(
    admin: APIClient, tree: Path, body: dict[str, object], field: str, message: str
) -> None:
    sent = {k: v.format(tree=tree) if isinstance(v, str) else v for k, v in body.items()}
    response = admin.post("/api/library/folder-roots", sent, format="json")
    assert message in field_error(response, field)
    assert not FolderRoot.objects.exists()


def test_a_path_or_name_registered_twice_is_refused(admin: APIClient, tree: Path) -> None:
    assert (
        admin.post("/api/library/folder-roots", {"name": "a", "path": str(tree)}, format="json").status_code
        == 201
    )
    again = admin.post("/api/library/folder-roots", {"name": "b", "path": str(tree)}, format="json")
    assert "already registered" in field_error(again, "path")
    other = tree / "deploy"
    same_name = admin.post("/api/library/folder-roots", {"name": "a", "path": str(other)}, format="json")
    assert "already exists" in field_error(same_name, "name")


@pytest.mark.parametrize("role", [Role.READONLY, Role.EXECUTOR, Role.USER])
def test_only_admins_register_change_or_delete_roots(client_for, tree: Path, role: str) -> None:
    client = client_for(role)
    root = scanned_root(tree)
    assert error(
        client.post("/api/library/folder-roots", {"name": "x", "path": str(tree)}, format="json"), 403
    )
    assert error(client.patch(f"/api/library/folder-roots/{root.pk}", {"name": "y"}, format="json"), 403)
    assert error(client.delete(f"/api/library/folder-roots/{root.pk}"), 403)
    assert client.get(f"/api/library/folder-roots/{root.pk}").status_code == 200
    root.refresh_from_db()
    assert root.name == "team"


def test_list_shows_counts_and_the_last_and_active_scans(admin: APIClient, tree: Path, roots: Path) -> None:
    root = scanned_root(tree)
    Script.objects.filter(name="hello.py").update(missing_since=timezone.now())
    active = ScanFactory(root=root, state=ScanState.RUNNING, finished_at=None, phase="reading", files_total=4)
    empty = FolderRoot.objects.create(name="empty", path=str(roots))

    body = admin.get("/api/library/folder-roots").json()

    assert body["count"] == 2 and set(body) == {"count", "next", "previous", "results"}
    by_name = {r["name"]: r for r in body["results"]}
    team = by_name["team"]
    assert (team["script_count"], team["missing_count"]) == (2, 1)
    assert team["last_scan"]["state"] == "completed" and team["last_scan"]["files_added"] == 2
    assert team["active_scan"]["id"] == str(active.pk) and team["active_scan"]["progress"] == 0
    assert by_name["empty"]["id"] == empty.pk
    assert by_name["empty"]["last_scan"] is None and by_name["empty"]["script_count"] == 0
    detail = admin.get(f"/api/library/folder-roots/{root.pk}").json()
    assert detail["active_scan"]["id"] == str(active.pk)
    assert detail["last_scan"]["id"] == team["last_scan"]["id"]


def test_patch_renames_and_changes_patterns_but_never_the_path(admin: APIClient, tree: Path) -> None:
    root = scanned_root(tree)
    url = f"/api/library/folder-roots/{root.pk}"

    response = admin.patch(url, {"name": "renamed", "exclude_patterns": ["deploy"]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "renamed" and response.json()["exclude_patterns"] == ["deploy"]
    assert response.json()["script_count"] == 2
    assert "cannot change" in field_error(
        admin.patch(url, {"path": str(tree / "deploy")}, format="json"), "path"
    )
    assert admin.patch(url, {"path": root.path}, format="json").status_code == 200  # unchanged is fine
    assert "Unknown" in field_error(admin.patch(url, {"bogus": 1}, format="json"), "bogus")
    FolderRoot.objects.create(name="other", path=str(tree / "deploy"))
    assert "already exists" in field_error(admin.patch(url, {"name": "other"}, format="json"), "name")


def test_delete_removes_the_root_and_its_scripts_and_keeps_the_files(admin: APIClient, tree: Path) -> None:
    root = scanned_root(tree)

    response = admin.delete(f"/api/library/folder-roots/{root.pk}")

    assert response.status_code == 200
    assert response.json() == {"deleted": True, "scripts_removed": 2}
    assert not FolderRoot.objects.exists() and not Script.objects.exists()
    assert (tree / "hello.py").read_text().startswith('"""Say hello.')
    assert (tree / "deploy" / "push.sh").exists()
    assert error(admin.get(f"/api/library/folder-roots/{root.pk}"), 404, "not_found")


def test_scan_answers_202_with_the_scan_and_polling_shows_its_counters(client_for, tree: Path) -> None:
    client = client_for(Role.USER)
    root = FolderRoot.objects.create(name="team", path=str(tree))

    response = client.post(f"/api/library/folder-roots/{root.pk}/scan")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["joined"] is False and body["scan"]["id"] == body["scan_id"]
    polled = client.get(f"/api/library/folder-roots/{root.pk}/scan/{body['scan_id']}")
    assert polled.status_code == 200
    scan = polled.json()
    assert scan["state"] == "completed" and scan["progress"] == 100 and scan["root_id"] == root.pk
    assert (scan["files_seen"], scan["files_added"], scan["files_updated"], scan["files_removed"]) == (
        2,
        2,
        0,
        0,
    )
    assert scan["error_count"] == 0 and scan["errors"] == []
    assert set(scan["timings"]) >= {"walk", "read", "sweep", "total"}
    assert scan["started_at"] and scan["finished_at"] and scan["duration"] >= 0
    assert Script.objects.filter(root=root).count() == 2


def test_a_scan_requested_while_one_is_active_joins_it(client_for, tree: Path) -> None:
    client = client_for(Role.USER)
    root = FolderRoot.objects.create(name="team", path=str(tree))
    active = ScanFactory(
        root=root, state=ScanState.RUNNING, finished_at=None, files_total=None, phase="walking"
    )

    response = client.post(f"/api/library/folder-roots/{root.pk}/scan/")

    assert response.status_code == 202
    body = response.json()
    assert body["joined"] is True and body["scan_id"] == str(active.pk)
    assert body["scan"]["state"] == "running" and body["scan"]["progress"] is None
    assert Scan.objects.count() == 1


def test_scan_progress_is_the_share_of_files_processed(admin: APIClient, tree: Path) -> None:
    root = FolderRoot.objects.create(name="team", path=str(tree))
    scan = ScanFactory(root=root, state=ScanState.RUNNING, files_total=8, files_processed=2, finished_at=None)
    body = admin.get(f"/api/library/folder-roots/{root.pk}/scan/{scan.pk}").json()
    assert body["progress"] == 25 and body["phase"] == "done"


def test_a_scan_of_another_root_or_an_unknown_one_is_404(admin: APIClient, tree: Path, roots: Path) -> None:
    team = FolderRoot.objects.create(name="team", path=str(tree))
    other = FolderRoot.objects.create(name="other", path=str(roots))
    scan = ScanFactory(root=other)
    base = f"/api/library/folder-roots/{team.pk}/scan"
    assert error(admin.get(f"{base}/{scan.pk}"), 404, "not_found")
    assert error(admin.get(f"{base}/{uuid.uuid4()}"), 404, "not_found")
    assert error(admin.get(f"{base}/{'-' * 36}"), 404, "not_found")
    assert error(admin.get(f"/api/library/folder-roots/999/scan/{scan.pk}"), 404, "not_found")
    assert error(admin.post("/api/library/folder-roots/999/scan"), 404, "not_found")


def test_scans_lists_the_history_of_a_root_newest_first(admin: APIClient, tree: Path, roots: Path) -> None:
    root = scanned_root(tree)
    second = scan_now(root)
    ScanFactory(root=FolderRoot.objects.create(name="other", path=str(roots)))

    body = admin.get(f"/api/library/folder-roots/{root.pk}/scans", {"page_size": 1}).json()

    assert body["count"] == 2 and body["next"]
    assert [s["id"] for s in body["results"]] == [str(second.pk)]
    assert body["results"][0]["files_unchanged"] == 2


def test_a_failed_scan_reports_its_message(admin: APIClient, tree: Path) -> None:
    root = FolderRoot.objects.create(name="team", path=str(tree / "gone"))
    body = admin.post(f"/api/library/folder-roots/{root.pk}/scan").json()
    assert body["scan"]["state"] == "failed" and "does not exist" in body["scan"]["message"]
    assert admin.get(f"/api/library/folder-roots/{root.pk}").json()["last_scan"]["state"] == "failed"
