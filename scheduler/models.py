"""Scheduled tasks: what to run (a library script or a path, with run options), when (an
interval, a cron expression in a time zone, events, other tasks' success, a webhook), and
the history of what each trigger did (:class:`TaskRun`).

``ScheduledTask.next_run_at`` is the claim token of the schedule: the tick advances it
with a compare-and-set (``filter(pk=…, next_run_at=due).update(next_run_at=next)``), so
of several processes ticking at once exactly one fires a given due time. It is None while
the task is disabled or has no schedule.

``TaskRun.downstream_handled`` is the claim token of dependency triggering: once the run
of a task run has finished, one tick flips it to True (compare-and-set) and, in the same
transaction, queues the dependents that are ready. Entries without a run (skipped) are
created handled.
"""

from __future__ import annotations

import re
from datetime import datetime

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone as django_timezone

from runs.models import RUN_OPTION_FIELDS as RUN_OPTION_FIELDS  # the task's run options (re-exported)
from runs.models import RunOptions
from scheduler.schedules import Schedule, describe_cron, describe_interval

ENV_UNSAFE = re.compile(r"[^A-Za-z0-9]")
EVENT_NAME = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"
EVENT_NAME_MESSAGE = "Use letters, digits and ._:- (at most 100, starting with a letter or digit)."


class ScheduleType(models.TextChoices):
    INTERVAL = "interval"
    CRON = "cron"
    NONE = "none"


class OverlapPolicy(models.TextChoices):
    """What a trigger does while a previous run of the task is still active."""

    SKIP = "skip"  # record the trigger as skipped
    QUEUE = "queue"  # run after the active one; at most one waits
    CANCEL_PREVIOUS = "cancel_previous"  # stop the active run, then start
    ALLOW = "allow"  # run alongside (at most ``max_concurrent`` at once, if set)


class MisfirePolicy(models.TextChoices):
    """What a tick does with due times missed while no worker ran."""

    RUN_ONCE = "run_once"
    SKIP = "skip"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    EVENT = "event"
    DEPENDENCY = "dependency"
    WEBHOOK = "webhook"


class Outcome(models.TextChoices):
    QUEUED = "queued"  # a run was created
    SKIPPED = "skipped"  # the overlap or misfire policy said no (see reason)
    ERROR = "error"  # the run could not be created (archived script, …; see reason)


class ScheduledTask(RunOptions):
    """A script run on a schedule, on events, after other tasks, by webhook or by hand."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="scheduled_tasks",
    )
    # -- what it runs: a library script, or a path inside the allowed roots --
    script = models.ForeignKey(
        "library.Script",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="scheduled_tasks",
        help_text="The library script; its path is copied to script_path.",
    )
    script_path = models.CharField(max_length=4096)
    # args, env_vars, timeout, working_dir, log_level, retry_*: the run options (RunOptions)
    # -- when --
    schedule_type = models.CharField(
        max_length=10, choices=ScheduleType.choices, default=ScheduleType.NONE, db_index=True
    )
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents", help_text="Upstream tasks."
    )
    overlap_policy = models.CharField(
        max_length=16, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="With overlap policy allow: runs at once; empty = unlimited."
    )
    misfire_policy = models.CharField(
        max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
    )
    webhook_hash = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="SHA-256 of the webhook token."
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=django_timezone.now)
    updated_at = models.DateTimeField(default=django_timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="scheduled_task_name_unique_ci"),
            models.UniqueConstraint(
                fields=["webhook_hash"],
                condition=~models.Q(webhook_hash=""),
                name="scheduled_task_webhook_unique",
            ),
        ]
        indexes = [
            # The tick's "is anything due?" (ten times a second): the enabled tasks by due
            # time. Partial, not (enabled, next_run_at): SQLite cannot use a bare boolean
            # column (``WHERE "enabled"``, as Django writes it) as the first key.
            models.Index(
                fields=["next_run_at"], condition=models.Q(enabled=True), name="scheduled_task_enabled_due"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def concurrency_key(self) -> str:
        return f"scheduler.task:{self.pk}"

    @property
    def env_name(self) -> str:
        """The task's name as it appears in environment variable names (``SCRIPTOPS_UPSTREAM_<NAME>_…``)."""
        return ENV_UNSAFE.sub("_", self.name.upper())

    @property
    def schedule(self) -> Schedule | None:
        if self.schedule_type == ScheduleType.INTERVAL and self.interval_seconds:
            return Schedule(interval=self.interval_seconds)
        if self.schedule_type == ScheduleType.CRON and self.cron:
            return Schedule(cron=self.cron, tz=self.timezone)
        return None

    def first_run_after(self, now: datetime) -> datetime | None:
        """The next due time counted from ``now`` (on create, enable, schedule change)."""
        schedule = self.schedule
        return schedule.next_after(now) if schedule and self.enabled else None

    @property
    def schedule_text(self) -> str:
        if self.schedule_type == ScheduleType.INTERVAL and self.interval_seconds:
            return describe_interval(self.interval_seconds)
        if self.schedule_type == ScheduleType.CRON and self.cron:
            return describe_cron(self.cron, self.timezone)
        # Related rows come from the prefetch cache when the caller prefetched them.
        parts: list[str] = []
        events = [e.name for e in self.events.all()]
        if events:
            parts.append(("on event " if len(events) == 1 else "on events ") + ", ".join(events))
        upstream = [t.name for t in self.depends_on.all()]
        if upstream:
            parts.append(
                "after " + " and ".join(upstream) + (" succeeds" if len(upstream) == 1 else " succeed")
            )
        if self.webhook_hash:
            parts.append("by webhook")
        return "; ".join(parts) if parts else "manually only"

    def concurrency(self) -> tuple[str, int] | None:
        """The (key, limit) every run of this task carries, manual runs included.

        Only where a run must wait for another: ``queue`` runs after the active run and
        ``cancel_previous`` starts once the cancelled run has stopped (limit 1); ``allow``
        with ``max_concurrent`` caps them. ``skip`` needs none (a trigger that would
        overlap records a skip instead), nor does ``allow`` without a limit; a library
        script's own ``max_concurrent`` then applies. A key costs every run of it a gate
        lock when it starts and a look for waiting runs when it ends.
        """
        if self.overlap_policy in (OverlapPolicy.QUEUE, OverlapPolicy.CANCEL_PREVIOUS):
            return (self.concurrency_key, 1)
        if self.overlap_policy == OverlapPolicy.ALLOW and self.max_concurrent:
            return (self.concurrency_key, self.max_concurrent)
        return None


class TaskEvent(models.Model):
    """An event name a task listens to (``POST /api/scheduler/events/{name}``)."""

    task = models.ForeignKey(ScheduledTask, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(
        max_length=100, db_index=True, validators=[RegexValidator(rf"^{EVENT_NAME}$", EVENT_NAME_MESSAGE)]
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["task", "name"], name="task_event_unique")]

    def __str__(self) -> str:
        return self.name


class TaskRun(models.Model):
    """One trigger of a task and what came of it: a queued run, or a skip with its reason."""

    task = models.ForeignKey(ScheduledTask, on_delete=models.CASCADE, related_name="task_runs")
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="scheduler_runs"
    )
    trigger = models.CharField(max_length=12, choices=Trigger.choices)
    event = models.CharField(max_length=100, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="The schedule's due time (ticks).")
    fired_at = models.DateTimeField(default=django_timezone.now)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=500, blank=True)
    upstream = models.JSONField(
        default=dict,
        blank=True,
        help_text="Dependency runs: {task name: {task_id, run_id, exit_code, status}}.",
    )
    downstream_handled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [
            models.Index(fields=["task", "-fired_at"], name="task_run_history"),
            models.Index(
                fields=["downstream_handled"],
                condition=models.Q(downstream_handled=False),
                name="task_run_unhandled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.trigger} {self.outcome} @ {self.fired_at:%Y-%m-%d %H:%M:%S}"
