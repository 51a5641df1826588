"""On-demand pre-run checks from the library (issue 13): a script's or a path's check is a
django-q2 task (synchronous here), polled as a job; the latest result is read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from prechecks.models import CheckFinding, CheckJob, CheckResult, CheckStatus, LatestCheck
from tests.library.factories import FolderRootFactory, ScriptFactory
from tests.library.helpers import field_error, scanned_root, write
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


# -- the list's badge and ?check= filter ----------------------------------------------------

LIST = "/api/library/scripts"


@pytest.fixture
def checked(roots: Path, client_for) -> dict[str, Script]:
    """Four scripts: one clean, one holding an AWS-style key, one calling a shell with
    ``shell=True`` (Bandit: high), one never checked — the first three checked for real."""
    folder = roots / "team"
    write(folder / "tidy.py", "print('hello')\n")
    write(folder / "leaky.py", f'KEY = "{AWS_KEY}"\n')
    write(folder / "shelly.py", "import subprocess\nsubprocess.call(input(), shell=True)\n")
    write(folder / "later.sh", "#!/bin/sh\necho later\n")
    scanned_root(folder)
    scripts = {s.name.split(".")[0]: s for s in Script.objects.all()}
    admin: APIClient = client_for(Role.ADMIN)
    for name in ("tidy", "leaky", "shelly"):
        queued = admin.post(f"/api/library/scripts/{scripts[name].pk}/check", {}, format="json")
        assert queued.status_code == 202, queued.content
    return scripts


def _badges(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.content[:500]
    return {row["name"]: row["check"] for row in response.json()["results"]}


def test_each_listed_script_has_its_check_badge(user: APIClient, checked: dict[str, Script]) -> None:
    response = user.get(LIST)
    assert _badges(response) == {
        "tidy.py": "clean",
        "leaky.py": "secret found",
        "shelly.py": "1 high",
        "later.sh": "not checked",
    }
    assert AWS_KEY not in response.content.decode()
    detail = user.get(f"{LIST}/{checked['shelly'].pk}").json()
    assert detail["check"] == "1 high"


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("clean", {"tidy.py"}),
        ("findings", {"leaky.py", "shelly.py"}),
        ("secret", {"leaky.py"}),
        ("high", {"leaky.py", "shelly.py"}),  # a secret finding is high
        ("not_checked", {"later.sh"}),
        ("error", set()),
    ],
)
def test_the_list_filters_by_check_result(
    user: APIClient, checked: dict[str, Script], value: str, names: set[str]
) -> None:
    assert set(_badges(user.get(LIST, {"check": value}))) == names


def test_a_tool_error_is_its_own_badge_and_filter(user: APIClient, roots: Path) -> None:
    write(roots / "team" / "broken.py", "print(1)\n")
    scanned_root(roots / "team")
    script = Script.objects.get()
    result = CheckResult.objects.create(
        cache_key="k" * 64,
        script_sha256=script.sha256,
        script_path=script.path,
        kinds="code",
        status=CheckStatus.ERROR,
        errors=[{"tool": "bandit", "message": "timed out"}],
    )
    LatestCheck.objects.create(script_path=script.path, result=result)
    assert _badges(user.get(LIST)) == {"broken.py": "error: bandit"}
    assert set(_badges(user.get(LIST, {"check": "error"}))) == {"broken.py"}
    assert _badges(user.get(LIST, {"check": "clean"})) == {}


def test_an_unknown_check_filter_is_a_400_naming_the_allowed_values(user: APIClient, roots: Path) -> None:
    message = field_error(user.get(LIST, {"check": "dirty"}), "check")
    assert "dirty" in message
    for value in ("clean", "findings", "secret", "high", "error", "not_checked"):
        assert value in message


def test_the_badges_take_the_same_queries_whatever_the_page_size(user: APIClient, roots: Path) -> None:
    root = FolderRootFactory()
    for i in range(30):
        script = ScriptFactory(root=root)
        if i % 3 == 0:
            continue  # never checked
        result = CheckResult.objects.create(
            cache_key=f"{i:064d}",
            script_sha256=script.sha256 or "0" * 64,
            script_path=script.path,
            kinds="code,secret",
            status=CheckStatus.FINDINGS,
        )
        for n in range(i % 4):
            CheckFinding.objects.create(
                result=result,
                tool="bandit",
                rule_id=f"B{n}",
                severity="high" if n else "low",
                confidence="high",
                file=script.name,
                line=n + 1,
                message="m",
                kind="code",
                fingerprint=f"{i}-{n}",
            )
        LatestCheck.objects.create(script_path=script.path, result=result)
    user.get(LIST)  # the first call also records when the API key was last used

    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert user.get(LIST, {"page_size": size}).status_code == 200
        return len(ctx.captured_queries)

    assert queries(2) == queries(30)
    badges = [row["check"] for row in user.get(LIST, {"page_size": 30}).json()["results"]]
    assert badges.count("not checked") == 10 and "2 high" in badges and "clean" in badges
