"""Pre-run checks on a run (issue 13): the three flags, the check in the worker before the
child is spawned, a blocked run that never starts, the ``checks`` block, events, the cache.
Scripts and tools run for real through the sync path (``run_enqueue`` + ``run_execute``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from prechecks import services as precheck_services
from prechecks.models import CheckFinding, CheckResult, RunCheck
from runs.models import EventKind, Run, RunEvent, RunStatus
from runs.request import run_request_clean
from runs.serializers import run_record
from runs.services import lifecycle, run_enqueue, run_execute
from tests.prechecks.conftest import AWS_KEY, PRIVATE_KEY_BODY
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.usefixtures("strays", "no_dispatch"), pytest.mark.django_db]

ALL = {"enable_code_analysis": True, "enable_secret_scanning": True}


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    precheck_services._ADVISORY_SIGNATURE_MEMO.clear()
    monkeypatch.delenv("SCRIPTOPS_PRECHECK_TIMEOUT", raising=False)
    monkeypatch.delenv("SCRIPTOPS_PRECHECK_BLOCK", raising=False)


@pytest.fixture
def leaky(make_script: Callable[..., Path], roots: Path) -> Path:
    marker = roots / "started.txt"
    return make_script(
        "leaky.py",
        f'''
        AWS_ACCESS_KEY_ID = "{AWS_KEY}"
        KEY = """-----BEGIN RSA PRIVATE KEY-----
        {PRIVATE_KEY_BODY}
        -----END RSA PRIVATE KEY-----"""
        open({str(marker)!r}, "w").write("started")
        ''',
    )


@pytest.fixture
def tidy(make_script: Callable[..., Path]) -> Path:
    return make_script("tidy.py", 'print("hello")\n')


def run_script(script: Path, **params: Any) -> Run:
    run = run_enqueue(params={"script_path": str(script), **params}, source="test")
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    return run


# -- the request -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["enable_code_analysis", "enable_secret_scanning", "enable_dependency_scanning"]
)
def test_the_three_flags_are_accepted_and_stored(client_for, tidy: Path, name: str) -> None:
    client: APIClient = client_for(Role.EXECUTOR)
    response = client.post("/api/run", {"script_path": str(tidy), name: True}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()[name] is True
    assert getattr(Run.objects.get(), name) is True


def test_a_flag_that_is_not_a_boolean_is_400(client_for, tidy: Path) -> None:
    client: APIClient = client_for(Role.EXECUTOR)
    response = client.post(
        "/api/run", {"script_path": str(tidy), "enable_secret_scanning": "maybe"}, format="json"
    )
    assert response.status_code == 400
    assert "enable_secret_scanning" in json.dumps(response.json())


def test_the_request_carries_the_flags(tidy: Path) -> None:
    request = run_request_clean({"script_path": str(tidy), "enable_dependency_scanning": "true"})
    assert request.precheck_fields() == {
        "enable_code_analysis": False,
        "enable_secret_scanning": False,
        "enable_dependency_scanning": True,
    }
    assert request.run_fields()["enable_dependency_scanning"] is True


# -- on a run --------------------------------------------------------------------------------


def test_a_run_without_flags_is_not_checked(tidy: Path) -> None:
    run = run_script(tidy)
    assert run.status == RunStatus.COMPLETED
    assert not RunCheck.objects.exists() and not CheckResult.objects.exists()
    assert run_record(run, analytics=True)["checks"] is None


def test_a_script_holding_a_secret_is_blocked_and_never_starts(leaky: Path, roots: Path) -> None:
    run = run_script(leaky, **ALL)
    assert (run.status, run.run_status) == (RunStatus.FAILED, "blocked")
    assert run.error_summary["reason"] == "blocked"
    assert "secret" in run.error_summary["stderr_snippet"]
    assert not (roots / "started.txt").exists()
    assert run.started_at is None or not run.attempt_set.exists()
    kinds = list(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert EventKind.CHECK_BLOCKED in kinds and EventKind.START not in kinds
    checks = run_record(run, analytics=True)["checks"]
    assert checks["blocked"] is True and checks["status"] == "findings"
    secret = [f for f in checks["findings"] if f["kind"] == "secret"]
    assert secret and all(f["file"] == "leaky.py" and f["line"] for f in secret)
    assert {"tool", "rule_id", "severity", "file", "line", "message"} <= set(secret[0])


def test_a_clean_script_runs_with_a_check_passed_event(tidy: Path) -> None:
    run = run_script(tidy, **ALL)
    assert run.status == RunStatus.COMPLETED
    event = RunEvent.objects.get(run=run, kind=EventKind.CHECK_PASSED)
    assert event.data["status"] == "clean" and event.data["blocking"] == 0
    assert run_record(run, analytics=True)["checks"]["blocked"] is False


def test_the_second_launch_of_an_unchanged_script_runs_no_tool(leaky: Path, monkeypatch) -> None:
    first = run_script(leaky, **ALL)

    def no_tool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a tool ran for an unchanged script")

    monkeypatch.setattr(precheck_services, "_run_tools", no_tool)
    second = run_script(leaky, **ALL)
    assert second.run_status == "blocked"
    assert RunCheck.objects.get(run_id=second.pk).outcome["cached"] is True
    assert RunCheck.objects.get(run_id=first.pk).outcome["cached"] is False
    assert CheckResult.objects.count() == 1


def test_a_tool_timeout_blocks_and_is_reported(tidy: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_TIMEOUT", "0.001")
    run = run_script(tidy, enable_code_analysis=True)
    assert (run.status, run.run_status) == (RunStatus.FAILED, "blocked")
    checks = run_record(run, analytics=True)["checks"]
    assert checks["status"] == "error" and checks["errors"]
    assert "timed out" in checks["reason"]
    event = RunEvent.objects.get(run=run, kind=EventKind.CHECK_BLOCKED)
    assert event.data["errors"]


def test_an_error_is_allowed_when_the_policy_leaves_errors_out(tidy: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_TIMEOUT", "0.001")
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_BLOCK", "secret")
    run = run_script(tidy, enable_code_analysis=True)
    assert run.status == RunStatus.COMPLETED
    assert RunEvent.objects.get(run=run, kind=EventKind.CHECK_PASSED).data["status"] == "error"


def test_a_check_that_crashes_is_an_error_never_clean(tidy: Path, monkeypatch) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(precheck_services, "precheck_run", crash)
    run = run_script(tidy, enable_secret_scanning=True)
    assert run.run_status == "blocked"
    assert RunCheck.objects.get(run_id=run.pk).outcome["status"] == "error"


def test_the_secret_text_is_in_no_response_event_or_row(
    leaky: Path, client_for, caplog: pytest.LogCaptureFixture
) -> None:
    run = run_script(leaky, **ALL)
    client: APIClient = client_for(Role.ADMIN)
    bodies = [
        client.get(f"/api/runs/{run.pk}").content,
        client.get(f"/api/runs/{run.pk}/events").content,
        client.get("/api/runs").content,
    ]
    rows = [
        json.dumps(list(RunEvent.objects.values("data")), default=str),
        json.dumps(list(RunCheck.objects.values()), default=str),
        json.dumps(list(CheckFinding.objects.values()), default=str),
        json.dumps(list(CheckResult.objects.values()), default=str),
        json.dumps(list(Run.objects.values()), default=str),
    ]
    text = b"".join(bodies).decode() + "".join(rows) + caplog.text
    assert AWS_KEY not in text and PRIVATE_KEY_BODY[:24] not in text
    assert b"check_blocked" in bodies[1]


def test_deleting_a_run_deletes_its_check(leaky: Path) -> None:
    run = run_script(leaky, **ALL)
    lifecycle.runs_delete(ids=[run.pk])
    assert not RunCheck.objects.exists()
