"""Events and webhook triggers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from runs.models import Run
from runs.services.execution import build_plan
from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import task_pause
from tests.scheduler.conftest import start

pytestmark = pytest.mark.django_db


# -- events -------------------------------------------------------------------------------------


def test_an_event_queues_every_enabled_listener_and_reports_the_others(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    first = make_task("first", events=["deploy.done", "other"])
    second = make_task("second", events=["deploy.done"])
    busy = make_task("busy", events=["deploy.done"])
    off = make_task("off", events=["deploy.done"])
    task_pause(task=off)
    make_task("deaf", events=["something.else"])
    api.post(f"/api/scheduler/tasks/{busy.pk}/run")  # busy is running when the event comes
    start(TaskRun.objects.get(task=busy).run)

    response = api.post("/api/scheduler/events/deploy.done")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["event"] == "deploy.done"
    triggered = {row["task"]: row for row in body["triggered"]}
    assert set(triggered) == {"first", "second"}
    assert triggered["first"]["task_id"] == first.pk
    run = Run.objects.get(pk=triggered["second"]["run_id"])
    assert run.system_env["SCRIPTOPS_EVENT"] == "deploy.done"
    assert TaskRun.objects.get(run=run).trigger == Trigger.EVENT
    skipped = {row["task"]: row["reason"] for row in body["skipped"]}
    assert skipped["off"] == "Task is disabled."
    assert "still running" in skipped["busy"]
    assert set(skipped) == {"off", "busy"}
    assert second.pk in {row["task_id"] for row in body["triggered"]}


def test_an_event_nobody_listens_to_triggers_nothing(api: APIClient) -> None:
    body = api.post("/api/scheduler/events/nobody").json()
    assert body == {"event": "nobody", "triggered": [], "skipped": []}


def test_an_invalid_event_name_is_a_404(api: APIClient) -> None:
    assert api.post("/api/scheduler/events/bad%20name").status_code == 404


# -- webhooks -------------------------------------------------------------------------------------


def hook(token: str, body: bytes = b"", content_type: str = "application/json") -> object:
    return APIClient().generic("POST", f"/api/scheduler/hooks/{token}", body, content_type=content_type)


def test_create_with_webhook_shows_the_token_once_and_stores_its_hash(api: APIClient, script: object) -> None:
    body = api.post(
        "/api/scheduler/tasks", {"name": "hooked", "script_path": str(script), "webhook": True}, format="json"
    ).json()
    token = body["webhook_token"]
    assert body["has_webhook"] is True
    assert body["webhook_url"] == f"http://testserver/api/scheduler/hooks/{token}"
    task = ScheduledTask.objects.get(pk=body["id"])
    assert task.webhook_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(api.get(f"/api/scheduler/tasks/{task.pk}").json())
    assert "webhook_token" not in api.get(f"/api/scheduler/tasks/{task.pk}").json()


def test_a_webhook_runs_the_task_with_its_payload(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    payload = b'{"ref": "refs/heads/main", "commits": [1, 2]}'

    response = hook(token, payload)  # no credentials: the token is the credential

    assert response.status_code == 202, response.content  # type: ignore[attr-defined]
    answer = response.json()  # type: ignore[attr-defined]
    assert answer["task_id"] == task.pk and answer["outcome"] == "queued"
    run = Run.objects.get(pk=answer["run_id"])
    assert run.system_env["SCRIPTOPS_WEBHOOK_PAYLOAD"] == payload.decode()
    assert build_plan(run)["env"]["SCRIPTOPS_WEBHOOK_PAYLOAD"] == payload.decode()
    assert TaskRun.objects.get(run=run).trigger == Trigger.WEBHOOK


def test_an_empty_webhook_body_is_a_null_payload(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    answer = hook(token).json()  # type: ignore[attr-defined]
    assert Run.objects.get(pk=answer["run_id"]).system_env["SCRIPTOPS_WEBHOOK_PAYLOAD"] == "null"


def test_rotating_invalidates_the_old_token(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("hooked")
    old = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    new = api.post(f"/api/scheduler/tasks/{task.pk}/webhook/").json()["webhook_token"]
    assert old != new
    assert hook(old).status_code == 404  # type: ignore[attr-defined]
    assert hook(new).status_code == 202  # type: ignore[attr-defined]


def test_removing_the_webhook(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    assert api.delete(f"/api/scheduler/tasks/{task.pk}/webhook").status_code == 204
    assert hook(token).status_code == 404  # type: ignore[attr-defined]
    assert api.get(f"/api/scheduler/tasks/{task.pk}").json()["has_webhook"] is False


def test_unknown_token_404_and_disabled_task_409(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    missing = hook("whk_" + "x" * 43)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"  # type: ignore[attr-defined]
    task_pause(task=task)
    disabled = hook(token)
    assert disabled.status_code == 409, disabled.content  # type: ignore[attr-defined]
    assert "disabled" in disabled.json()["message"]  # type: ignore[attr-defined]
    assert Run.objects.count() == 0


def test_a_body_over_the_cap_is_a_413(
    api: APIClient, make_task: Callable[..., ScheduledTask], settings: object
) -> None:
    settings.SCHEDULER_WEBHOOK_MAX_BYTES = 1024  # type: ignore[attr-defined]
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    big = json.dumps({"blob": "x" * 2000}).encode()
    response = hook(token, big)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert response.json()["error"] == "payload_too_large"  # type: ignore[attr-defined]
    assert hook(token, json.dumps({"blob": "x" * 900}).encode()).status_code == 202  # type: ignore[attr-defined]
    assert Run.objects.count() == 1


def test_the_default_cap_is_64_kib(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    assert hook(token, b'"' + b"x" * (64 * 1024) + b'"').status_code == 413  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"a=1&b=2", b"[" * 50_000])
def test_a_body_that_is_not_json_is_a_400(
    api: APIClient, make_task: Callable[..., ScheduledTask], body: bytes
) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    response = hook(token, body)
    assert response.status_code == 400, response.content  # type: ignore[attr-defined]
    assert Run.objects.count() == 0


def test_a_skipped_webhook_trigger_is_accepted_without_a_run(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("hooked")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    assert hook(token).status_code == 202  # type: ignore[attr-defined]
    second = hook(token).json()  # type: ignore[attr-defined]
    assert second["run_id"] is None and second["outcome"] == Outcome.SKIPPED
    assert "still queued" in second["reason"]


def test_webhooks_are_throttled(
    api: APIClient, make_task: Callable[..., ScheduledTask], settings: object
) -> None:
    rest = dict(settings.REST_FRAMEWORK)  # type: ignore[attr-defined]
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "scheduler_hook": "3/min"}
    settings.REST_FRAMEWORK = rest  # type: ignore[attr-defined]
    cache.clear()
    task = make_task("hooked", overlap_policy="allow")
    token = api.post(f"/api/scheduler/tasks/{task.pk}/webhook").json()["webhook_token"]
    codes = [hook(token).status_code for _ in range(4)]  # type: ignore[attr-defined]
    assert codes == [202, 202, 202, 429]
    cache.clear()
