"""Dependencies: a task's success queues the dependents whose upstream tasks all succeeded
since their own last run; the upstream runs reach them as environment variables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone

from runs.models import RunStatus
from runs.services.execution import build_plan
from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import task_pause, task_run_now, tasks_fire_due
from tests.scheduler.conftest import finish, start

pytestmark = pytest.mark.django_db


def runs_of(task: ScheduledTask) -> list[TaskRun]:
    return list(TaskRun.objects.filter(task=task, run__isnull=False).order_by("fired_at", "id"))


def test_a_success_queues_the_dependent_with_the_upstream_run_in_its_environment(
    make_task: Callable[..., ScheduledTask],
) -> None:
    build = make_task("build-app.v2")
    deploy = make_task("deploy", depends_on=[build.pk])
    upstream = finish(task_run_now(task=build).run, exit_code=0)

    result = tasks_fire_due()

    [entry] = result.dependents
    assert (entry.task_id, entry.trigger, entry.outcome) == (deploy.pk, Trigger.DEPENDENCY, Outcome.QUEUED)
    assert entry.upstream == {
        "build-app.v2": {
            "task_id": build.pk,
            "run_id": str(upstream.pk),
            "exit_code": 0,
            "status": "completed",
        }
    }
    assert entry.run is not None
    env = entry.run.system_env
    assert env["SCRIPTOPS_UPSTREAM_BUILD_APP_V2_RUN_ID"] == str(upstream.pk)
    assert env["SCRIPTOPS_UPSTREAM_BUILD_APP_V2_EXIT_CODE"] == "0"
    assert env["SCRIPTOPS_UPSTREAM_BUILD_APP_V2_STATUS"] == "completed"
    assert env["SCRIPTOPS_TRIGGER"] == "dependency"
    # And the runner really puts them in the script's environment.
    assert build_plan(entry.run)["env"]["SCRIPTOPS_UPSTREAM_BUILD_APP_V2_RUN_ID"] == str(upstream.pk)


def test_a_chain_runs_in_order_and_stops_at_a_failure(make_task: Callable[..., ScheduledTask]) -> None:
    a = make_task("a")
    b = make_task("b", depends_on=[a.pk])
    c = make_task("c", depends_on=[b.pk])

    finish(task_run_now(task=a).run)
    assert [e.task_id for e in tasks_fire_due().dependents] == [b.pk]
    assert runs_of(c) == []
    finish(runs_of(b)[0].run)
    assert [e.task_id for e in tasks_fire_due().dependents] == [c.pk]

    # Second round: b fails, c is not queued.
    finish(task_run_now(task=a).run)
    tasks_fire_due()
    finish(runs_of(b)[-1].run, status=RunStatus.FAILED, exit_code=3)
    result = tasks_fire_due()
    assert result.dependents == [] and result.handled == 1
    assert len(runs_of(c)) == 1


def test_a_dependent_waits_for_all_its_upstream_tasks(make_task: Callable[..., ScheduledTask]) -> None:
    left = make_task("left")
    right = make_task("right")
    join = make_task("join", depends_on=[left.pk, right.pk])

    finish(task_run_now(task=left).run)
    assert tasks_fire_due().dependents == []
    right_run = finish(task_run_now(task=right).run, exit_code=0)
    [entry] = tasks_fire_due().dependents

    assert entry.task_id == join.pk
    assert set(entry.upstream) == {"left", "right"}
    assert entry.upstream["right"]["run_id"] == str(right_run.pk)
    # Both succeeded before join's last run: another success of left alone is not enough.
    finish(task_run_now(task=left).run)
    assert tasks_fire_due().dependents == []


def test_only_successes_since_the_dependents_last_run_count(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up")
    other = make_task("other")
    down = make_task("down", depends_on=[up.pk, other.pk])
    finish(task_run_now(task=up).run)
    finish(task_run_now(task=other).run)
    tasks_fire_due()
    assert len(runs_of(down)) == 1
    finish(runs_of(down)[0].run)  # ended first: a manual run honours the overlap policy (skip)
    task_run_now(task=down)  # a manual run later on
    finish(task_run_now(task=other).run)
    assert tasks_fire_due().dependents == []  # up's success predates down's last run


def test_a_finished_run_is_handled_once(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up")
    down = make_task("down", depends_on=[up.pk], overlap_policy="allow")
    finish(task_run_now(task=up).run)
    tasks_fire_due()
    tasks_fire_due()
    assert len(runs_of(down)) == 1


def test_disabled_dependents_are_not_queued(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up")
    down = make_task("down", depends_on=[up.pk])
    task_pause(task=down)
    finish(task_run_now(task=up).run)
    assert tasks_fire_due().dependents == []


def test_the_overlap_policy_applies_to_dependency_runs(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up")
    down = make_task("down", depends_on=[up.pk])
    start(task_run_now(task=down).run)
    finish(task_run_now(task=up).run)

    [entry] = tasks_fire_due().dependents

    assert entry.outcome == Outcome.SKIPPED and "still running" in entry.reason
    assert entry.upstream["up"]["status"] == "completed"


def test_cancelled_runs_do_not_trigger_dependents(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up")
    make_task("down", depends_on=[up.pk])
    finish(task_run_now(task=up).run, status=RunStatus.CANCELLED)
    assert tasks_fire_due().dependents == []


def test_a_dependent_is_told_which_upstream_succeeded_last(make_task: Callable[..., ScheduledTask]) -> None:
    up = make_task("up", overlap_policy="allow")
    down = make_task("down", depends_on=[up.pk], overlap_policy="allow")
    older = task_run_now(task=up).run
    newer = finish(task_run_now(task=up).run)
    finish(older)  # finished last
    assert older is not None and older.finished_at is not None and newer.finished_at is not None
    assert older.finished_at >= newer.finished_at
    entries = tasks_fire_due().dependents
    # Both finishes are handled in one tick: down runs once, with the latest success.
    assert len(entries) == 1 and entries[0].task_id == down.pk
    assert entries[0].upstream["up"]["run_id"] == str(older.pk)
    assert timezone.now() >= entries[0].fired_at
