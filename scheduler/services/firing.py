"""Firing tasks: the tick (schedules and dependencies), events, webhooks, manual runs.

Everything that starts a run of a task goes through :func:`task_fire` (or its inner
``_fire`` when the caller already holds the task's row lock), which applies the overlap
policy with the task row locked, queues the run through ``runs`` (or ``library``
for a library script) and records a :class:`~scheduler.models.TaskRun`.

:func:`tasks_fire_due` is the one place that decides what is due. Several processes may
call it at once (``serve`` ticks every ``--tick-interval``, the django-q2 fallback every
minute, a second ``serve`` on another host): every decision is a compare-and-set on a
row — ``ScheduledTask.next_run_at`` for a due time, ``TaskRun.downstream_handled`` for a
finished upstream run — taken in the same transaction as the runs it creates, so a due
time or a finished run is acted on exactly once, and never lost if a process dies midway.

The runner ticks ten times a second, so an idle tick must be cheap: it is one statement,
compiled once from the tick's own querysets (``SELECT EXISTS(<due tasks>), EXISTS(<finished
runs not handled>)``), run again every tick with the current ``now`` — nothing is cached
between ticks, so a change made by another process is seen by the next one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from core.errors import Conflict, Forbidden, NotFound
from core.models import User
from core.precompiled import exists_statement
from library.services import script_run_params
from runs.models import ACTIVE, TERMINAL, Run, RunStatus
from runs.services import (
    run_control,
    run_enqueue,
    runs_enqueue_many,
)
from scheduler import conf
from scheduler.models import (
    Outcome,
    OverlapPolicy,
    ScheduledTask,
    ScheduleType,
    TaskRun,
    Trigger,
)
from scheduler.schedules import TickPlan, plan_tick
from scheduler.services.tasks import hash_token

logger = logging.getLogger(__name__)

SOURCE = "scheduler"


def _clip(text: str, size: int = 500) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _when(value: datetime) -> str:
    return value.astimezone(timezone.get_current_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")


def task_environment(
    *,
    task: ScheduledTask,
    trigger: str,
    event: str = "",
    upstream: dict[str, dict[str, Any]] | None = None,
    payload: str | None = None,
) -> dict[str, str]:
    """The variables a run of ``task`` gets from the scheduler.

    ``SCRIPTOPS_UPSTREAM_<TASK>_RUN_ID`` / ``_EXIT_CODE`` / ``_STATUS`` per upstream task
    (``<TASK>``: its name upper-cased, every non-alphanumeric character as ``_``), and
    ``SCRIPTOPS_WEBHOOK_PAYLOAD`` (the request body) for a webhook run.
    """
    env = {
        "SCRIPTOPS_TASK_ID": str(task.pk),
        "SCRIPTOPS_TASK_NAME": task.name,
        "SCRIPTOPS_TRIGGER": trigger,
    }
    if event:
        env["SCRIPTOPS_EVENT"] = event
    for info in (upstream or {}).values():
        prefix = f"SCRIPTOPS_UPSTREAM_{info['env_name']}_"
        env[prefix + "RUN_ID"] = str(info["run_id"])
        env[prefix + "EXIT_CODE"] = "" if info["exit_code"] is None else str(info["exit_code"])
        env[prefix + "STATUS"] = str(info["status"])
    if payload is not None:
        env["SCRIPTOPS_WEBHOOK_PAYLOAD"] = payload
    return env


def _run_params(task: ScheduledTask, *, env: dict[str, str], force: bool = False) -> dict[str, Any]:
    """The fields of a run of ``task`` (raises Conflict for a library script that cannot run)."""
    # system_env: set by ScriptOps, not the caller, so SCRIPTOPS_* names pass the deny list.
    params: dict[str, Any] = {**task.run_options(), "system_env": env, "task_name": task.name}
    concurrency: tuple[str, int | None] | None = task.concurrency()
    if force and concurrency is not None:
        # A forced run starts now (no limit of its own) but keeps the task's key, so the
        # runs of ``queue``/``cancel_previous``/``max_concurrent`` still count it.
        concurrency = (concurrency[0], None)
    if task.script is not None:
        return script_run_params(script=task.script, params=params, concurrency=concurrency)
    params["script_path"] = task.script_path
    if concurrency is not None:
        params["concurrency_key"], params["concurrency_limit"] = concurrency
    return params


def _entry(task: ScheduledTask, *, outcome: str, **fields: Any) -> TaskRun:
    """An unsaved history entry. Only a finished run can trigger dependents: entries that
    start no run are handled already."""
    fields["reason"] = _clip(fields.get("reason", ""))
    return TaskRun(task=task, outcome=outcome, downstream_handled=outcome != Outcome.QUEUED, **fields)


def _record(task: ScheduledTask, *, outcome: str, **fields: Any) -> TaskRun:
    entry = _entry(task, outcome=outcome, **fields)
    entry.save()
    return entry


def task_fire(
    *,
    task: ScheduledTask,
    trigger: str,
    user: User | None = None,
    now: datetime | None = None,
    event: str = "",
    due_at: datetime | None = None,
    upstream: dict[str, dict[str, Any]] | None = None,
    payload: str | None = None,
    reason: str = "",
    force: bool = False,
) -> TaskRun:
    """Start a run of ``task`` unless its overlap policy says no; record what happened.

    The overlap policy applies to every trigger, ``manual`` included, and every run
    carries the task's concurrency key: see :meth:`ScheduledTask.concurrency`. ``force``
    (a manual run by an admin: the caller checks) bypasses the policy: see
    :func:`task_run_now`. A run that cannot be created (an archived library script) is
    recorded with outcome ``error``; a manual run raises instead (409).
    """
    with transaction.atomic():
        # The row lock serialises decisions about one task across processes (PostgreSQL;
        # SQLite's IMMEDIATE transactions serialise all writers): two triggers cannot both
        # see "nothing active", nor both take the one waiting place of ``queue``.
        locked = (
            ScheduledTask.objects.select_for_update(of=("self",)).select_related("script").get(pk=task.pk)
        )
        return _fire(
            locked,
            trigger=trigger,
            user=user,
            now=now or timezone.now(),
            event=event,
            due_at=due_at,
            upstream=upstream,
            payload=payload,
            reason=reason,
            force=force,
        )


def _fire(task: ScheduledTask, *, user: User | None = None, **firing: Any) -> TaskRun:
    """:func:`task_fire` for a caller inside a transaction that holds the task's row lock
    (``firing``: the keyword arguments of :func:`_decide`)."""
    entry, params = _decide(task, user=user, **firing)
    if params is not None:
        entry.run = run_enqueue(params=params, user=user, source=SOURCE)
    entry.save()
    return entry


def _decide(
    task: ScheduledTask,
    *,
    trigger: str,
    now: datetime,
    user: User | None = None,
    event: str = "",
    due_at: datetime | None = None,
    upstream: dict[str, dict[str, Any]] | None = None,
    payload: str | None = None,
    reason: str = "",
    active: list[tuple[Any, str]] | None = None,
    force: bool = False,
) -> tuple[TaskRun, dict[str, Any] | None]:
    """What firing ``task`` does, nothing saved yet: its history entry and, when a run is
    to start, the run's fields (the caller creates the run and links it to the entry).

    The overlap policy is applied here (``cancel_previous`` cancels at once), unless
    ``force``: then the run starts alongside the active ones and its entry says who forced
    it. ``active`` is the task's active runs (oldest first) when the caller already looked
    them up under the same lock (the tick does it for all its due tasks in one query)."""
    base: dict[str, Any] = {
        "trigger": trigger,
        "event": event,
        "due_at": due_at,
        "fired_at": now,
        "upstream": {name: _public(info) for name, info in (upstream or {}).items()},
    }
    notes = [reason] if reason else []
    if active is None:
        active = _active_runs([task.pk]).get(task.pk, [])
    if force:
        notes.append(_forced_note(task, user=user, active=active))
    elif active:
        policy = task.overlap_policy
        run_id, status = active[0]
        if policy == OverlapPolicy.SKIP:
            skip = f"Previous run {run_id} is still {status} (overlap policy skip)."
            return _entry(task, outcome=Outcome.SKIPPED, reason=skip, **base), None
        if policy == OverlapPolicy.QUEUE and len(active) >= 2:
            skip = (
                f"Run {active[-1][0]} is already waiting behind run {run_id} "
                "(overlap policy queue keeps at most one waiting)."
            )
            return _entry(task, outcome=Outcome.SKIPPED, reason=skip, **base), None
        if policy == OverlapPolicy.QUEUE:
            notes.append(f"Waits for run {run_id} (overlap policy queue).")
        elif policy == OverlapPolicy.CANCEL_PREVIOUS:
            for pk, _ in active:
                try:
                    run_control(run=Run.objects.get(pk=pk), command="cancel", user=user)
                except Conflict:
                    pass  # it finished meanwhile
            ids = ", ".join(str(pk) for pk, _ in active)
            notes.append(f"Cancelled previous run(s) {ids}; starts once they have stopped.")
    env = task_environment(task=task, trigger=trigger, event=event, upstream=upstream, payload=payload)
    try:
        params = _run_params(task, env=env, force=force)
    except Conflict as exc:
        if trigger == Trigger.MANUAL:
            raise
        return _entry(task, outcome=Outcome.ERROR, reason=exc.message, **base), None
    return _entry(task, outcome=Outcome.QUEUED, reason=" ".join(notes), **base), params


def _active_runs(task_ids: list[int]) -> dict[int, list[tuple[Any, str]]]:
    """``{task id: [(run id, status), ...]}``: the tasks' active runs, oldest first."""
    rows = (
        TaskRun.objects.filter(task_id__in=task_ids, run__status__in=ACTIVE)
        .order_by("run__created_at", "run_id")
        .values_list("task_id", "run_id", "run__status")
    )
    active: dict[int, list[tuple[Any, str]]] = {}
    for task_id, run_id, status in rows:
        runs = active.setdefault(task_id, [])
        if (run_id, status) not in runs:
            runs.append((run_id, status))
    return active


def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in info.items() if key != "env_name"}


# The ``code`` of the 409 a manual run answers when the overlap policy skips it.
OVERLAP_SKIPPED = "overlap_skipped"


def task_run_now(
    *, task: ScheduledTask, user: User | None = None, now: datetime | None = None, force: bool = False
) -> TaskRun:
    """Run now (enabled or not), under the task's overlap policy like any other trigger:
    ``queue`` waits behind the active run, ``cancel_previous`` cancels it first, ``allow``
    runs alongside, and ``skip`` (or ``queue`` with one already waiting) records a
    ``skipped`` entry, then raises :class:`Conflict` with code ``overlap_skipped`` (409).

    ``force`` bypasses the policy: the run starts at once, alongside any active run (none
    is cancelled), and its entry records who forced it. Admins only — the caller checks
    the role (an API key may carry less than its user's); a force with no user is refused.
    """
    if force and user is None:
        raise Forbidden("A forced run needs a known user (an admin).")
    entry = task_fire(task=task, trigger=Trigger.MANUAL, user=user, now=now, force=force)
    if entry.outcome == Outcome.SKIPPED:
        # Raised after task_fire's transaction: the skip stays in the history, as a
        # skipped tick's does, and the caller is told why nothing started.
        raise Conflict(f"Run skipped: {entry.reason}", code=OVERLAP_SKIPPED)
    return entry


def _forced_note(task: ScheduledTask, *, user: User | None, active: list[tuple[Any, str]]) -> str:
    """The history's record of a forced run: who, and what the policy would have done."""
    who = user.get_username() if user is not None else "unknown"
    note = f"Forced by {who}: overlap policy {task.overlap_policy} bypassed"
    if not active:
        return note + " (no run was active)."
    ids = ", ".join(str(pk) for pk, _ in active)
    return note + f"; runs alongside active run(s) {ids}."


# -- events and webhooks ------------------------------------------------------------------


@dataclass
class EventResult:
    event: str
    triggered: list[tuple[ScheduledTask, TaskRun]] = field(default_factory=list)
    skipped: list[tuple[ScheduledTask, str]] = field(default_factory=list)


def event_fire(*, name: str, user: User | None = None, now: datetime | None = None) -> EventResult:
    """Queue every enabled task listening to ``name``; report the others with a reason."""
    result = EventResult(event=name)
    for task in ScheduledTask.objects.filter(events__name=name).distinct().order_by("name"):
        if not task.enabled:
            result.skipped.append((task, "Task is disabled."))
            continue
        entry = task_fire(task=task, trigger=Trigger.EVENT, event=name, user=user, now=now)
        if entry.outcome == Outcome.QUEUED:
            result.triggered.append((task, entry))
        else:
            result.skipped.append((task, entry.reason))
    return result


def hook_fire(*, token: str, payload: str, now: datetime | None = None) -> TaskRun:
    """Run the task whose webhook token is ``token`` with ``payload`` (the request body).

    Unknown token: 404; disabled task or a run that cannot be created: 409. A trigger the
    overlap policy skips is recorded and returned (no run).
    """
    task = ScheduledTask.objects.filter(webhook_hash=hash_token(token)).first() if token else None
    if task is None:
        raise NotFound("Unknown webhook token.")
    if not task.enabled:
        raise Conflict(f"Task {task.name} is disabled.")
    entry = task_fire(task=task, trigger=Trigger.WEBHOOK, payload=payload, now=now)
    if entry.outcome == Outcome.ERROR:
        raise Conflict(entry.reason)
    return entry


# -- the tick -------------------------------------------------------------------------------


@dataclass
class TickResult:
    """What one tick did: entries created for due times and for dependents."""

    fired: list[TaskRun] = field(default_factory=list)
    dependents: list[TaskRun] = field(default_factory=list)
    handled: int = 0  # finished upstream runs handled
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "fired": len(self.fired),
            "dependents": len(self.dependents),
            "handled": self.handled,
            "errors": self.errors,
        }


def tasks_fire_due(*, now: datetime | None = None) -> TickResult:
    """The tick: fire every due task once, then queue the dependents of finished runs.

    Safe to call from several processes at once, and as often as wanted; each step is a
    compare-and-set (see the module docstring). A tick with nothing to do is one indexed
    statement (:func:`_work_pending`); the querysets of a step are built only when that
    statement says the step has work.
    """
    now = now or timezone.now()
    result = TickResult()
    # The runner ticks 10 times a second and almost every tick finds nothing: one
    # precompiled statement tells whether either step has work, so an idle tick builds no
    # queryset. It is read from the database every tick (tasks and runs change in other
    # processes), with the very filters of the steps below, so it never skips work they
    # would have found.
    any_due, any_finished = _work_pending(now)
    if any_due:
        # One query for all of them: a task read here and changed before its claim below
        # is fine — a new schedule also moves next_run_at (the claim then fails), and any
        # other change is as if it had landed just after the fire.
        due = _due_tasks(now).select_related("script").order_by("next_run_at", "pk")
        tasks = list(due[: conf.tick_batch()])
        for start in range(0, len(tasks), TICK_CHUNK):
            if start:
                time.sleep(TICK_YIELD)
            _tick_chunk(tasks[start : start + TICK_CHUNK], now, result)
    if any_finished:
        _dependents_fire(now, result)
    return result


def _due_tasks(now: datetime) -> QuerySet[ScheduledTask]:
    """The tasks with a due time at or before ``now`` (read through the
    ``scheduled_task_enabled_due`` partial index: the enabled tasks by ``next_run_at``)."""
    return ScheduledTask.objects.filter(enabled=True, next_run_at__lte=now).exclude(
        schedule_type=ScheduleType.NONE
    )


def _finished_unhandled() -> QuerySet[TaskRun]:
    """The entries whose run has finished and whose dependents are not yet handled.

    Read from the few unhandled entries (the ``task_run_unhandled`` partial index), each
    run looked up by key: a join on the run's status let SQLite start from every
    finished run there ever was."""
    finished = Run.objects.filter(pk=OuterRef("run_id"), status__in=TERMINAL)
    return TaskRun.objects.filter(Exists(finished), downstream_handled=False)


# A due time no task has (the prepared value it compiles to is looked for in the
# parameters of the precompiled check; see ``_work_check``).
_NOW_PLACEHOLDER = datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
# {(database alias, vendor): (sql, params, index of ``now`` in params)}
_work_checks: dict[tuple[str, str], tuple[str, list[Any], int]] = {}


def _work_check(alias: str) -> tuple[str, list[Any], int]:
    """``SELECT EXISTS(<due tasks>), EXISTS(<finished unhandled runs>)``, compiled once per
    database from the querysets the tick itself runs, with the position of ``now``."""
    connection = connections[alias]
    key = (alias, connection.vendor)
    check = _work_checks.get(key)
    if check is None:
        sql, params = exists_statement([_due_tasks(_NOW_PLACEHOLDER), _finished_unhandled()], using=alias)
        placeholder = _prepared_now(_NOW_PLACEHOLDER, alias)
        [index] = [i for i, value in enumerate(params) if value == placeholder]
        check = (sql, params, index)
        _work_checks[key] = check
    return check


def _prepared_now(now: datetime, alias: str) -> Any:
    """``now`` as the database adapter gets it in a ``next_run_at`` comparison."""
    field = ScheduledTask._meta.get_field("next_run_at")
    return field.get_db_prep_value(now, connections[alias])


def _work_pending(now: datetime) -> tuple[bool, bool]:
    """Whether some task is due at ``now``, and whether some finished run still waits for
    its dependents to be handled: one statement, no queryset built (see ``_work_check``)."""
    alias = router.db_for_read(ScheduledTask)
    sql, params, index = _work_check(alias)
    params = [*params]
    params[index] = _prepared_now(now, alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return bool(row[0]), bool(row[1])


# Due tasks fired per transaction. Many tasks due at once (a round hour) share commits —
# a transaction per task cost more than the work inside it — while the first runs still
# reach the workers within milliseconds.
TICK_CHUNK = 20
# A pause between two chunks: back-to-back transactions kept the broker's pusher (which
# needs the write lock to take tasks) out until the whole tick was done, so the workers
# idled while the runs piled up (200 due at once: first run started 0.3-0.4 s after the
# due time with no pause, 0.15 s with it; last one ~0.1-0.5 s sooner).
TICK_YIELD = 0.01


def _tick_chunk(tasks: list[ScheduledTask], now: datetime, result: TickResult) -> None:
    """Claim and fire a few due tasks in one transaction, with a few statements for all of
    them (their runs, events and history entries in bulk); the runs reach the workers
    together once it commits (``runs_enqueue_many``).

    On SQLite every writer waits for the one write lock: the shorter the tick holds it,
    the sooner the workers claim and start the runs it queued."""
    grace = conf.misfire_grace()
    try:
        with transaction.atomic():
            claimed = []
            for task in tasks:
                due_at, schedule = task.next_run_at, task.schedule
                if due_at is None or schedule is None:
                    continue
                plan = plan_tick(schedule, due=due_at, now=now, grace=grace, policy=task.misfire_policy)
                # The claim: only the process that moves next_run_at from this due time
                # fires it. The UPDATE also holds the row lock until the commit, as
                # task_fire's would, so the active runs looked up next cannot change.
                if ScheduledTask.objects.filter(pk=task.pk, enabled=True, next_run_at=due_at).update(
                    next_run_at=plan.next_run_at
                ):
                    claimed.append((task, plan, due_at))
            active = _active_runs([task.pk for task, _, _ in claimed])
            entries: list[TaskRun] = []
            starts: list[tuple[TaskRun, dict[str, Any]]] = []  # entries waiting for their run
            for task, plan, due_at in claimed:
                try:
                    decided = _tick_task(task, plan, due_at, now, active.get(task.pk, []))
                except Exception as exc:  # one broken task must not stop the others
                    logger.exception("Scheduler: ticking task %s failed", task.pk)
                    result.errors.append(f"task {task.pk}: {type(exc).__name__}: {exc}")
                    # Give the due time back, as if never claimed: the next tick retries it.
                    ScheduledTask.objects.filter(pk=task.pk, next_run_at=plan.next_run_at).update(
                        next_run_at=due_at
                    )
                    continue
                for entry, params in decided:
                    entries.append(entry)
                    if params is not None:
                        starts.append((entry, params))
            if starts:
                runs = runs_enqueue_many(requests=[params for _, params in starts], source=SOURCE)
                for (entry, _), run in zip(starts, runs, strict=True):
                    entry.run = run
            result.fired += TaskRun.objects.bulk_create(entries)
    except Exception as exc:  # the database: nothing was claimed, the next tick retries
        logger.exception("Scheduler: ticking tasks %s failed", [task.pk for task in tasks])
        result.errors.append(f"tasks {[task.pk for task in tasks]}: {type(exc).__name__}: {exc}")


def _tick_task(
    task: ScheduledTask, plan: TickPlan, due_at: datetime, now: datetime, active: list[tuple[Any, str]]
) -> list[tuple[TaskRun, dict[str, Any] | None]]:
    """What the claimed due time ``due_at`` of ``task`` does (``plan``): its entries,
    unsaved, each with the fields of the run it starts (if any)."""
    decided: list[tuple[TaskRun, dict[str, Any] | None]] = []
    if plan.missed and plan.missed_from is not None:
        skipped = _entry(
            task,
            outcome=Outcome.SKIPPED,
            trigger=Trigger.SCHEDULE,
            due_at=plan.missed_from,
            fired_at=now,
            reason=(
                f"{plan.missed} due time(s) from {_when(plan.missed_from)} were missed while no "
                "worker ran (misfire policy skip)."
            ),
        )
        decided.append((skipped, None))
    if plan.fire_at is not None:
        reason = ""
        if plan.coalesced:
            reason = (
                f"Runs once for {plan.coalesced} due time(s) from {_when(due_at)} missed while no "
                "worker ran (misfire policy run_once)."
            )
        fire = _decide(
            task, trigger=Trigger.SCHEDULE, due_at=plan.fire_at, now=now, reason=reason, active=active
        )
        decided.append(fire)
    return decided


def _dependents_fire(now: datetime, result: TickResult) -> None:
    upstream_of_some = Exists(
        ScheduledTask.depends_on.through.objects.filter(to_scheduledtask_id=OuterRef("task_id"))
    )
    finished = list(
        _finished_unhandled()
        .annotate(has_dependents=upstream_of_some)
        .order_by("pk")
        .values_list("pk", "task_id", "run__status", "has_dependents")[: conf.tick_batch()]
    )
    # Finished runs of tasks nobody depends on: nothing to decide, so one statement marks
    # them all (not a write transaction each, competing with the workers for the database).
    lone = [pk for pk, _, _, has_dependents in finished if not has_dependents]
    if lone:
        result.handled += TaskRun.objects.filter(pk__in=lone, downstream_handled=False).update(
            downstream_handled=True
        )
    for pk, task_id, status, has_dependents in finished:
        if not has_dependents:
            continue
        try:
            with transaction.atomic():
                # The claim: one process handles each finished run, in the same transaction
                # as the runs it queues (a crash in between leaves it unhandled, not lost).
                if not TaskRun.objects.filter(pk=pk, downstream_handled=False).update(
                    downstream_handled=True
                ):
                    continue
                result.handled += 1
                if status != RunStatus.COMPLETED:
                    continue  # a failed or cancelled run stops the chain here
                dependents = ScheduledTask.objects.filter(depends_on=task_id, enabled=True).order_by("pk")
                for dependent_id in dependents.values_list("pk", flat=True):
                    entry = _dependent_fire(dependent_id, now)
                    if entry is not None:
                        result.dependents.append(entry)
        except Exception as exc:  # one broken entry must not stop the others
            logger.exception("Scheduler: handling the finished run of task run %s failed", pk)
            result.errors.append(f"task run {pk}: {type(exc).__name__}: {exc}")


def _dependent_fire(task_id: int, now: datetime) -> TaskRun | None:
    """Queue ``task_id`` if each of its upstream tasks succeeded since its own last run."""
    # Locked first: two upstream runs finishing together, handled by two processes, must
    # not both find the dependent ready (the second sees the first's run as its last).
    task = (
        ScheduledTask.objects.select_for_update(of=("self",))
        .select_related("script")
        .filter(pk=task_id, enabled=True)
        .first()
    )
    if task is None:
        return None
    last = (
        TaskRun.objects.filter(task=task, run__isnull=False)
        .order_by("-fired_at", "-id")
        .values_list("fired_at", flat=True)
        .first()
    )
    upstream: dict[str, dict[str, Any]] = {}
    for up in task.depends_on.order_by("name"):
        succeeded = TaskRun.objects.filter(task=up, run__status=RunStatus.COMPLETED)
        if last is not None:
            succeeded = succeeded.filter(run__finished_at__gt=last)
        entry = succeeded.select_related("run").order_by("-run__finished_at", "-id").first()
        if entry is None or entry.run is None:
            return None
        upstream[up.name] = {
            "task_id": up.pk,
            "run_id": str(entry.run.pk),
            "exit_code": entry.run.exit_code,
            "status": entry.run.status,
            "env_name": up.env_name,
        }
    return _fire(task, trigger=Trigger.DEPENDENCY, now=now, upstream=upstream)


FALLBACK_SCHEDULE = "scriptops.scheduler.tick"


def fallback_schedule_ensure() -> bool:
    """Make sure the django-q2 ``Schedule`` of the fallback tick exists (True if created).

    Migration 0002 creates it; ``serve`` checks again at start, because a database
    restored or flushed without that data row would otherwise never tick without serve.
    """
    from django_q.models import Schedule

    _, created = Schedule.objects.get_or_create(
        name=FALLBACK_SCHEDULE,
        defaults={
            "func": "scheduler.tasks.tick",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    return bool(created)  # django-q2 ships no types: its get_or_create returns Any
