"""Runs: one execution request of a script, its attempts and its events.

Status flow (``Run.status``), moved only by the runner (``runs.services.execution``)
and by the services for cancel/reap:

    queued ──claim──▶ running ──▶ completed   (run_status success)
      │                  │──────▶ failed      (run_status failed | timeout)
      │                  └──────▶ cancelled   (run_status killed: stop, kill, cancel)
      └──cancel────────────────▶ cancelled

``queued → failed`` also happens when the worker refuses the script (outside the
roots, vanished) and ``running → failed`` when the reaper finds a run whose worker
died. Terminal statuses never change again.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunnerStatus(models.TextChoices):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    BLOCKED = "blocked"  # a pre-run check blocked it: the script never started (issue 13)


class Control(models.TextChoices):
    """A control request left for the runner by another process."""

    NONE = ""
    STOP = "stop"
    KILL = "kill"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"


class RetryStrategy(models.TextChoices):
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    FIBONACCI = "fibonacci"
    EXPONENTIAL_JITTER = "exponential_jitter"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class RunOptions(models.Model):
    """The run options a run and a scheduled task (``scheduler.ScheduledTask``) both store,
    defined once: what the script gets (arguments, environment, directory), how long it may
    take, its log level, how failed attempts are retried, and what analytics judges and
    reports when it ends (gates, alerts, baselines, JUnit, cost: so a scheduled task's runs
    carry them — alert rules may be limited to scheduled runs).

    Abstract: each model keeps its own columns (no table, no join). Only options defined
    alike in both live here; ``script_path`` (help text on Run only), ``stream_output``,
    ``monitor_interval`` and ``enable_history`` (Run only) stay on the models.
    """

    args = models.JSONField(default=list, blank=True)
    env_vars = models.JSONField(default=dict, blank=True)
    working_dir = models.CharField(max_length=4096, blank=True, null=True)  # noqa: DJ001 (seed: null)
    timeout = models.FloatField(null=True, blank=True)
    log_level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    retry_on_failure = models.BooleanField(default=False)
    retry_max_attempts = models.PositiveIntegerField(default=3)
    retry_strategy = models.CharField(
        max_length=20, choices=RetryStrategy.choices, default=RetryStrategy.EXPONENTIAL
    )
    retry_initial_delay = models.FloatField(default=1.0)
    retry_max_delay = models.FloatField(default=60.0)
    retry_multiplier = models.FloatField(default=2.0)
    retry_max_time = models.FloatField(default=300.0)
    # -- analytics (issue 12), judged when the run ends (analytics.services.runs) --
    performance_gates = models.JSONField(
        default=list, blank=True, help_text="[{metric, max_value?, min_value?}]: a violation fails the run."
    )
    junit_output = models.BooleanField(default=False, help_text="Keep a JUnit XML report of the run.")
    save_baseline = models.CharField(max_length=100, blank=True, null=True)  # noqa: DJ001 (seed: null)
    load_baseline = models.CharField(max_length=100, blank=True, null=True)  # noqa: DJ001 (seed: null)
    alerts = models.JSONField(default=list, blank=True, help_text="Alert rules, checked when the run ends.")
    slack_webhook = models.TextField(blank=True, null=True)  # noqa: DJ001 (seed: null)
    enable_cost_tracking = models.BooleanField(default=False)
    # -- pre-run checks (issue 13), run by the worker before the script starts (prechecks) --
    enable_code_analysis = models.BooleanField(default=False, help_text="Bandit / ShellCheck first.")
    enable_secret_scanning = models.BooleanField(default=False, help_text="detect-secrets first.")
    enable_dependency_scanning = models.BooleanField(
        default=False, help_text="Pinned requirements against OSV advisories first."
    )

    class Meta:
        abstract = True

    def run_options(self) -> dict[str, Any]:
        """The option values, by name (see :data:`RUN_OPTION_FIELDS`)."""
        return {name: getattr(self, name) for name in RUN_OPTION_FIELDS}


# The analytics options of :class:`RunOptions` (``runs.request.RunRequest.analytics_fields``).
ANALYTICS_OPTION_FIELDS = (
    "performance_gates",
    "junit_output",
    "save_baseline",
    "load_baseline",
    "alerts",
    "slack_webhook",
    "enable_cost_tracking",
)

# The pre-run check options of :class:`RunOptions` (``RunRequest.precheck_fields``).
PRECHECK_OPTION_FIELDS = (
    "enable_code_analysis",
    "enable_secret_scanning",
    "enable_dependency_scanning",
)

# The options of :class:`RunOptions`, in the order the API lists them.
RUN_OPTION_FIELDS = (
    "args",
    "env_vars",
    "timeout",
    "working_dir",
    "log_level",
    "retry_on_failure",
    "retry_max_attempts",
    "retry_strategy",
    "retry_initial_delay",
    "retry_max_delay",
    "retry_multiplier",
    "retry_max_time",
    *ANALYTICS_OPTION_FIELDS,
    *PRECHECK_OPTION_FIELDS,
)


class RunQuerySet(models.QuerySet["Run"]):
    def active(self) -> RunQuerySet:
        return self.filter(status__in=ACTIVE)


# Where runs come from (``Run.source``): the API, the dashboard's launch form, a library
# script's run action, the scheduler, an upload, the execute stream, a restart, a rerun
# with changes.
RUN_SOURCES = ("api", "dashboard", "library", "scheduler", "upload", "execute", "restart", "rerun")


class Run(RunOptions):
    """A run record: the request's parameters, its state, its results and metrics."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # -- the request --
    script_path = models.CharField(max_length=4096, help_text="As requested.")
    resolved_path = models.CharField(max_length=4096, blank=True)
    # args, env_vars, working_dir, timeout, log_level, retry_*: RunOptions
    system_env = models.JSONField(
        default=dict,
        blank=True,
        help_text="SCRIPTOPS_* variables set by ScriptOps itself (scheduler upstream runs, "
        "webhook payload); never from a request, so not subject to the deny list.",
    )
    stream_output = models.BooleanField(default=False)
    monitor_interval = models.FloatField(default=0.1)
    enable_history = models.BooleanField(default=True)
    source = models.CharField(max_length=20, default="api")  # one of RUN_SOURCES
    # -- state --
    status = models.CharField(
        max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    run_status = models.CharField(  # noqa: DJ001 - the seed's RunRecord has run_status null until the end
        max_length=10, choices=RunnerStatus.choices, blank=True, null=True, db_index=True
    )
    paused = models.BooleanField(default=False)
    control = models.CharField(max_length=10, choices=Control.choices, default="", blank=True)
    control_requested_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error_summary = models.JSONField(null=True, blank=True)
    # -- metrics --
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, all attempts.")
    cpu_time = models.FloatField(null=True, blank=True, help_text="CPU seconds, all attempts.")
    peak_rss = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    avg_cpu = models.FloatField(null=True, blank=True, help_text="Percent of one core.")
    max_children = models.PositiveIntegerField(null=True, blank=True)
    output_bytes = models.BigIntegerField(default=0)
    output_lines = models.BigIntegerField(default=0)
    output_truncated = models.BooleanField(default=False)
    # -- supervision --
    host = models.CharField(max_length=255, blank=True)
    host_id = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="Tells hosts with the same name apart."
    )
    pid = models.IntegerField(null=True, blank=True)
    pid_create_time = models.FloatField(null=True, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    task_name = models.CharField(
        max_length=200, blank=True, help_text="The scheduled task that launched it (its name then)."
    )
    # -- concurrency: at most ``concurrency_limit`` runs with the same key run at once,
    # on every worker; the others wait queued, in order, with ``wait_reason`` set --
    concurrency_key = models.CharField(max_length=100, blank=True, db_index=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    wait_reason = models.CharField(max_length=300, blank=True)
    # -- provenance --
    restarted_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="restarts"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    script = models.ForeignKey(
        "library.Script",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The library script this run was launched from.",
    )

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{Path(self.script_path).name} [{self.status}] {self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def output_dir(self) -> Path:
        return Path(settings.RUNS_DIR) / str(self.id)

    def error_summary_for(
        self, *, exit_code: int | None, stderr_snippet: str, status: str, reason: str
    ) -> dict[str, Any]:
        """The ``error_summary`` of a run that did not succeed (seed 001's shape + reason)."""
        return {
            "exit_code": exit_code,
            "stderr_snippet": stderr_snippet,
            "status": status,
            "correlation_id": str(self.correlation_id),
            "reason": reason,
        }

    def request_parameters(self) -> dict[str, Any]:
        """The parameters a restart copies (with the library link and concurrency key)."""
        params = {name: getattr(self, name) for name in REQUEST_FIELDS}
        params.update(
            system_env=self.system_env,
            script_id=self.script_id,
            concurrency_key=self.concurrency_key,
            concurrency_limit=self.concurrency_limit,
        )
        return params


REQUEST_FIELDS = (
    "script_path",
    "args",
    "env_vars",
    "working_dir",
    "timeout",
    "log_level",
    "stream_output",
    "monitor_interval",
    "enable_history",
    "retry_on_failure",
    "retry_max_attempts",
    "retry_strategy",
    "retry_initial_delay",
    "retry_max_delay",
    "retry_multiplier",
    "retry_max_time",
    *ANALYTICS_OPTION_FIELDS,
    *PRECHECK_OPTION_FIELDS,
)


class RunAttempt(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    run_status = models.CharField(max_length=10, choices=RunnerStatus.choices, blank=True)
    duration = models.FloatField(null=True, blank=True)
    cpu_time = models.FloatField(null=True, blank=True)
    peak_rss = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="unique_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.run_id}"


class EventKind(models.TextChoices):
    QUEUED = "queued"
    START = "start"
    RETRY = "retry"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    STOP_REQUESTED = "stop_requested"
    KILL_REQUESTED = "kill_requested"
    FORCED_TERMINATION = "forced_termination"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUMED = "resumed"
    OUTPUT_TRUNCATED = "output_truncated"
    ORPHANED = "orphaned"
    REJECTED = "rejected"
    WAITING = "waiting"
    GATE_FAILED = "gate_failed"  # exit 0, but a performance gate was violated
    CHECK_PASSED = "check_passed"  # the pre-run checks let the script start
    CHECK_BLOCKED = "check_blocked"  # the pre-run checks blocked it: it never started


class RunEvent(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    timestamp = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.timestamp:%H:%M:%S}"


class ConcurrencyGate(models.Model):
    """One row per concurrency key: locked (``SELECT … FOR UPDATE``) while a worker
    decides whether a run of that key may start, so two workers never both take the
    last slot. (On SQLite the IMMEDIATE transaction already serialises writers.)"""

    key = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.key


class OutputBlock(models.Model):
    """A piece of one file of a run's output store, mirrored to the database so that any
    host sharing it can read the output (``SCRIPTOPS_OUTPUT_STORE=database``; see
    ``runs.logstore.database``). ``data`` is the file's bytes from ``pos``; a file is the
    concatenation of its blocks in ``pos`` order. Written only by the worker's shipper
    thread, removed with the store (``remove_store``) or when the size cap drops a
    segment. ``run_id`` is the store directory's name — not a foreign key: blocks are
    written in batches from a background thread and a per-row check buys nothing."""

    run_id = models.CharField(max_length=64)
    name = models.CharField(max_length=32)
    pos = models.BigIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_id", "name", "pos"], name="runs_outputblock_file_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.name}@{self.pos}"


class UploadedScript(models.Model):
    """The bytes of a script uploaded with ``POST /api/run/upload``, kept in the database
    when hosts share no disk (``SCRIPTOPS_OUTPUT_STORE=database``): the upload is stored in
    the data dir of the web host that received it, and a worker host that takes the run
    writes its own copy from this row before it checks the plan
    (``runs.services.uploads.upload_materialise``). Not kept in the single-host mode.

    ``id`` is the upload folder's name, ``path`` the real path the receiving host stored it
    at (the runs' ``script_path``): a row is used only for a run of exactly that path.
    Removed with the upload (a refused or dry-run request), or once nothing refers to it
    (no run, no scheduled task: ``runs.services.uploads.uploads_forget`` when runs are
    deleted, ``uploads_sweep`` after ten minutes)."""

    id = models.UUIDField(primary_key=True, editable=False)
    name = models.CharField(max_length=100)
    path = models.CharField(max_length=4096)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.id.hex}/{self.name}"
