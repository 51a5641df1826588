"""Run now (``POST /api/scheduler/tasks/{id}/run``) honours the task's overlap policy like a
scheduled fire; ``force`` (admins only) bypasses it and is recorded with who forced it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.errors import Forbidden
from core.roles import Role
from core.services import api_key_create
from runs.models import Control, Run, RunStatus
from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import task_run_now
from tests.scheduler.conftest import start

pytestmark = pytest.mark.django_db


def run_url(task: ScheduledTask) -> str:
    return f"/api/scheduler/tasks/{task.pk}/run"


def run_now(
    client: APIClient, task: ScheduledTask, body: dict[str, Any] | None = None, query: str = ""
) -> Any:
    return client.post(run_url(task) + query, body, format="json")


def accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.content[:500]
    body: dict[str, Any] = response.json()
    assert body["outcome"] == Outcome.QUEUED
    return body


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    body: dict[str, Any] = response.json()
    assert body["error"] == code and body["message"]
    return body


def active_run(client: APIClient, task: ScheduledTask) -> Run:
    """A first run now, then marked running (as the runner would)."""
    return start(Run.objects.get(pk=accepted(run_now(client, task))["run"]["id"]))


def history(task: ScheduledTask) -> list[TaskRun]:
    return list(TaskRun.objects.filter(task=task).order_by("fired_at", "id"))


@pytest.fixture
def admin(roots: Any, client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.ADMIN)


# -- the policies -------------------------------------------------------------------------------


def test_skip_answers_409_and_records_the_skip_in_the_history(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")  # skip is the default
    first = active_run(api, task)

    body = refused(run_now(api, task), 409, "overlap_skipped")

    assert body["message"] == f"Run skipped: Previous run {first.pk} is still running (overlap policy skip)."
    assert Run.objects.count() == 1
    entries = history(task)
    assert [(e.trigger, e.outcome) for e in entries] == [
        (Trigger.MANUAL, Outcome.QUEUED),
        (Trigger.MANUAL, Outcome.SKIPPED),
    ]
    assert entries[1].run is None and f"Previous run {first.pk} is still running" in entries[1].reason
    # And the history API shows it like a skipped tick.
    [latest, _] = api.get(f"/api/scheduler/tasks/{task.pk}/runs").json()["results"]
    assert (latest["trigger"], latest["outcome"], latest["run_id"]) == ("manual", "skipped", None)


def test_skip_also_counts_a_queued_previous_run(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    accepted(run_now(api, task))  # queued, not started
    assert "still queued" in refused(run_now(api, task), 409, "overlap_skipped")["message"]


def test_skip_starts_a_run_once_the_previous_one_has_ended(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    first = active_run(api, task)
    Run.objects.filter(pk=first.pk).update(status=RunStatus.COMPLETED)
    assert accepted(run_now(api, task))["reason"] == ""


def test_queue_waits_behind_the_active_run_and_keeps_at_most_one_waiting(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="queue")
    first = active_run(api, task)

    second = accepted(run_now(api, task))
    third = refused(run_now(api, task), 409, "overlap_skipped")

    assert second["run"]["status"] == "queued"
    assert second["reason"] == f"Waits for run {first.pk} (overlap policy queue)."
    run = Run.objects.get(pk=second["run"]["id"])
    assert (run.concurrency_key, run.concurrency_limit) == (task.concurrency_key, 1)
    assert f"Run {run.pk} is already waiting behind run {first.pk}" in third["message"]
    assert [e.outcome for e in history(task)] == [Outcome.QUEUED, Outcome.QUEUED, Outcome.SKIPPED]
    assert Run.objects.count() == 2


def test_cancel_previous_cancels_the_active_run_then_starts(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="cancel_previous")
    first = active_run(api, task)

    second = accepted(run_now(api, task))

    first.refresh_from_db()
    assert first.control == Control.CANCEL  # the runner stops it
    assert second["reason"] == f"Cancelled previous run(s) {first.pk}; starts once they have stopped."
    run = Run.objects.get(pk=second["run"]["id"])
    assert (run.concurrency_key, run.concurrency_limit) == (task.concurrency_key, 1)
    assert history(task)[-1].reason == second["reason"]


def test_cancel_previous_cancels_a_queued_run_at_once(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="cancel_previous")
    first = accepted(run_now(api, task))
    accepted(run_now(api, task))
    assert Run.objects.get(pk=first["run"]["id"]).status == RunStatus.CANCELLED


def test_allow_starts_side_by_side(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t", overlap_policy="allow")
    first = active_run(api, task)

    second = accepted(run_now(api, task))
    third = accepted(run_now(api, task))

    first.refresh_from_db()
    assert first.status == RunStatus.RUNNING and first.control == ""
    runs = Run.objects.filter(pk__in=[second["run"]["id"], third["run"]["id"]])
    assert {(r.concurrency_key, r.concurrency_limit) for r in runs} == {("", None)}
    assert (second["reason"], third["reason"]) == ("", "")


def test_allow_with_max_concurrent_carries_the_task_key(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="allow", max_concurrent=2)
    active_run(api, task)
    run = Run.objects.get(pk=accepted(run_now(api, task))["run"]["id"])
    assert (run.concurrency_key, run.concurrency_limit) == (task.concurrency_key, 2)


# -- force ----------------------------------------------------------------------------------------


def test_an_admin_forces_a_run_past_skip_and_the_history_says_who(
    admin: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    first = active_run(admin, task)

    body = accepted(run_now(admin, task, {"force": True}))

    reason = f"Forced by admin-user: overlap policy skip bypassed; runs alongside active run(s) {first.pk}."
    assert body["reason"] == reason
    forced = history(task)[-1]
    assert (forced.trigger, forced.outcome, forced.reason) == (Trigger.MANUAL, Outcome.QUEUED, reason)
    run = Run.objects.get(pk=body["run"]["id"])
    assert forced.run_id == run.pk and run.created_by is not None
    assert run.created_by.username == "admin-user"
    first.refresh_from_db()
    assert first.status == RunStatus.RUNNING


def test_force_in_the_query_string_works_too(
    admin: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    active_run(admin, task)
    assert accepted(run_now(admin, task, query="?force=true"))["reason"].startswith("Forced by admin-user")
    # The body wins over the query string.
    refused(run_now(admin, task, {"force": False}, query="?force=true"), 409, "overlap_skipped")


def test_force_neither_cancels_nor_waits_but_keeps_the_task_key(
    admin: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="cancel_previous")
    first = active_run(admin, task)

    body = accepted(run_now(admin, task, {"force": True}))

    first.refresh_from_db()
    assert first.control == ""  # not cancelled
    run = Run.objects.get(pk=body["run"]["id"])
    # No limit of its own (starts at once), but later runs of the key still count it.
    assert (run.concurrency_key, run.concurrency_limit) == (task.concurrency_key, None)
    assert "overlap policy cancel_previous bypassed" in body["reason"]


def test_a_forced_run_with_nothing_active_says_so(
    admin: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="queue")
    body = accepted(run_now(admin, task, {"force": True}))
    assert body["reason"] == "Forced by admin-user: overlap policy queue bypassed (no run was active)."


@pytest.mark.parametrize("role", [Role.EXECUTOR, Role.USER])
def test_force_is_refused_to_non_admins_and_nothing_is_recorded(
    role: str, roots: Any, client_for: Callable[[str], APIClient], make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", overlap_policy="allow")
    client = client_for(role)

    refused(run_now(client, task, {"force": True}), 403, "permission_denied")
    refused(run_now(client, task, query="?force=1"), 403, "permission_denied")

    assert Run.objects.count() == 0 and history(task) == []
    accepted(run_now(client, task, {"force": False}))  # asking for no force is fine


def test_force_needs_an_admin_key_not_just_an_admin_user(
    roots: Any, user_for: Callable[[str], Any], make_task: Callable[..., ScheduledTask]
) -> None:
    """An API key narrower than its user's role gets what the key allows."""
    issued = api_key_create(user=user_for(Role.ADMIN), name="narrow", role=Role.EXECUTOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    refused(run_now(client, make_task("t"), {"force": True}), 403, "permission_denied")


def test_a_force_that_is_not_a_boolean_is_refused(
    admin: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    assert "force" in refused(run_now(admin, task, {"force": "maybe"}), 400, "validation_error")["details"]
    refused(admin.post(run_url(task), [1], format="json"), 400, "validation_error")
    assert Run.objects.count() == 0


def test_the_service_refuses_a_force_without_a_user(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t")
    with pytest.raises(Forbidden):
        task_run_now(task=task, force=True)
    assert history(task) == []
