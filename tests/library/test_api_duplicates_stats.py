"""Duplicate groups (same name+size+lines, or same content) and the library's statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from tests.library.factories import FolderRootFactory, ScriptFactory, TagFactory
from tests.library.helpers import field_error, scanned_root, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(roots: Path, client_for) -> APIClient:
    return client_for(Role.READONLY)


@pytest.fixture
def copies(roots: Path) -> Path:
    """Two copies of cleanup.sh (same name, size, lines, content), a same-named script
    with other content of the same size and lines, and a renamed copy of report.py."""
    base = roots / "team"
    write(base / "a" / "cleanup.sh", "rm -rf /tmp/a\n")
    write(base / "b" / "cleanup.sh", "rm -rf /tmp/a\n")
    write(base / "c" / "cleanup.sh", "rm -rf /tmp/b\n")
    write(base / "report.py", "print('report')\n")
    write(base / "old" / "report_v1.py", "print('report')\n")
    write(base / "unique.py", "print('alone')\n")
    scanned_root(base)
    return base


def test_name_duplicates_are_the_default(reader: APIClient, copies: Path) -> None:
    body = reader.get("/api/library/duplicates").json()
    assert body["kind"] == "name" and body["group_count"] == 1
    group = body["groups"][0]
    assert group["kind"] == "name" and group["count"] == 3
    assert group["key"] == {"name": "cleanup.sh", "size": 14, "line_count": 1}
    assert [s["relpath"] for s in group["scripts"]] == ["a/cleanup.sh", "b/cleanup.sh", "c/cleanup.sh"]
    assert {"id", "path", "relpath", "name", "size", "line_count", "sha256", "status"} <= set(
        group["scripts"][0]
    )


def test_content_duplicates_group_identical_files_whatever_their_names(
    reader: APIClient, copies: Path
) -> None:
    body = reader.get("/api/library/duplicates", {"kind": "content"}).json()
    assert body["kind"] == "content" and body["group_count"] == 2
    groups = {frozenset(s["relpath"] for s in g["scripts"]) for g in body["groups"]}
    assert groups == {
        frozenset({"a/cleanup.sh", "b/cleanup.sh"}),
        frozenset({"report.py", "old/report_v1.py"}),
    }
    for group in body["groups"]:
        assert group["count"] == 2 and set(group["key"]) == {"sha256"}
        assert {s["sha256"] for s in group["scripts"]} == {group["key"]["sha256"]}


def test_all_lists_both_kinds(reader: APIClient, copies: Path) -> None:
    body = reader.get("/api/library/duplicates", {"kind": "all"}).json()
    assert body["kind"] == "all" and body["group_count"] == 3
    assert sorted(g["kind"] for g in body["groups"]) == ["content", "content", "name"]


def test_no_duplicates_and_a_bad_kind(reader: APIClient) -> None:
    assert reader.get("/api/library/duplicates").json() == {"kind": "name", "groups": [], "group_count": 0}
    assert field_error(reader.get("/api/library/duplicates", {"kind": "size"}), "kind")


def test_scripts_without_a_hash_are_never_content_duplicates(reader: APIClient) -> None:
    ScriptFactory(sha256="")
    ScriptFactory(sha256="")
    assert reader.get("/api/library/duplicates", {"kind": "content"}).json()["group_count"] == 0


def test_stats_figures(reader: APIClient) -> None:
    ops, web = FolderRootFactory(name="ops"), FolderRootFactory(name="web")
    FolderRootFactory(name="empty")
    a = ScriptFactory(
        root=ops, name="a.py", relpath="x/a.py", language="python", size=100, line_count=10, sha256="1" * 64
    )
    b = ScriptFactory(
        root=ops, name="a.py", relpath="y/a.py", language="python", size=100, line_count=10, sha256="1" * 64
    )
    ScriptFactory(root=ops, name="c.sh", language="shell", size=50, line_count=5, status="archived")
    ScriptFactory(root=web, name="d.sh", language="shell", size=7, line_count=1, missing_since=timezone.now())
    TagFactory(name="unused")
    nightly = TagFactory(name="nightly", color="#000000")
    a.tags.add(nightly)
    b.tags.add(nightly)

    stats = reader.get("/api/library/stats").json()

    assert (stats["total_scripts"], stats["total_lines"], stats["total_bytes"]) == (4, 26, 257)
    assert (stats["missing"], stats["roots"], stats["tags"]) == (1, 3, 2)
    assert stats["by_language"] == {"python": 2, "shell": 2}
    assert stats["by_status"] == {"active": 3, "archived": 1}
    assert stats["by_root"] == [
        {"root_id": ops.pk, "name": "ops", "count": 3},
        {"root_id": web.pk, "name": "web", "count": 1},
    ]
    assert stats["by_tag"][0] == {"tag_id": nightly.pk, "name": "nightly", "color": "#000000", "count": 2}
    assert stats["by_tag"][1]["count"] == 0
    assert stats["duplicates"] == {
        "name": {"groups": 1, "scripts": 2},
        "content": {"groups": 1, "scripts": 2},
    }


def test_stats_of_an_empty_library(reader: APIClient) -> None:
    stats = reader.get("/api/library/stats/").json()
    assert (stats["total_scripts"], stats["total_lines"], stats["total_bytes"]) == (0, 0, 0)
    assert stats["by_language"] == {} and stats["by_root"] == [] and stats["by_tag"] == []
    assert not Script.objects.exists()
