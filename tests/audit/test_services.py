"""Each audited action writes exactly one event, with its actor, action and object."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core.errors import Conflict
from core.models import ApiKey, User
from core.roles import Role
from core.services import api_key_create, api_key_revoke, user_ensure
from library.models import Script, Tag
from library.services.presets import preset_create, preset_delete, preset_update
from library.services.roots import root_create, root_delete, root_update
from library.services.scans import scan_start
from library.services.scripts import (
    script_tag_attach,
    script_tag_detach,
    script_update,
    tag_create,
    tag_delete,
    tag_update,
)
from runs.models import Run, RunStatus
from runs.services import lifecycle, run_control, run_delete, run_enqueue, run_restart, runs_enqueue_many
from scheduler.services import (
    task_create,
    task_delete,
    task_enable,
    task_pause,
    task_update,
    task_webhook_remove,
    task_webhook_rotate,
)
from tests.audit.conftest import only
from tests.factories import RunFactory, UserFactory
from tests.library.factories import FolderRootFactory, ScriptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_hand_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued runs stay queued: what is audited is the launch, not the execution."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture
def alice(db: Any) -> User:
    return UserFactory(username="alice", role=Role.ADMIN)


def one(action: str) -> AuditEvent:
    return only(list(AuditEvent.objects.filter(action=action)))


def check(action: str, actor: User | None, object_type: str, object_id: Any) -> AuditEvent:
    event = one(action)
    assert (event.actor, event.object_type, event.object_id) == (actor, object_type, str(object_id))
    assert event.actor_name == (actor.username if actor else "")
    assert event.summary
    return event


# -- core: keys and users ---------------------------------------------------------------


def test_api_key_create_and_revoke(alice: User) -> None:
    issued = api_key_create(user=alice, name="ci", role=Role.READONLY)
    event = check("api_key.create", None, "api_key", issued.key.pk)  # no request: no actor
    assert event.data == {"name": "ci", "owner": "alice", "role": "readonly", "prefix": issued.key.prefix}
    assert issued.raw not in str(event.data) and issued.raw not in event.summary
    api_key_revoke(key=issued.key)
    api_key_revoke(key=issued.key)  # already revoked: nothing happens, nothing recorded
    check("api_key.revoke", None, "api_key", issued.key.pk)


def test_keys_created_and_revoked_through_the_api_name_the_caller_and_its_address(alice: User) -> None:
    issued = api_key_create(user=alice, name="admin-key", role=Role.ADMIN)
    client = APIClient(REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="curl/8", HTTP_X_REQUEST_ID="req-42")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    created = client.post("/api/keys", {"name": "deploy"}, format="json")
    assert created.status_code == 201
    event = AuditEvent.objects.get(action="api_key.create", object_id=str(created.json()["id"]))
    assert (event.actor, event.ip, event.user_agent, event.request_id) == (
        alice,
        "198.51.100.4",
        "curl/8",
        "req-42",
    )
    assert client.delete(f"/api/keys/{created.json()['id']}").status_code == 200
    check("api_key.revoke", alice, "api_key", created.json()["id"])


def test_user_create_change_role_and_delete_in_the_admin(alice: User) -> None:
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client = Client(REMOTE_ADDR="192.0.2.1")
    client.force_login(alice)
    response = client.post(
        "/admin/core/user/add/",
        {
            "username": "bob",
            "password1": "a-long-password-9",
            "password2": "a-long-password-9",
            "role": "readonly",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    bob = User.objects.get(username="bob")
    event = check("user.create", alice, "user", bob.pk)
    assert "a-long-password-9" not in str(event.data)
    assert event.ip == "192.0.2.1"

    form = {
        "username": "bob",
        "role": "executor",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    response = client.post(f"/admin/core/user/{bob.pk}/change/", form)
    assert response.status_code == 302, response.content[:3000]
    event = check("user.role_change", alice, "user", bob.pk)
    assert event.data["changed"]["role"] == "executor"

    response = client.post(f"/admin/core/user/{bob.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    check("user.delete", alice, "user", bob.pk)


def test_user_ensure_records_only_a_new_user() -> None:
    user, _ = user_ensure(username="svc", role=Role.EXECUTOR)
    user_ensure(username="svc", role=Role.EXECUTOR)
    check("user.create", None, "user", user.pk)


# -- runs ---------------------------------------------------------------------------------


def test_run_launch_restart_and_delete(alice: User, make_script: Callable[..., Path]) -> None:
    script = make_script("job.sh", "echo hi\n")
    run = run_enqueue(params={"script_path": str(script)}, user=alice, source="api")
    event = check("run.launch", alice, "run", run.pk)
    assert event.data["script_path"] == str(script)

    again = run_restart(run=run, user=alice)  # the queued original is cancelled first
    check("run.restart", alice, "run", again.pk)
    check("run.cancel", alice, "run", run.pk)

    Run.objects.filter(pk__in=[run.pk, again.pk]).update(status=RunStatus.COMPLETED)
    run_delete(run=Run.objects.get(pk=again.pk))
    check("run.delete", None, "run", again.pk)


def test_a_batch_launch_records_one_event_per_run(alice: User, make_script: Callable[..., Path]) -> None:
    script = make_script("job.sh", "echo hi\n")
    runs = runs_enqueue_many(requests=[{"script_path": str(script)}] * 3, user=alice, source="api")
    found = AuditEvent.objects.filter(action="run.launch")
    assert sorted(found.values_list("object_id", flat=True)) == sorted(str(run.pk) for run in runs)
    assert set(found.values_list("actor_name", flat=True)) == {"alice"}


@pytest.mark.parametrize("command", ["stop", "kill", "pause"])
def test_run_control_of_a_running_run(alice: User, command: str) -> None:
    run = RunFactory(status=RunStatus.RUNNING, run_status="")
    run_control(run=run, command=command, user=alice)
    check(f"run.{command}", alice, "run", run.pk)


def test_resume_of_a_paused_run(alice: User) -> None:
    run = RunFactory(status=RunStatus.RUNNING, run_status="", paused=True)
    run_control(run=run, command="resume", user=alice)
    check("run.resume", alice, "run", run.pk)
    assert not AuditEvent.objects.filter(action="run.pause").exists()


# -- library -------------------------------------------------------------------------------


def test_library_root_create_update_scan_delete(
    alice: User, roots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from library.services import scans

    monkeypatch.setattr(scans, "_hand_over", lambda scan_id, name: None)
    root = root_create(name="main", path=str(roots), user=alice)
    check("library_root.create", alice, "library_root", root.pk)
    root_update(root=root, recursive=False)
    check("library_root.update", None, "library_root", root.pk)
    scan_start(root=root, user=alice)
    check("library_root.scan", alice, "library_root", root.pk)
    pk = root.pk
    root_delete(root=root)
    check("library_root.delete", None, "library_root", pk)


def _script(roots: Path) -> Script:
    root = FolderRootFactory(name="r", path=str(roots))
    script: Script = ScriptFactory(root=root, name="a.sh", language="bash")
    return script


def test_script_curation_and_tags(alice: User, roots: Path) -> None:
    script = _script(roots)
    script_update(script=script, user=alice, notes="careful", status="archived")
    event = check("script.update", alice, "script", script.pk)
    assert event.data["changes"]["status"][1] == "archived"
    script_update(script=script, user=alice, notes="careful")  # no change: nothing recorded
    tag = tag_create(name="nightly")
    check("tag.create", None, "tag", tag.pk)
    tag_update(tag=tag, color="#112233")
    check("tag.update", None, "tag", tag.pk)
    script_tag_attach(script=script, tag=tag, user=alice)
    check("script.tag_attach", alice, "script", script.pk)
    script_tag_detach(script=script, tag=tag, user=alice)
    check("script.tag_detach", alice, "script", script.pk)
    pk = tag.pk
    tag_delete(tag=Tag.objects.get(pk=pk), user=alice)
    check("tag.delete", alice, "tag", pk)


def test_presets(alice: User, roots: Path) -> None:
    (roots / "a.sh").write_text("echo a\n")
    (roots / "a.sh").chmod(0o755)
    script = _script(roots)
    preset = preset_create(
        script=script,
        name="p",
        options={"env_vars": {"TOKEN": "s3cret"}},
        user=alice,
        shared=True,
        is_admin=True,
    )
    event = check("preset.create", alice, "preset", preset.pk)
    assert "s3cret" not in str(event.data)
    preset_update(preset=preset, user=alice, is_admin=True, name="q")
    check("preset.update", alice, "preset", preset.pk)
    pk = preset.pk
    preset_delete(preset=preset, user=alice, is_admin=True)
    check("preset.delete", alice, "preset", pk)


# -- scheduler ------------------------------------------------------------------------------


def test_scheduled_task_changes_and_webhook(make_script: Callable[..., Path]) -> None:
    script = make_script("job.sh", "echo job\n")
    task, raw = task_create(name="nightly", script_path=str(script), interval_seconds=3600, webhook=True)
    check("scheduled_task.create", None, "scheduled_task", task.pk)
    task_update(task=task, interval_seconds=60)
    event = check("scheduled_task.update", None, "scheduled_task", task.pk)
    assert "interval_seconds" in event.data["changed"]
    task_pause(task=task)
    task_pause(task=task)  # already disabled: not recorded again
    check("scheduled_task.disable", None, "scheduled_task", task.pk)
    task_enable(task=task)
    task_enable(task=task)
    check("scheduled_task.enable", None, "scheduled_task", task.pk)
    new = task_webhook_rotate(task=task)
    event = check("scheduled_task.webhook_rotate", None, "scheduled_task", task.pk)
    assert new not in str(event.data) and (raw or "") not in str(event.data)
    task_webhook_remove(task=task)
    task_webhook_remove(task=task)
    check("scheduled_task.webhook_remove", None, "scheduled_task", task.pk)
    pk = task.pk
    task_delete(task=task)
    check("scheduled_task.delete", None, "scheduled_task", pk)


def test_a_failed_action_leaves_no_event(alice: User) -> None:
    run = RunFactory(status=RunStatus.COMPLETED)
    with pytest.raises(Conflict):  # a finished run
        run_control(run=run, command="stop", user=alice)
    assert not AuditEvent.objects.filter(action__startswith="run.").exists()
    assert ApiKey.objects.count() == 0
