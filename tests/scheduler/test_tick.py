"""The tick (``tasks_fire_due``) with an injected clock: due times, compare-and-set, misfires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule as QSchedule

from runs.models import Run, RunStatus
from scheduler import conf
from scheduler.models import Outcome, ScheduledTask, TaskRun, Trigger
from scheduler.services import fallback_schedule_ensure, task_pause, tasks_fire_due
from scheduler.tasks import tick
from tests.scheduler.conftest import NOW, finish

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def entries(task: ScheduledTask) -> list[TaskRun]:
    return list(TaskRun.objects.filter(task=task).order_by("fired_at", "id"))


def test_nothing_fires_before_it_is_due(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t", interval_seconds=60, now=NOW)
    result = tasks_fire_due(now=NOW + 59 * S)
    assert result.fired == [] and entries(task) == []


def test_a_due_task_fires_once_and_its_next_due_time_keeps_the_cadence(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("t", interval_seconds=60, now=NOW, args=["x"])

    result = tasks_fire_due(now=NOW + 60.4 * S)

    [entry] = result.fired
    assert (entry.trigger, entry.outcome, entry.due_at) == (Trigger.SCHEDULE, Outcome.QUEUED, NOW + 60 * S)
    assert entry.fired_at == NOW + 60.4 * S
    run = entry.run
    assert run is not None and run.status == RunStatus.QUEUED
    assert (run.source, run.args, run.script_path) == ("scheduler", ["x"], task.script_path)
    assert (run.concurrency_key, run.concurrency_limit) == ("", None)  # skip needs no key
    assert run.system_env["SCRIPTOPS_TRIGGER"] == "schedule"
    task.refresh_from_db()
    assert task.next_run_at == NOW + 120 * S  # from the due time, not from when it fired


def test_a_second_tick_at_the_same_moment_starts_nothing(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t", interval_seconds=60, now=NOW)
    tasks_fire_due(now=NOW + 61 * S)
    assert tasks_fire_due(now=NOW + 61 * S).fired == []
    assert Run.objects.count() == 1 and len(entries(task)) == 1


def test_a_tick_that_lost_the_claim_starts_nothing(
    make_task: Callable[..., ScheduledTask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process advanced next_run_at between this tick's read and its claim."""
    task = make_task("t", interval_seconds=60, now=NOW)
    from scheduler.services import firing

    real_plan = firing.plan_tick

    def racing_plan(*args: Any, **kwargs: Any) -> Any:
        ScheduledTask.objects.filter(pk=task.pk).update(next_run_at=NOW + 120 * S)  # the other process won
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(firing, "plan_tick", racing_plan)
    assert tasks_fire_due(now=NOW + 61 * S).fired == []
    assert Run.objects.count() == 0


def test_cron_tasks_fire_in_their_time_zone(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("nightly", cron="30 2 * * *", timezone="Europe/Paris", now=NOW)
    due = NOW.replace(day=2, hour=1, minute=30)  # 02:30 CET
    assert tasks_fire_due(now=due - S).fired == []
    [entry] = tasks_fire_due(now=due + S).fired
    assert entry.due_at == due
    task.refresh_from_db()
    assert task.next_run_at == due + timedelta(days=1)


def test_disabled_and_unscheduled_tasks_never_fire(make_task: Callable[..., ScheduledTask]) -> None:
    paused = make_task("paused", interval_seconds=60, now=NOW)
    task_pause(task=paused)
    make_task("manual-only", now=NOW)
    assert tasks_fire_due(now=NOW + timedelta(days=1)).fired == []


def test_misfire_run_once_runs_once_after_downtime(make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("hourly", cron="0 * * * *", now=NOW, misfire_policy="run_once")
    # No worker from 12:00 until 17:10: the ticks of 13:00 … 17:00 were missed.
    now = NOW + timedelta(hours=5, minutes=10)

    result = tasks_fire_due(now=now)

    [entry] = result.fired
    assert entry.outcome == Outcome.QUEUED and entry.due_at == NOW + timedelta(hours=5)
    assert "Runs once for 5 due time(s)" in entry.reason
    task.refresh_from_db()
    assert task.next_run_at == NOW + timedelta(hours=6)
    assert Run.objects.count() == 1


def test_misfire_skip_records_the_missed_ticks_and_starts_nothing(
    make_task: Callable[..., ScheduledTask],
) -> None:
    task = make_task("hourly", cron="0 * * * *", now=NOW, misfire_policy="skip")
    now = NOW + timedelta(hours=5, minutes=10)

    [entry] = tasks_fire_due(now=now).fired

    assert entry.outcome == Outcome.SKIPPED and entry.run is None
    assert entry.due_at == NOW + timedelta(hours=1)
    assert "5 due time(s)" in entry.reason and "misfire policy skip" in entry.reason
    assert entry.downstream_handled is True
    assert Run.objects.count() == 0
    task.refresh_from_db()
    assert task.next_run_at == NOW + timedelta(hours=6)


def test_a_slightly_late_tick_is_not_a_misfire(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("daily", cron="0 3 * * *", now=NOW, misfire_policy="skip")
    due = NOW.replace(day=2, hour=3)
    [entry] = tasks_fire_due(now=due + timedelta(seconds=conf.misfire_grace() - 1)).fired
    assert entry.outcome == Outcome.QUEUED


def test_a_broken_task_does_not_stop_the_others(
    make_task: Callable[..., ScheduledTask], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = make_task("bad", interval_seconds=60, now=NOW)
    good = make_task("good", interval_seconds=60, now=NOW)
    from scheduler.services import firing

    real = firing._decide

    def decide(task: ScheduledTask, **kwargs: Any) -> tuple[TaskRun, dict[str, Any] | None]:
        if task.pk == bad.pk:
            raise RuntimeError("boom")
        return real(task, **kwargs)

    monkeypatch.setattr(firing, "_decide", decide)
    result = tasks_fire_due(now=NOW + 61 * S)

    assert [e.task_id for e in result.fired] == [good.pk]
    assert result.errors and "boom" in result.errors[0]
    bad.refresh_from_db()
    assert bad.next_run_at == NOW + 60 * S  # given back by the failed fire: retried next tick


def test_the_fallback_tick_task_and_its_schedule(make_task: Callable[..., ScheduledTask]) -> None:
    make_task("t", interval_seconds=10, now=timezone.now() - timedelta(minutes=1))
    assert tick()["fired"] == 1
    # Migration 0002 creates the schedule; a test that flushes the database (any
    # transactional test run earlier in this process) removes it, and so would a restore
    # without data rows: serve ensures it at start, idempotently.
    QSchedule.objects.filter(name="scriptops.scheduler.tick").delete()
    assert fallback_schedule_ensure() is True
    assert fallback_schedule_ensure() is False
    fallback = QSchedule.objects.get(name="scriptops.scheduler.tick")
    assert (fallback.func, fallback.schedule_type, fallback.minutes, fallback.repeats) == (
        "scheduler.tasks.tick",
        QSchedule.MINUTES,
        1,
        -1,
    )


def test_finished_runs_of_tasks_without_dependents_are_marked_handled(
    make_task: Callable[..., ScheduledTask],
) -> None:
    make_task("t", interval_seconds=60, now=NOW)
    [entry] = tasks_fire_due(now=NOW + 61 * S).fired
    assert tasks_fire_due(now=NOW + 62 * S).handled == 0  # still queued
    finish(entry.run)
    assert tasks_fire_due(now=NOW + 63 * S).handled == 1
    entry.refresh_from_db()
    assert entry.downstream_handled is True
    assert tasks_fire_due(now=NOW + 64 * S).handled == 0


def test_many_due_tasks_fire_in_chunks_each_with_its_own_run(
    make_task: Callable[..., ScheduledTask],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """More due tasks than one transaction takes: each fires once, linked to its own run,
    and the runs reach the workers in one hand-over per chunk — after the commit."""
    from runs.services import lifecycle
    from scheduler.services import firing

    count = firing.TICK_CHUNK * 2 + 3
    tasks = [make_task(f"t{i:02d}", interval_seconds=60, now=NOW, args=[str(i)]) for i in range(count)]
    handed: list[list[str]] = []
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: handed.append(list(run_ids)))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = tasks_fire_due(now=NOW + 61 * S)

    assert len(result.fired) == count
    assert len(callbacks) == 3  # one per chunk
    assert [len(ids) for ids in handed] == [firing.TICK_CHUNK, firing.TICK_CHUNK, 3]
    for task in tasks:
        [entry] = entries(task)
        assert entry.outcome == Outcome.QUEUED and entry.run is not None
        assert entry.run.args == task.args and entry.run.source == "scheduler"
        assert entry.run.events.filter(kind="queued").count() == 1
    assert sorted(run_id for ids in handed for run_id in ids) == sorted(
        str(pk) for pk in Run.objects.values_list("pk", flat=True)
    )
    assert tasks_fire_due(now=NOW + 62 * S).fired == []  # claimed: nothing fires twice


def test_a_skipped_overlap_and_a_fire_share_a_chunk(make_task: Callable[..., ScheduledTask]) -> None:
    """The active runs are looked up for the whole chunk at once: a busy task skips while
    an idle one fires, in the same tick."""
    busy = make_task("busy", interval_seconds=10, now=NOW)
    [first] = tasks_fire_due(now=NOW + 10 * S).fired
    idle = make_task("idle", interval_seconds=10, now=NOW + 10 * S)

    fired = {entry.task_id: entry for entry in tasks_fire_due(now=NOW + 20 * S).fired}

    assert fired[busy.pk].outcome == Outcome.SKIPPED and fired[busy.pk].run is None
    assert f"Previous run {first.run_id} is still queued" in fired[busy.pk].reason
    assert fired[idle.pk].outcome == Outcome.QUEUED and fired[idle.pk].run is not None
