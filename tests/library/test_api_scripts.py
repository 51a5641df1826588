"""The scripts list (filters, search, ordering, pagination), a script's page, curation
(PATCH and PUT …/status, audited with the user), notes and history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from library.models import FolderRoot, Script, ScriptChange
from tests.factories import RunFactory
from tests.library.factories import FolderRootFactory, ScriptFactory, TagFactory
from tests.library.helpers import error, field_error, ids, scanned_root, write

pytestmark = pytest.mark.django_db

LIST = "/api/library/scripts"


@pytest.fixture
def client(roots: Path, client_for) -> APIClient:
    return client_for(Role.USER)


@pytest.fixture
def reader(roots: Path, client_for) -> APIClient:
    return client_for(Role.READONLY)


# -- the list -------------------------------------------------------------------------------


def test_a_scanned_script_is_listed_with_its_fields(reader: APIClient, roots: Path) -> None:
    write(
        roots / "team" / "tools" / "greet.py",
        '"""Greet someone."""\nimport argparse\np = argparse.ArgumentParser()\n'
        'p.add_argument("--name")\np.add_argument("--loud", action="store_true")\n',
    )
    root = scanned_root(roots / "team")
    tag = TagFactory(name="ops", color="#ff0000")
    script = Script.objects.get()
    script.tags.add(tag)

    body = reader.get(LIST).json()

    assert body["count"] == 1 and body["previous"] is None and body["next"] is None
    item = body["results"][0]
    assert item["id"] == script.pk and item["root_id"] == root.pk and item["root_name"] == "team"
    assert item["relpath"] == "tools/greet.py" and item["path"] == str(roots / "team" / "tools" / "greet.py")
    assert (item["name"], item["extension"], item["language"]) == ("greet.py", ".py", "python")
    assert item["line_count"] == 5 and item["size"] == script.size and len(item["sha256"]) == 64
    assert item["description"] == "Greet someone."
    assert datetime.fromisoformat(item["mtime"]) == datetime.fromtimestamp(script.mtime, tz=UTC)
    assert (item["status"], item["owner"], item["environment"], item["max_concurrent"]) == (
        "active",
        "",
        "",
        None,
    )
    assert item["tags"] == [{"id": tag.pk, "name": "ops", "color": "#ff0000"}]
    assert item["missing"] is False and item["missing_since"] is None
    assert item["parameters_count"] == 2
    assert "notes" not in item and "parameters" not in item


def test_the_list_is_paginated(reader: APIClient) -> None:
    root = FolderRootFactory()
    for i in range(5):
        ScriptFactory(root=root, name=f"s{i}.py")

    first = reader.get(LIST, {"page_size": 2}).json()
    last = reader.get(LIST, {"page_size": 2, "page": 3}).json()

    assert first["count"] == 5 and first["next"] and first["previous"] is None
    assert [r["name"] for r in first["results"]] == ["s0.py", "s1.py"]
    assert [r["name"] for r in last["results"]] == ["s4.py"] and last["next"] is None
    assert error(reader.get(LIST, {"page": 9}), 404, "not_found")


def test_a_search_is_paginated_in_order_with_the_right_count(reader: APIClient) -> None:
    root = FolderRootFactory()
    tag = TagFactory(name="ops")
    for i in (4, 0, 3, 1, 2):
        ScriptFactory(root=root, name=f"deploy_{i}.sh", description="Ships it").tags.add(tag)
    ScriptFactory(root=root, name="other.sh", description="unrelated")
    ScriptFactory(root=root, name="readme.sh", description="How we DEPLOY")

    pages = [reader.get(LIST, {"search": "deploy", "page_size": 2, "page": n}).json() for n in (1, 2, 3)]

    assert [p["count"] for p in pages] == [6, 6, 6]
    listed = [r["name"] for p in pages for r in p["results"]]
    assert listed == [f"deploy_{i}.sh" for i in range(5)] + ["readme.sh"]
    assert pages[0]["results"][0]["tags"] == [{"id": tag.pk, "name": "ops", "color": tag.color}]
    assert pages[0]["results"][0]["root_name"] == root.name
    assert pages[2]["next"] is None and pages[0]["previous"] is None
    by_size = reader.get(LIST, {"search": "deploy", "ordering": "-name", "page_size": 3}).json()
    assert [r["name"] for r in by_size["results"]] == ["readme.sh", "deploy_4.sh", "deploy_3.sh"]
    assert error(reader.get(LIST, {"search": "deploy", "page": 9}), 404, "not_found")


def test_the_list_makes_the_same_few_queries_whatever_the_page_size(reader: APIClient) -> None:
    root = FolderRootFactory()
    tags = [TagFactory() for _ in range(3)]
    for i in range(30):
        ScriptFactory(root=root if i % 2 else FolderRootFactory()).tags.set(tags[: i % 4])

    reader.get(LIST)  # the first call also records when the API key was last used

    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert reader.get(LIST, {"page_size": size}).status_code == 200
        return len(ctx.captured_queries)

    assert queries(2) == queries(30)


@pytest.fixture
def catalogue() -> dict[str, Any]:
    """Scripts differing in each filtered field."""
    ops, web = FolderRootFactory(name="ops", path="/srv/ops"), FolderRootFactory(name="web", path="/srv/web")
    rows = {
        "backup": ScriptFactory(
            root=ops,
            name="backup.sh",
            relpath="nightly/backup.sh",
            language="shell",
            status="active",
            owner="alice",
            environment="prod",
            description="Copy the database away",
            size=300,
            line_count=30,
        ),
        "deploy": ScriptFactory(
            root=ops,
            name="deploy.py",
            relpath="deploy.py",
            language="python",
            status="deprecated",
            owner="bob",
            environment="staging",
            size=100,
            line_count=50,
        ),
        "report": ScriptFactory(
            root=web,
            name="report.py",
            relpath="reports/report.py",
            language="python",
            status="draft",
            owner="alice",
            environment="prod",
            size=200,
            line_count=10,
            missing_since=timezone.now(),
        ),
        "legacy": ScriptFactory(
            root=web,
            name="legacy.pl",
            relpath="old/legacy.pl",
            language="perl",
            status="archived",
            size=50,
            line_count=5,
        ),
    }
    return {"scripts": {k: v.pk for k, v in rows.items()}, "ops": ops.pk, "web": web.pk}


def in_order(response: Any, catalogue: dict[str, Any]) -> list[str]:
    by_id = {v: k for k, v in catalogue["scripts"].items()}
    return [by_id[i] for i in ids(response)]


def names(response: Any, catalogue: dict[str, Any]) -> set[str]:
    return set(in_order(response, catalogue))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"language": "python"}, {"deploy", "report"}),
        ({"language": ["perl", "shell"]}, {"legacy", "backup"}),
        ({"status": "draft"}, {"report"}),
        ({"status": ["active", "archived"]}, {"backup", "legacy"}),
        ({"owner": "alice"}, {"backup", "report"}),
        ({"owner": ["bob", "nobody"]}, {"deploy"}),
        ({"environment": "prod"}, {"backup", "report"}),
        ({"environment": "staging", "owner": "alice"}, set()),
        ({"missing": "true"}, {"report"}),
        ({"missing": "false"}, {"backup", "deploy", "legacy"}),
        ({"search": "BACKUP"}, {"backup"}),  # name, any case
        ({"search": "reports/"}, {"report"}),  # relative path
        ({"search": "LY/BACK"}, {"backup"}),  # across folder and name
        ({"search": "database away"}, {"backup"}),  # description: every word
        ({"search": "database nope"}, set()),
        ({"language": "python", "status": "deprecated"}, {"deploy"}),
    ],
)
def test_each_filter(
    reader: APIClient, catalogue: dict[str, Any], params: dict[str, Any], expected: set[str]
) -> None:
    assert names(reader.get(LIST, params), catalogue) == expected


def test_root_id_filter(reader: APIClient, catalogue: dict[str, Any]) -> None:
    assert names(reader.get(LIST, {"root_id": catalogue["ops"]}), catalogue) == {"backup", "deploy"}
    both = reader.get(LIST, {"root_id": [catalogue["ops"], catalogue["web"]]})
    assert len(ids(both)) == 4
    assert ids(reader.get(LIST, {"root_id": 999})) == []
    assert field_error(reader.get(LIST, {"root_id": "ops"}), "root_id")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"duplicates": "size"}, "duplicates"),
    ],
)
def test_invalid_filter_values_are_400s_naming_the_filter(
    reader: APIClient, catalogue: dict[str, Any], params: dict[str, str], field: str
) -> None:
    assert field_error(reader.get(LIST, params), field)


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["backup", "deploy", "legacy", "report"]),
        ("-name", ["report", "legacy", "deploy", "backup"]),
        ("relpath", ["deploy", "backup", "legacy", "report"]),
        ("size", ["legacy", "deploy", "report", "backup"]),
        ("-size", ["backup", "report", "deploy", "legacy"]),
        ("line_count", ["legacy", "report", "backup", "deploy"]),
        ("-line_count", ["deploy", "backup", "report", "legacy"]),
        ("language", ["legacy", "deploy", "report", "backup"]),  # perl, python (by pk), shell
        ("status", ["backup", "legacy", "deploy", "report"]),
        ("-status,name", ["report", "deploy", "legacy", "backup"]),
    ],
)
def test_ordering(reader: APIClient, catalogue: dict[str, Any], ordering: str, expected: list[str]) -> None:
    assert in_order(reader.get(LIST, {"ordering": ordering}), catalogue) == expected


def test_default_ordering_is_the_relative_path(reader: APIClient, catalogue: dict[str, Any]) -> None:
    assert in_order(reader.get(LIST), catalogue) == ["deploy", "backup", "legacy", "report"]


def test_ordering_by_mtime_and_updated_at(reader: APIClient) -> None:
    root = FolderRootFactory()
    now = timezone.now()
    old = ScriptFactory(root=root, mtime=1_000.0, updated_at=now)
    new = ScriptFactory(root=root, mtime=2_000.0, updated_at=now - timedelta(days=1))
    assert ids(reader.get(LIST, {"ordering": "-mtime"})) == [new.pk, old.pk]
    assert ids(reader.get(LIST, {"ordering": "mtime"})) == [old.pk, new.pk]
    assert ids(reader.get(LIST, {"ordering": "updated_at"})) == [new.pk, old.pk]


def test_ties_are_broken_by_id_so_pages_never_overlap(reader: APIClient) -> None:
    root = FolderRootFactory()
    made = [ScriptFactory(root=root, size=7).pk for _ in range(7)]
    seen = []
    for page in (1, 2, 3, 4):
        seen += ids(reader.get(LIST, {"ordering": "-size", "page_size": 2, "page": page}))
    assert seen == sorted(made, reverse=True)


def test_tag_filter_takes_ids_or_names_and_repeated_tags_must_all_match(reader: APIClient) -> None:
    root = FolderRootFactory()
    ops, nightly = TagFactory(name="Ops"), TagFactory(name="nightly")
    both, only_ops, untagged = (ScriptFactory(root=root) for _ in range(3))
    both.tags.set([ops, nightly])
    only_ops.tags.set([ops])

    assert set(ids(reader.get(LIST, {"tag": ops.pk}))) == {both.pk, only_ops.pk}
    assert set(ids(reader.get(LIST, {"tag": "ops"}))) == {both.pk, only_ops.pk}  # any case
    assert ids(reader.get(LIST, {"tag": ["OPS", str(nightly.pk)]})) == [both.pk]
    assert ids(reader.get(LIST, {"tag": "unknown"})) == []
    assert untagged.pk not in ids(reader.get(LIST, {"tag": "nightly"}))


def test_duplicates_filter(reader: APIClient) -> None:
    root = FolderRootFactory()
    a = ScriptFactory(root=root, relpath="a/run.sh", name="run.sh", size=10, line_count=2, sha256="1" * 64)
    b = ScriptFactory(root=root, relpath="b/run.sh", name="run.sh", size=10, line_count=2, sha256="2" * 64)
    c = ScriptFactory(root=root, name="copy.sh", size=10, line_count=2, sha256="1" * 64)
    ScriptFactory(root=root, name="run.sh", size=11, line_count=2, sha256="3" * 64)  # another size
    ScriptFactory(root=root, name="x.sh", sha256="")  # unreadable: no hash
    ScriptFactory(root=root, name="y.sh", sha256="")

    assert set(ids(reader.get(LIST, {"duplicates": "name"}))) == {a.pk, b.pk}
    assert set(ids(reader.get(LIST, {"duplicates": "content"}))) == {a.pk, c.pk}


# -- a script's page ------------------------------------------------------------------------


def test_detail_adds_what_the_scan_read_and_the_runs(reader: APIClient, roots: Path) -> None:
    write(
        roots / "team" / "job.py",
        "#!/usr/bin/env python3\nimport argparse\nargparse.ArgumentParser().add_argument('n')\n",
    )
    scanned_root(roots / "team")
    script = Script.objects.get()
    Script.objects.filter(pk=script.pk).update(notes="Handle with care")
    RunFactory(script=script, created_at=timezone.now() - timedelta(hours=1))
    latest = RunFactory(script=script, status="failed", run_status="failed", exit_code=1)
    RunFactory()  # another script's

    body = reader.get(f"{LIST}/{script.pk}").json()

    assert body["root_name"] == "team" and body["shebang"] == "/usr/bin/env python3"
    assert body["is_binary"] is False and body["read_error"] == "" and body["notes"] == "Handle with care"
    assert body["parameters"][0]["name"] == "n"
    assert body["first_seen"] and body["last_scanned_at"] and body["updated_at"]
    assert body["run_count"] == 2
    assert body["last_run"]["id"] == str(latest.pk) and body["last_run"]["status"] == "failed"
    assert body["last_run"]["created_at"]


def test_detail_of_a_script_never_run_and_of_an_unknown_one(reader: APIClient) -> None:
    script = ScriptFactory()
    body = reader.get(f"{LIST}/{script.pk}/").json()
    assert body["run_count"] == 0 and body["last_run"] is None
    assert error(reader.get(f"{LIST}/999999"), 404, "not_found")


# -- curation -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["patch", "put_status"])
def test_curated_fields_change_and_the_change_is_audited_with_the_user(
    client: APIClient, method: str
) -> None:
    script = ScriptFactory(owner="bob")
    changes = {
        "status": "deprecated",
        "owner": "alice",
        "environment": "prod",
        "notes": "x",
        "max_concurrent": 1,
    }
    url = f"{LIST}/{script.pk}" if method == "patch" else f"{LIST}/{script.pk}/status"

    response = (
        client.patch(url, changes, format="json")
        if method == "patch"
        else client.put(url, changes, format="json")
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in changes} == changes
    script.refresh_from_db()
    assert (script.status, script.owner, script.max_concurrent) == ("deprecated", "alice", 1)
    entry = ScriptChange.objects.get(script=script)
    assert entry.user.username == "user-user" and entry.action == "update"
    assert entry.changes["owner"] == ["bob", "alice"] and entry.changes["max_concurrent"] == [None, 1]


def test_curation_is_partial_and_a_no_op_is_not_audited(client: APIClient) -> None:
    script = ScriptFactory(owner="bob", environment="prod")
    response = client.put(f"{LIST}/{script.pk}/status", {"status": "draft"}, format="json")
    assert response.status_code == 200
    script.refresh_from_db()
    assert (script.status, script.owner, script.environment) == ("draft", "bob", "prod")
    assert client.patch(f"{LIST}/{script.pk}", {"status": "draft"}, format="json").status_code == 200
    assert ScriptChange.objects.filter(script=script).count() == 1
    assert client.patch(f"{LIST}/{script.pk}", {"max_concurrent": None}, format="json").status_code == 200
    assert ScriptChange.objects.filter(script=script).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_concurrent": "many"}, "max_concurrent"),
        ({"owner": "x" * 151}, "owner"),
        ({"environment": None}, "environment"),
        ({"name": "renamed.py"}, "name"),
        ({"path": "/etc/passwd"}, "path"),
        ({"tags": [1]}, "tags"),
    ],
)
def test_bad_or_unknown_curated_fields_are_400s(client: APIClient, body: dict[str, Any], field: str) -> None:
    script = ScriptFactory()
    assert field_error(client.patch(f"{LIST}/{script.pk}", body, format="json"), field)
    assert field_error(client.put(f"{LIST}/{script.pk}/status", body, format="json"), field)
    assert not ScriptChange.objects.exists()


def test_readers_and_executors_cannot_curate(client_for, roots: Path) -> None:
    script = ScriptFactory()
    for role in (Role.READONLY, Role.EXECUTOR):
        client = client_for(role)
        assert error(client.patch(f"{LIST}/{script.pk}", {"owner": "me"}, format="json"), 403)
        assert error(client.put(f"{LIST}/{script.pk}/status", {"owner": "me"}, format="json"), 403)
    script.refresh_from_db()
    assert script.owner == ""


def test_notes(reader: APIClient) -> None:
    script = ScriptFactory(notes="Runs at night.\nAsk Bob.")
    assert reader.get(f"{LIST}/{script.pk}/notes").json() == {
        "id": script.pk,
        "notes": "Runs at night.\nAsk Bob.",
    }
    assert error(reader.get(f"{LIST}/999/notes"), 404)


def test_history_lists_audit_entries_newest_first_with_their_users(client: APIClient) -> None:
    script = ScriptFactory()
    tag = TagFactory(name="ops")
    client.patch(f"{LIST}/{script.pk}", {"owner": "alice"}, format="json")
    client.post(f"{LIST}/{script.pk}/tags/{tag.pk}")
    client.delete(f"{LIST}/{script.pk}/tags/{tag.pk}")
    ScriptChange.objects.create(script=ScriptFactory(), action="update", changes={})  # another script's

    body = client.get(f"{LIST}/{script.pk}/history").json()

    assert body["count"] == 3
    rows = body["results"]
    assert [r["action"] for r in rows] == ["tag_detached", "tag_attached", "update"]
    assert {r["user"] for r in rows} == {"user-user"}
    assert rows[2]["changes"] == {"owner": ["", "alice"]} and rows[0]["changes"] == {"tag": "ops"}
    assert set(rows[0]) == {"id", "at", "user", "action", "changes"}
    assert client.get(f"{LIST}/{script.pk}/history", {"page_size": 1}).json()["next"]


def test_scan_rows_of_roots_that_are_gone_are_not_listed(reader: APIClient) -> None:
    root = FolderRootFactory()
    ScriptFactory(root=root)
    FolderRoot.objects.filter(pk=root.pk).delete()
    assert reader.get(LIST).json()["count"] == 0


def test_list_filters_do_not_apply_to_one_script_or_one_tag(reader: APIClient) -> None:
    script = ScriptFactory(owner="bob")
    tag = TagFactory(name="ops")
    assert reader.get(f"{LIST}/{script.pk}", {"owner": "alice", "search": "zzz"}).status_code == 200
    assert reader.get(f"{LIST}/{script.pk}/notes", {"language": "perl"}).status_code == 200
    assert reader.get(f"/api/library/tags/{tag.pk}", {"name": "web"}).status_code == 200
