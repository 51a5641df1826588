"""The launch form's script picker: matches by name, path, description and tag; recent
and most-launched first; archived and missing scripts left out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script, ScriptStatus, Tag
from runs.models import RunStatus
from tests.factories import RunFactory
from tests.library.helpers import scanned_root, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(roots: Path) -> dict[str, Script]:
    write(roots / "team" / "backup.sh", "# Back up the database to S3\necho backup\n")
    write(roots / "team" / "deploy.py", '"""Deploy the web app."""\nprint("deploy")\n')
    write(roots / "team" / "report.py", '"""Weekly report."""\nprint("report")\n')
    write(roots / "team" / "old.sh", "echo old\n")
    scanned_root(roots / "team")
    found = {s.name: s for s in Script.objects.all()}
    Script.objects.filter(pk=found["old.sh"].pk).update(status=ScriptStatus.ARCHIVED)
    return found


@pytest.fixture
def api(roots: Path, client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.READONLY)


def names(api: APIClient, **query: str) -> list[str]:
    response = api.get("/api/library/picker", query)
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_recently_launched_first_then_most_launched_then_by_path(
    api: APIClient, library: dict[str, Script]
) -> None:
    now = timezone.now()
    for _ in range(3):  # the most launched, but long ago
        RunFactory(
            script=library["report.py"],
            script_path=library["report.py"].path,
            created_at=now - timedelta(days=90),
        )
    RunFactory(
        script=library["deploy.py"],
        script_path=library["deploy.py"].path,
        created_at=now - timedelta(hours=1),
        status=RunStatus.FAILED,
        run_status="failed",
    )
    assert names(api) == ["deploy.py", "report.py", "backup.sh"]  # old.sh is archived

    first = api.get("/api/library/picker").json()["results"][0]
    assert first["last_status"] == "failed" and first["last_run_status"] == "failed"
    assert first["language"] == "python" and first["description"] == "Deploy the web app."
    assert first["run_count"] == 1 and first["last_run_at"] is not None
    assert first["path"] == library["deploy.py"].path and first["root_name"] == "team"


def test_matches_name_path_description_and_tags(api: APIClient, library: dict[str, Script]) -> None:
    assert names(api, q="DEPLOY") == ["deploy.py"]
    assert names(api, q="s3") == ["backup.sh"]  # its description
    tag = Tag.objects.create(name="finance")
    library["report.py"].tags.add(tag)
    assert names(api, q="finan") == ["report.py"]
    assert names(api, q="old") == []  # archived
    Script.objects.filter(pk=library["backup.sh"].pk).update(missing_since=timezone.now())
    assert names(api, q="backup") == []  # missing from disk


def test_limit_and_bad_queries(api: APIClient, library: dict[str, Script]) -> None:
    assert len(names(api, limit="1")) == 1
    for bad in ({"limit": "0"}, {"limit": "21"}, {"limit": "x"}, {"q": "x" * 201}):
        response = api.get("/api/library/picker", bad)
        assert response.status_code == 400
        assert response.json()["error"] == "validation_error"
