"""The runner: executes one claimed run inside a django-q2 worker.

This is the one place that moves a run from ``queued`` to ``running`` and on to a
terminal status. It wires the plain-Python engine (:mod:`runs.engine`) to the
database (state, events, attempts, heartbeats), the output store
(:mod:`runs.logstore`) and the server log (``stream_output``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from runs.engine import Limits, Outcome, Sample, Stats, Supervisor
from runs.events import OutputNotifier, run_changed
from runs.logstore import STREAM_CODES, LogReader, LogWriter
from runs.models import Control, EventKind, Run, RunAttempt, RunEvent, RunStatus
from runs.plan import PlanError, RetryPolicy
from runs.request import RunRequest, plan_resolve
from runs.selectors import SAMPLES_FILE
from runs.services.concurrency import run_claim, runs_start_waiting

logger = logging.getLogger(__name__)
output_logger = logging.getLogger("scriptops.output")

STDERR_SNIPPET_BYTES = 2048


def _aware(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def build_plan(run: Run) -> dict[str, Any]:
    """Resolve everything needed to spawn ``run``, as the file system stands now: the check
    the API made (:func:`runs.request.plan_resolve`), made again. Raises :class:`PlanError`.

    Returns the plan's ``script``, ``command``, ``cwd`` and ``env`` as plain data.
    """
    plan = plan_resolve(
        RunRequest.of_record(run.request_parameters()),
        run_id=str(run.pk),
        correlation_id=str(run.correlation_id),
        system_env=run.system_env,  # set by ScriptOps itself (never from a request): SCRIPTOPS_*
    )
    return plan.as_dict()


def retry_policy(run: Run) -> RetryPolicy:
    return RetryPolicy(
        enabled=run.retry_on_failure,
        max_attempts=max(1, run.retry_max_attempts),
        strategy=run.retry_strategy,
        initial_delay=run.retry_initial_delay,
        max_delay=run.retry_max_delay,
        multiplier=run.retry_multiplier,
        max_time=run.retry_max_time,
    )


class DbReporter:
    """The engine's reporter for one attempt of one run."""

    def __init__(
        self,
        run: Run,
        writer: LogWriter,
        *,
        attempt: int,
        plan: dict[str, Any],
        control_seen: datetime | None = None,
    ):
        self.run = run
        self.writer = writer
        self.attempt = attempt
        self.plan = plan
        self.started_at = timezone.now()
        self.attempt_pk: int | None = None
        self.stderr_bytes = 0
        # The time of the last control request acted on, carried from attempt to attempt
        # (so a pause or resume is not replayed). It starts as None, not as the row's
        # value: a stop that landed between the claim and loading the row is still due.
        self.control_seen = control_seen
        self._samples_path = run.output_dir / SAMPLES_FILE
        self._samples_fd = os.open(self._samples_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._truncation_reported = writer.truncated
        self.notifier = OutputNotifier(str(run.pk))

    def close(self) -> None:
        self.notifier.flush()
        os.close(self._samples_fd)

    def begin(self, pid: int | None = None, create_time: float | None = None) -> None:
        """Record the attempt, once and in one write: its row, its start event and, on the
        run, the attempt count, the resolved script and (once spawned) the process id.

        One transaction instead of four: a worker's writes queue for SQLite's single
        write lock, so a burst of short runs starts sooner with fewer of them."""
        if self.attempt_pk is not None:
            return
        fields: dict[str, Any] = {"attempts": self.attempt, "resolved_path": self.plan["script"]}
        if not self.run.working_dir:
            # Defaulted (the script's folder): the record says where it really ran.
            fields["working_dir"] = self.plan["cwd"]
        if pid is not None:
            fields.update(pid=pid, pid_create_time=create_time)
        with transaction.atomic():
            self.attempt_pk = RunAttempt.objects.create(
                run=self.run, number=self.attempt, started_at=self.started_at
            ).pk
            Run.objects.filter(pk=self.run.pk).update(**fields)
            RunEvent.objects.create(
                run=self.run,
                kind=EventKind.START,
                # The attempt's start, not this write's time: the engine reports the start
                # after it has stored the script's first output.
                timestamp=self.started_at,
                data={"attempt": self.attempt, "command": self.plan["command"], "cwd": self.plan["cwd"]},
            )
        run_changed(str(self.run.pk))

    def started(self, pid: int, create_time: float) -> None:
        self.begin(pid, create_time)

    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        self.writer.write(stream, data, ts, lines=lines)
        self.notifier.output()
        if stream == "stderr":
            self.stderr_bytes += len(data)
        if self.run.stream_output:
            level = logging.WARNING if stream == "stderr" else logging.INFO
            for line in bytes(data).decode("utf-8", errors="replace").splitlines():
                output_logger.log(level, "[%s %s] %s", self.run.pk, stream, line)

    def sample(self, sample: Sample) -> None:
        row = {"ts": round(sample.ts, 3), "cpu": sample.cpu_percent, "rss": sample.rss}
        row["children"] = sample.children
        row["attempt"] = self.attempt
        os.write(self._samples_fd, (json.dumps(row) + "\n").encode())

    def event(self, kind: str, data: dict[str, object]) -> None:
        RunEvent.objects.create(run=self.run, kind=kind, data={**data, "attempt": self.attempt})
        run_changed(str(self.run.pk))

    def control(self) -> str | None:
        self.notifier.flush()  # called every control poll: no wake-up stays pending long
        row = Run.objects.filter(pk=self.run.pk).values("control", "control_requested_at").first()
        if not row or not row["control"] or row["control_requested_at"] == self.control_seen:
            return None
        self.control_seen = row["control_requested_at"]
        return str(row["control"])

    def heartbeat(self, stats: Stats) -> None:
        fields: dict[str, Any] = {
            "heartbeat_at": timezone.now(),
            "output_bytes": self.writer.total_bytes,
            "output_lines": self.writer.total_lines,
            "output_truncated": self.writer.truncated,
            "peak_rss": stats.peak_rss or None,
        }
        Run.objects.filter(pk=self.run.pk).update(**fields)
        if self.writer.truncated and not self._truncation_reported:
            self._truncation_reported = True
            RunEvent.objects.create(
                run=self.run,
                kind=EventKind.OUTPUT_TRUNCATED,
                data={"cap_bytes": self.writer.cap, "dropped_bytes": self.writer.dropped_bytes},
            )

    def paused(self, *, paused: bool) -> None:
        Run.objects.filter(pk=self.run.pk).update(paused=paused)
        RunEvent.objects.create(run=self.run, kind=EventKind.PAUSED if paused else EventKind.RESUMED, data={})
        run_changed(str(self.run.pk))


def _reject(run: Run, exc: PlanError) -> None:
    now = timezone.now()
    summary = run.error_summary_for(
        exit_code=None, stderr_snippet=exc.message, status="failed", reason=exc.code
    )
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, run_status="failed", finished_at=now, error_summary=summary
    )
    RunEvent.objects.create(
        run=run, kind=EventKind.REJECTED, data={"field": exc.field, "message": exc.message}
    )


def _wait_between_attempts(run: Run, delay: float) -> bool:
    """Sleep ``delay`` seconds, keeping the heartbeat; False if a stop came meanwhile."""
    end = time.monotonic() + delay
    next_beat = 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            return True
        if now >= next_beat:
            Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
            next_beat = now + settings.HEARTBEAT_INTERVAL
        control = Run.objects.filter(pk=run.pk).values_list("control", flat=True).first()
        if control in (Control.STOP, Control.KILL, Control.CANCEL):
            return False
        time.sleep(min(settings.CONTROL_POLL_INTERVAL, max(0.0, end - now)))


def run_execute(*, run_id: str) -> str | None:
    """Claim and execute ``run_id``. Returns the final status, or None if not claimed.

    Safe to call twice for the same run (a re-delivered task): only one caller wins
    the compare-and-set from ``queued`` to ``running``.
    """
    if not transaction.get_connection().in_atomic_block:
        # A worker process keeps its connection between tasks: drop it if stale. (Never
        # inside an atomic block — that is a caller's transaction, e.g. a test's.)
        close_old_connections()
    claim = run_claim(run_id=run_id)
    if claim == "waiting":
        logger.info("Run %s waits for a free slot of its concurrency key", run_id)
        return None
    if claim == "gone":
        logger.info("Run %s was not queued any more; nothing to do", run_id)
        return None
    # Live viewers hear of the claim once the script has started (DbReporter.begin) or was
    # refused: the spawn comes first.
    run = Run.objects.get(pk=run_id)
    try:
        plan = build_plan(run)
    except PlanError as exc:
        _reject(run, exc)
        run_changed(run_id)
        if run.concurrency_key:
            runs_start_waiting(key=run.concurrency_key)
        return RunStatus.FAILED
    writer = LogWriter(run.output_dir, cap_bytes=settings.MAX_OUTPUT_BYTES)
    policy = retry_policy(run)
    attempts_allowed = policy.max_attempts if policy.enabled else 1
    first_start = time.monotonic()
    outcomes: list[Outcome] = []
    control_seen: datetime | None = None
    closing: tuple[int, Outcome] | None = None  # the last attempt, closed with the run
    stderr_from = 0  # where the last attempt's stderr begins: the error summary shows only it
    try:
        for number in range(1, attempts_allowed + 1):
            stderr_from = writer.stream_bytes[STREAM_CODES["stderr"]]
            if attempts_allowed > 1:
                marker = f"=== attempt {number} of {attempts_allowed} ===\n"
                writer.write("system", marker.encode(), time.time())
            outcome, control_seen, attempt_pk = _run_attempt(
                run, plan, writer, number, control_seen=control_seen
            )
            outcomes.append(outcome)
            closing = (attempt_pk, outcome)
            if outcome.run_status in ("success", "killed") or number == attempts_allowed:
                break
            _attempt_close(*closing)
            closing = None
            delay = policy.delay(number)
            if time.monotonic() - first_start + delay > policy.max_time:
                RunEvent.objects.create(
                    run=run,
                    kind=EventKind.RETRY,
                    data={"attempt": number, "gave_up": True, "reason": "retry_max_time reached"},
                )
                break
            RunEvent.objects.create(
                run=run,
                kind=EventKind.RETRY,
                data={"attempt": number, "next_attempt": number + 1, "delay": round(delay, 3)},
            )
            writer.write(
                "system",
                f"=== attempt {number} {outcome.run_status} (exit {outcome.exit_code}); "
                f"retrying in {delay:.2f}s ===\n".encode(),
                time.time(),
            )
            if not _wait_between_attempts(run, delay):
                outcomes.append(
                    Outcome(None, "killed", time.time(), time.time(), reason="stopped between attempts")
                )
                break
    finally:
        writer.close()
    status = _finalise(run, outcomes, writer, closing=closing, stderr_from=stderr_from)
    run_changed(run_id)
    if run.concurrency_key:
        runs_start_waiting(key=run.concurrency_key)  # a slot is free: the next in line starts
    return status


def _run_attempt(
    run: Run, plan: dict[str, Any], writer: LogWriter, number: int, *, control_seen: datetime | None
) -> tuple[Outcome, datetime | None, int]:
    """Run one attempt. Returns its outcome, the last control request acted on and the
    attempt's row (recorded as the process starts; closed by the caller)."""
    reporter = DbReporter(run, writer, attempt=number, plan=plan, control_seen=control_seen)
    supervisor = Supervisor(
        plan["command"],
        cwd=plan["cwd"],
        env=plan["env"],
        reporter=reporter,
        limits=Limits(
            timeout=run.timeout,
            stop_grace=settings.STOP_GRACE,
            monitor_interval=max(0.02, run.monitor_interval),
            control_interval=settings.CONTROL_POLL_INTERVAL,
            heartbeat_interval=settings.HEARTBEAT_INTERVAL,
        ),
    )
    try:
        outcome = supervisor.run()
    except OSError as exc:
        # The interpreter could not be started (e.g. a bad shebang).
        supervisor.abort()
        reporter.begin()
        writer.write("stderr", f"{exc}\n".encode(), time.time())
        outcome = Outcome(None, "failed", time.time(), time.time(), reason=str(exc))
    except Exception:
        # A bug or a database outage inside supervision: never leave the script
        # running unsupervised. If the database is down, the reaper fails the run later.
        logger.exception("Supervision of run %s failed; killing its processes", run.pk)
        supervisor.abort()
        raise
    finally:
        reporter.close()
    reporter.begin()  # a no-op once the process has started
    assert reporter.attempt_pk is not None
    return outcome, reporter.control_seen, reporter.attempt_pk


def _attempt_close(attempt_pk: int, outcome: Outcome) -> None:
    RunAttempt.objects.filter(pk=attempt_pk).update(
        finished_at=_aware(outcome.finished),
        exit_code=outcome.exit_code,
        run_status=outcome.run_status,
        duration=outcome.duration,
        cpu_time=outcome.stats.cpu_time,
        peak_rss=outcome.stats.peak_rss or None,
    )


def _stderr_tail(run: Run, *, since: int = 0) -> str:
    """The last ``STDERR_SNIPPET_BYTES`` of stderr written from byte ``since`` on (the last
    attempt's start: earlier attempts' output is in the log, not in the summary)."""
    reader = LogReader(run.output_dir)
    end = reader.size(stream="stderr")
    data, _ = reader.read_bytes(stream="stderr", offset=max(since, end - STDERR_SNIPPET_BYTES))
    return data[-STDERR_SNIPPET_BYTES:].decode("utf-8", errors="replace")


@transaction.atomic  # the terminal status, its last attempt and final event: one write
def _finalise(
    run: Run,
    outcomes: list[Outcome],
    writer: LogWriter,
    *,
    closing: tuple[int, Outcome] | None,
    stderr_from: int = 0,
) -> str:
    if closing is not None:
        _attempt_close(*closing)
    last = outcomes[-1]
    status = {
        "success": RunStatus.COMPLETED,
        "failed": RunStatus.FAILED,
        "timeout": RunStatus.FAILED,
        "killed": RunStatus.CANCELLED,
    }[last.run_status]
    exit_code = next((o.exit_code for o in reversed(outcomes) if o.exit_code is not None), None)
    duration = sum(o.duration for o in outcomes)
    cpu_time = sum(o.stats.cpu_time for o in outcomes)
    summary = None
    if last.run_status != "success":
        summary = run.error_summary_for(
            exit_code=exit_code,
            stderr_snippet=_stderr_tail(run, since=stderr_from),
            status=last.run_status,
            reason=last.reason,
        )
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status,
        run_status=last.run_status,
        exit_code=exit_code,
        finished_at=timezone.now(),
        duration=round(duration, 6),
        cpu_time=round(cpu_time, 6),
        avg_cpu=round(100.0 * cpu_time / duration, 2) if duration > 0 else 0.0,
        peak_rss=max((o.stats.peak_rss for o in outcomes), default=0) or None,
        max_children=max((o.stats.max_children for o in outcomes), default=0),
        output_bytes=writer.total_bytes,
        output_lines=writer.total_lines,
        output_truncated=writer.truncated,
        error_summary=summary,
        paused=False,
        heartbeat_at=timezone.now(),
    )
    if writer.truncated:
        RunEvent.objects.get_or_create(
            run=run,
            kind=EventKind.OUTPUT_TRUNCATED,
            defaults={"data": {"cap_bytes": writer.cap, "dropped_bytes": writer.dropped_bytes}},
        )
    kind = {
        "success": EventKind.SUCCESS,
        "failed": EventKind.FAILURE,
        "timeout": EventKind.FAILURE,
        "killed": EventKind.CANCELLED,
    }[last.run_status]
    RunEvent.objects.create(
        run=run,
        kind=kind,
        data={
            "exit_code": exit_code,
            "run_status": last.run_status,
            "duration": round(duration, 3),
            "attempts": len([o for o in outcomes if o.exit_code is not None]),
            "reason": last.reason,
        },
    )
    return str(status)
