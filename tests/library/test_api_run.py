"""Running a library script: the options of POST /api/run, linked to the script; archived
scripts refuse unless an admin forces them; max_concurrent makes runs wait in order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from runs.models import EventKind, Run, RunStatus
from runs.services.concurrency import run_claim, runs_start_waiting
from tests.factories import RunFactory
from tests.library.helpers import error, field_error, ids, scanned_root, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def script(roots: Path) -> Script:
    write(roots / "team" / "greet.sh", 'echo "hello $1"\necho "to $GREETING" >&2\n')
    scanned_root(roots / "team")
    return Script.objects.get(name="greet.sh")


@pytest.fixture
def executor(roots: Path, client_for) -> APIClient:
    return client_for(Role.EXECUTOR)


@pytest.fixture
def admin(roots: Path, client_for) -> APIClient:
    return client_for(Role.ADMIN)


def run_url(script: Script) -> str:
    return f"/api/library/scripts/{script.pk}/run"


def test_a_run_takes_the_run_options_and_is_linked_to_the_script(executor: APIClient, script: Script) -> None:
    response = executor.post(
        run_url(script), {"args": ["world"], "env_vars": {"GREETING": "all"}, "timeout": 30}, format="json"
    )

    assert response.status_code == 202, response.content
    record = response.json()
    assert record["script"] == script.pk and record["source"] == "library"
    assert record["script_path"] == script.path and record["args"] == ["world"]
    assert record["env_vars"] == {"GREETING": "********"} and record["timeout"] == 30
    assert record["created_by"] == "executor-user"
    # django-q2 runs synchronously in the unit tests: the run has completed by now.
    done = executor.get(f"/api/runs/{record['id']}").json()
    assert done["status"] == "completed" and done["exit_code"] == 0 and done["script"] == script.pk
    logs = executor.get(f"/api/runs/{record['id']}/logs").content.decode()
    assert "hello world" in logs and "to all" in logs


def test_the_scripts_runs_are_listed_newest_first(executor: APIClient, script: Script) -> None:
    first = executor.post(run_url(script), {}, format="json").json()["id"]
    second = executor.post(run_url(script), {"args": "a b"}, format="json").json()["id"]
    RunFactory()  # not from this script
    assert executor.post("/api/run", {"script_path": script.path}, format="json").status_code == 202

    body = executor.get(f"/api/library/scripts/{script.pk}/runs").json()

    assert body["count"] == 2 and [r["id"] for r in body["results"]] == [second, first]
    assert body["results"][0]["args"] == ["a", "b"]
    assert executor.get(f"/api/library/scripts/{script.pk}/runs", {"page_size": 1}).json()["next"]
    assert set(map(str, ids(executor.get("/api/runs", {"script": script.pk})))) == {first, second}
    detail = executor.get(f"/api/library/scripts/{script.pk}").json()
    assert detail["run_count"] == 2 and detail["last_run"]["id"] == second


@pytest.mark.parametrize("field", ["script_path", "path"])
def test_a_path_in_the_body_is_refused(executor: APIClient, script: Script, roots: Path, field: str) -> None:
    other = write(roots / "other.sh", "echo other\n")
    assert "own path" in field_error(
        executor.post(run_url(script), {field: str(other)}, format="json"), field
    )
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"env_vars": {"LD_PRELOAD": "x"}}, "env_vars"),
        ({"retry_max_attempts": 0}, "retry_max_attempts"),
        ({"bogus": 1}, "bogus"),
        ({"force": "maybe"}, "force"),
        ({"working_dir": "/etc"}, "working_dir"),
    ],
)
def test_run_options_are_validated_as_on_api_run(
    executor: APIClient, script: Script, body: dict[str, Any], field: str
) -> None:
    assert field_error(executor.post(run_url(script), body, format="json"), field)
    assert not Run.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(executor: APIClient, script: Script) -> None:
    error(executor.post(run_url(script), [1, 2], format="json"), 400, "validation_error")


def test_dry_run_answers_the_plan_and_starts_nothing(executor: APIClient, script: Script) -> None:
    response = executor.post(run_url(script), {"dry_run": True, "args": ["x"]}, format="json")
    assert response.status_code == 200
    plan = response.json()
    assert plan["dry_run"] is True and plan["valid"] is True and plan["script"] == script.pk
    assert plan["script_path"] == str(Path(script.path).resolve())
    assert plan["command"][-2:] == [str(Path(script.path).resolve()), "x"]
    assert not Run.objects.exists()


def test_an_archived_script_refuses_to_run(executor: APIClient, script: Script) -> None:
    Script.objects.filter(pk=script.pk).update(status="archived")
    body = error(executor.post(run_url(script), {}, format="json"), 409, "script_archived")
    assert "archived" in body["message"]
    assert error(executor.post(run_url(script), {"dry_run": True}, format="json"), 409)
    assert not Run.objects.exists()


def test_an_admin_may_force_an_archived_script(admin: APIClient, script: Script) -> None:
    Script.objects.filter(pk=script.pk).update(status="archived")
    response = admin.post(run_url(script), {"force": True}, format="json")
    assert response.status_code == 202, response.content
    assert Run.objects.get().script_id == script.pk
    assert error(admin.post(run_url(script), {"force": False}, format="json"), 409)


@pytest.mark.parametrize("role", [Role.EXECUTOR, Role.USER])
def test_force_by_a_non_admin_is_403(client_for, roots: Path, script: Script, role: str) -> None:
    Script.objects.filter(pk=script.pk).update(status="archived")
    body = error(
        client_for(role).post(run_url(script), {"force": True}, format="json"), 403, "permission_denied"
    )
    assert "Only an admin" in body["message"]
    assert not Run.objects.exists()


def test_a_missing_script_refuses_to_run(executor: APIClient, script: Script) -> None:
    Path(script.path).unlink()  # gone, not yet noticed by a scan
    assert (
        "not on disk"
        in error(executor.post(run_url(script), {}, format="json"), 409, "script_missing")["message"]
    )
    Script.objects.filter(pk=script.pk).update(missing_since=timezone.now())
    assert "missing" in error(executor.post(run_url(script), {}, format="json"), 409)["message"]
    assert not Run.objects.exists()


def test_a_script_now_resolving_outside_its_root_refuses(
    executor: APIClient, script: Script, tmp_path: Path
) -> None:
    outside = write(tmp_path / "evil.sh", "echo evil\n")
    Path(script.path).unlink()
    Path(script.path).symlink_to(outside)
    error(executor.post(run_url(script), {}, format="json"), 409, "script_moved")
    assert not Run.objects.exists()


def test_a_reader_cannot_run_and_unknown_scripts_are_404(client_for, roots: Path, script: Script) -> None:
    error(client_for(Role.READONLY).post(run_url(script), {}, format="json"), 403)
    error(client_for(Role.EXECUTOR).post("/api/library/scripts/999/run", {}, format="json"), 404)


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], Any]]:
    """Hand-overs to the workers, held back until the test lets them go (in order)."""
    held: list[Callable[[], Any]] = []

    def hold(func: Callable[[], Any], using: str | None = None, robust: bool = False) -> None:
        held.append(func)

    monkeypatch.setattr(transaction, "on_commit", hold)
    return held


def test_max_concurrent_one_makes_the_second_run_wait_then_start_after_the_first(
    executor: APIClient, script: Script, deferred: list[Callable[[], Any]]
) -> None:
    Script.objects.filter(pk=script.pk).update(max_concurrent=1)
    first = executor.post(run_url(script), {"args": ["one"]}, format="json").json()
    second = executor.post(run_url(script), {"args": ["two"]}, format="json").json()
    assert first["concurrency_key"] == second["concurrency_key"] == f"library.script:{script.pk}"
    assert first["concurrency_limit"] == 1
    assert len(deferred) == 2  # one hand-over to the workers per run, held back
    hand_over_second = deferred[1]

    # A worker claims the first run; another worker gets the second one meanwhile.
    assert run_claim(run_id=first["id"]) == "claimed"
    hand_over_second()

    waiting = executor.get(f"/api/runs/{second['id']}").json()
    assert waiting["status"] == "queued"
    assert "1 of max 1 running" in waiting["wait_reason"]
    assert Run.objects.get(pk=second["id"]).events.filter(kind=EventKind.WAITING).exists()
    assert executor.get(f"/api/runs/{first['id']}").json()["status"] == "running"

    # The first run ends: its runner hands the next waiting run to the workers.
    finished_at = timezone.now()
    Run.objects.filter(pk=first["id"]).update(status=RunStatus.COMPLETED, finished_at=finished_at)
    assert runs_start_waiting(key=first["concurrency_key"]) == [second["id"]]

    done = executor.get(f"/api/runs/{second['id']}").json()
    assert done["status"] == "completed", done
    assert done["wait_reason"] == ""
    assert Run.objects.get(pk=second["id"]).started_at >= finished_at
    assert "hello two" in executor.get(f"/api/runs/{second['id']}/logs").content.decode()


def test_without_max_concurrent_runs_do_not_wait(executor: APIClient, script: Script) -> None:
    record = executor.post(run_url(script), {}, format="json").json()
    assert record["concurrency_key"] == "" and record["concurrency_limit"] is None
    assert executor.get(f"/api/runs/{record['id']}").json()["status"] == "completed"
