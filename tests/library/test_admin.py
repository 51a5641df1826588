"""The library in the admin site: every model listed, roots checked and rescanned,
curated fields and tags audited, scans and the audit trail read-only."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from core.roles import Role
from library.models import FolderRoot, Scan, Script, ScriptChange, Tag
from tests.factories import UserFactory
from tests.library.factories import (
    FolderRootFactory,
    ScanFactory,
    ScriptChangeFactory,
    ScriptFactory,
    TagFactory,
)
from tests.library.helpers import scanned_root, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(roots: Path) -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True))
    return client


@pytest.mark.parametrize("model", ["folderroot", "scan", "script", "tag", "scriptchange"])
def test_every_model_has_a_changelist_and_a_change_page(site: Client, model: str) -> None:
    script = ScriptFactory()
    script.tags.add(TagFactory())
    objects = {
        "folderroot": script.root,
        "scan": ScanFactory(root=script.root),
        "script": script,
        "tag": script.tags.get(),
        "scriptchange": ScriptChangeFactory(script=script),
    }
    assert site.get(f"/admin/library/{model}/").status_code == 200
    assert site.get(f"/admin/library/{model}/", {"q": "x"}).status_code == 200
    assert site.get(f"/admin/library/{model}/{objects[model].pk}/change/").status_code == 200


def test_script_filters(site: Client) -> None:
    ScriptFactory(missing_since="2024-01-01T00:00:00Z")
    for query in ({"missing": "yes"}, {"missing": "no"}, {"language": "python"}, {"status__exact": "active"}):
        response = site.get("/admin/library/script/", query)
        assert response.status_code == 200, query


def test_a_root_added_in_the_admin_is_checked_against_the_allowed_roots(site: Client, roots: Path) -> None:
    write(roots / "team" / "a.py", "print(1)\n")
    form = {"name": "team", "include_patterns": '["*.py"]', "exclude_patterns": "[]", "recursive": "on"}
    refused = site.post("/admin/library/folderroot/add/", {**form, "path": "/etc"})
    assert refused.status_code == 200 and "outside the allowed roots" in refused.content.decode()
    bad = site.post(
        "/admin/library/folderroot/add/", {**form, "path": str(roots), "include_patterns": '"*.py"'}
    )
    assert "list of non-empty glob patterns" in bad.content.decode()
    assert not FolderRoot.objects.exists()

    added = site.post("/admin/library/folderroot/add/", {**form, "path": str(roots / "team" / ".")})

    assert added.status_code == 302, added.content.decode()[:2000]
    root = FolderRoot.objects.get()
    assert root.path == str((roots / "team").resolve()) and root.created_by.username == "root"


def test_the_rescan_action_starts_scans(site: Client, roots: Path) -> None:
    write(roots / "team" / "a.py", "print(1)\n")
    root = scanned_root(roots / "team")
    write(roots / "team" / "b.py", "print(2)\n")

    response = site.post(
        "/admin/library/folderroot/", {"action": "rescan", "_selected_action": [root.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Scans started for 1 root(s)" in response.content.decode()
    assert Scan.objects.filter(root=root).count() == 2
    assert Script.objects.filter(root=root).count() == 2


def test_deleting_a_root_in_the_admin_keeps_the_files(site: Client, roots: Path) -> None:
    write(roots / "team" / "a.py", "print(1)\n")
    root = scanned_root(roots / "team")
    response = site.post(f"/admin/library/folderroot/{root.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Script.objects.exists() and (roots / "team" / "a.py").exists()


def test_curating_a_script_in_the_admin_is_audited(site: Client) -> None:
    script = ScriptFactory()
    tag = TagFactory(name="ops")
    response = site.post(
        f"/admin/library/script/{script.pk}/change/",
        {
            "status": "draft",
            "owner": "alice",
            "environment": "",
            "notes": "",
            "max_concurrent": "2",
            "tags": [tag.pk],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    script.refresh_from_db()
    assert (script.status, script.owner, script.max_concurrent) == ("draft", "alice", 2)
    assert list(script.tags.all()) == [tag]
    actions = sorted(ScriptChange.objects.filter(script=script).values_list("action", "user__username"))
    assert actions == [("tag_attached", "root"), ("update", "root")]


def test_scans_and_audit_entries_are_read_only(site: Client) -> None:
    scan = ScanFactory()
    entry = ScriptChangeFactory()
    assert site.get("/admin/library/scan/add/").status_code == 403
    assert site.get("/admin/library/scriptchange/add/").status_code == 403
    assert site.post(f"/admin/library/scan/{scan.pk}/change/", {"state": "failed"}).status_code == 403
    assert site.post(f"/admin/library/scriptchange/{entry.pk}/change/", {"action": "x"}).status_code == 403
    scan.refresh_from_db()
    assert scan.state == "completed" and ScriptChange.objects.get().action == "update"


def test_a_tag_colour_is_validated_and_deleting_detaches(site: Client) -> None:
    refused = site.post("/admin/library/tag/add/", {"name": "ops", "color": "red", "description": ""})
    assert "#rrggbb" in refused.content.decode()
    assert (
        site.post(
            "/admin/library/tag/add/", {"name": "ops", "color": "#AA0000", "description": ""}
        ).status_code
        == 302
    )
    tag = Tag.objects.get()
    assert tag.color == "#aa0000"
    script = ScriptFactory()
    script.tags.add(tag)
    assert site.post(f"/admin/library/tag/{tag.pk}/delete/", {"post": "yes"}).status_code == 302
    assert ScriptChange.objects.get(script=script).action == "tag_detached"


def test_scripts_cannot_be_added_by_hand(site: Client) -> None:
    FolderRootFactory()
    assert site.get("/admin/library/script/add/").status_code == 403
