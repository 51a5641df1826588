"""The idle tick: one precompiled statement when nothing is due and no finished run waits,
and the work it looks for is still found by the very next tick."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import task_run_now, tasks_fire_due
from tests.scheduler.conftest import NOW, finish

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def test_an_idle_tick_is_one_statement(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("scheduled", interval_seconds=60, now=NOW)
    up = make_task("up")
    make_task("down", depends_on=[up.pk])
    finish(task_run_now(task=up, now=NOW).run)
    tasks_fire_due(now=NOW + S)  # the dependent runs; every entry is handled now
    assert not TaskRun.objects.filter(downstream_handled=False, run__status="completed").exists()

    with CaptureQueriesContext(connection) as queries:
        result = tasks_fire_due(now=NOW + 59 * S)

    assert result.summary() == {"fired": 0, "dependents": 0, "handled": 0, "errors": []}
    assert len(queries) == 1, [query["sql"] for query in queries]


def test_the_tick_after_idle_ones_fires_a_due_task_and_a_ready_dependent(
    make_task: Callable[..., ScheduledTask],
) -> None:
    """Nothing is remembered between ticks: a due time reached, a due time moved earlier
    by another process (a plain UPDATE, no service), and an upstream run finished since
    the last tick are all acted on by the next one."""
    scheduled = make_task("scheduled", interval_seconds=60, now=NOW)
    moved = make_task("moved", interval_seconds=3600, now=NOW)
    up = make_task("up")
    down = make_task("down", depends_on=[up.pk])
    upstream = task_run_now(task=up, now=NOW).run
    for second in (1, 30, 59):
        assert tasks_fire_due(now=NOW + second * S).summary()["fired"] == 0

    finish(upstream)
    ScheduledTask.objects.filter(pk=moved.pk).update(next_run_at=NOW + 59.5 * S)
    result = tasks_fire_due(now=NOW + 60.1 * S)

    assert sorted(entry.task_id for entry in result.fired) == sorted([scheduled.pk, moved.pk])
    assert all(entry.trigger == Trigger.SCHEDULE for entry in result.fired)
    [dependent] = result.dependents
    assert (dependent.task_id, dependent.trigger, dependent.outcome) == (
        down.pk,
        Trigger.DEPENDENCY,
        Outcome.QUEUED,
    )
    assert tasks_fire_due(now=NOW + 60.2 * S).summary()["fired"] == 0


def test_a_due_task_alone_or_a_finished_run_alone_is_found(make_task: Callable[..., ScheduledTask]) -> None:
    """Each half of the check opens its own step: one being true never stands for the other."""
    scheduled = make_task("scheduled", interval_seconds=60, now=NOW)
    up = make_task("up")
    down = make_task("down", depends_on=[up.pk])

    [entry] = tasks_fire_due(now=NOW + 61 * S).fired
    assert entry.task_id == scheduled.pk

    finish(task_run_now(task=up, now=NOW + 62 * S).run)
    result = tasks_fire_due(now=NOW + 63 * S)
    assert result.fired == [] and [e.task_id for e in result.dependents] == [down.pk]
