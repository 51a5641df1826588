"""On-demand pre-run checks from the library (issue 13): a script's or a path's check is a
django-q2 task (synchronous here), polled as a job; the latest result is read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from prechecks.models import CheckJob
from tests.library.helpers import scanned_root, write
from tests.prechecks.conftest import AWS_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def script(roots: Path) -> Script:
    write(roots / "team" / "leaky.py", f'KEY = "{AWS_KEY}"\n')
    scanned_root(roots / "team")
    return Script.objects.get(name="leaky.py")


@pytest.fixture
def user(roots: Path, client_for) -> APIClient:
    return client_for(Role.USER)


def test_a_scripts_check_runs_as_a_job_and_its_latest_result_is_read(user: APIClient, script: Script) -> None:
    before = user.get(f"/api/library/scripts/{script.pk}/check").json()
    assert before["checked"] is False

    queued = user.post(f"/api/library/scripts/{script.pk}/check", {"kinds": ["secret"]}, format="json")
    assert queued.status_code == 202, queued.content
    job = user.get(f"/api/library/checks/{queued.json()['id']}").json()
    assert (job["state"], job["total"], job["checked"], job["with_findings"], job["blocked"]) == (
        "done",
        1,
        1,
        1,
        1,
    )

    latest = user.get(f"/api/library/scripts/{script.pk}/check")
    body = latest.json()
    assert body["checked"] is True and body["status"] == "findings"
    assert body["findings"][0]["kind"] == "secret" and body["findings"][0]["line"] == 1
    assert AWS_KEY not in latest.content.decode() and AWS_KEY not in queued.content.decode()


def test_a_path_inside_the_roots_is_checked(user: APIClient, make_script) -> None:
    path = make_script("tidy.py", "print(1)\n")
    response = user.post(
        "/api/library/check", {"path": str(path), "kinds": ["code", "secret"]}, format="json"
    )
    assert response.status_code == 202, response.content
    job = CheckJob.objects.get(pk=response.json()["id"])
    assert (job.state, job.checked, job.with_findings) == ("done", 1, 0)


def test_a_path_outside_the_roots_or_unknown_kinds_are_400(user: APIClient, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("print(1)\n")
    assert user.post("/api/library/check", {"path": str(outside)}, format="json").status_code == 400
    bad = user.post("/api/library/check", {"path": str(outside), "kinds": ["astrology"]}, format="json")
    assert bad.status_code == 400
    assert not CheckJob.objects.exists()


def test_an_executor_may_not_queue_a_check(roots: Path, client_for, script: Script) -> None:
    executor: APIClient = client_for(Role.EXECUTOR)
    assert executor.post(f"/api/library/scripts/{script.pk}/check", {}, format="json").status_code == 403
    assert executor.get(f"/api/library/scripts/{script.pk}/check").status_code == 200
