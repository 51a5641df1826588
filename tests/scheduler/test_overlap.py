"""Overlap policies: what a trigger does while a previous run of the task is still active."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from core.errors import Conflict
from runs.models import Control, Run, RunStatus
from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import task_fire, task_run_now, tasks_fire_due
from tests.scheduler.conftest import NOW, finish, start

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def tick_at(seconds: float) -> list[TaskRun]:
    return tasks_fire_due(now=NOW + seconds * S).fired


def test_skip_records_the_tick_while_the_previous_run_is_active(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("t", interval_seconds=10, now=NOW)  # skip is the default
    [first] = tick_at(10)
    start(first.run)

    [second] = tick_at(20)

    assert second.outcome == Outcome.SKIPPED and second.run is None
    assert second.due_at == NOW + 20 * S
    assert f"Previous run {first.run_id} is still running" in second.reason
    assert Run.objects.count() == 1
    finish(first.run)
    [third] = tick_at(30)
    assert third.outcome == Outcome.QUEUED
    assert TaskRun.objects.filter(task=task).count() == 3


def test_skip_also_counts_a_queued_previous_run(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("t", interval_seconds=10, now=NOW)
    tick_at(10)
    [second] = tick_at(20)
    assert second.outcome == Outcome.SKIPPED and "still queued" in second.reason


def test_queue_waits_behind_the_active_run_and_keeps_at_most_one_waiting(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("t", interval_seconds=10, now=NOW, overlap_policy="queue")
    [first] = tick_at(10)
    start(first.run)

    [second] = tick_at(20)
    [third] = tick_at(30)

    assert second.outcome == Outcome.QUEUED
    assert second.run is not None and second.run.status == RunStatus.QUEUED
    # The same key, limit 1: the runs engine starts it only when the first has ended.
    assert (second.run.concurrency_key, second.run.concurrency_limit) == (task.concurrency_key, 1)
    assert f"Waits for run {first.run_id}" in second.reason
    assert third.outcome == Outcome.SKIPPED
    assert f"Run {second.run_id} is already waiting" in third.reason
    assert Run.objects.count() == 2


def test_cancel_previous_stops_the_active_run_then_starts(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t", interval_seconds=10, now=NOW, overlap_policy="cancel_previous")
    [first] = tick_at(10)
    start(first.run)

    [second] = tick_at(20)

    assert second.outcome == Outcome.QUEUED
    assert first.run is not None
    first.run.refresh_from_db()
    assert first.run.control == Control.CANCEL  # the runner stops it
    assert second.run is not None
    assert (second.run.concurrency_key, second.run.concurrency_limit) == (task.concurrency_key, 1)
    assert f"Cancelled previous run(s) {first.run_id}" in second.reason


def test_cancel_previous_cancels_a_queued_run_at_once(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("t", interval_seconds=10, now=NOW, overlap_policy="cancel_previous")
    [first] = tick_at(10)
    tick_at(20)
    assert first.run is not None
    first.run.refresh_from_db()
    assert first.run.status == RunStatus.CANCELLED


def test_allow_runs_alongside_without_a_limit(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("t", interval_seconds=10, now=NOW, overlap_policy="allow")
    runs = [entry.run for seconds in (10, 20, 30) for entry in tick_at(seconds)]
    assert all(run is not None for run in runs) and len(runs) == 3
    assert {(r.concurrency_key, r.concurrency_limit) for r in runs if r} == {("", None)}


def test_allow_with_max_concurrent_caps_runs_with_the_task_key(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("t", interval_seconds=10, now=NOW, overlap_policy="allow", max_concurrent=2)
    [entry] = tick_at(10)
    assert entry.run is not None
    assert (entry.run.concurrency_key, entry.run.concurrency_limit) == (task.concurrency_key, 2)


def test_skip_runs_carry_no_concurrency_key(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("t", interval_seconds=10, now=NOW)
    [entry] = tick_at(10)
    assert entry.run is not None
    assert (entry.run.concurrency_key, entry.run.concurrency_limit) == ("", None)


def test_a_manual_run_queues_under_the_queue_policy_with_the_same_key(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("t", interval_seconds=10, now=NOW, overlap_policy="queue")
    [scheduled] = tick_at(10)
    start(scheduled.run)

    manual = task_run_now(task=task)

    assert manual.trigger == Trigger.MANUAL and manual.outcome == Outcome.QUEUED
    assert manual.run is not None
    assert (manual.run.concurrency_key, manual.run.concurrency_limit) == (task.concurrency_key, 1)
    assert scheduled.run is not None
    scheduled.run.refresh_from_db()
    assert scheduled.run.status == RunStatus.RUNNING  # not cancelled, not skipped
    # A second manual run is skipped, as a tick would be: the queue policy keeps one waiting.
    with pytest.raises(Conflict, match="already waiting"):
        task_run_now(task=task)


def test_run_now_endpoint_answers_202_with_the_run_record(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    response = api.post(f"/api/scheduler/tasks/{task.pk}/run")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["task_id"] == task.pk
    assert body["run"]["status"] == "queued" and body["run"]["source"] == "scheduler"
    assert api.get(f"/api/runs/{body['run']['id']}").json() == body["run"]
    assert api.get(f"/api/scheduler/tasks/{task.pk}").json()["last_run"]["run_id"] == body["run"]["id"]


def test_overlap_is_decided_with_the_task_row_locked(make_task: Callable[..., ScheduledTask]) -> None:
    """Two triggers fired one after the other in one process see each other's run."""
    task = make_task("t", overlap_policy="skip")
    first = task_fire(task=task, trigger=Trigger.EVENT, event="e")
    second = task_fire(task=task, trigger=Trigger.EVENT, event="e")
    assert (first.outcome, second.outcome) == (Outcome.QUEUED, Outcome.SKIPPED)
