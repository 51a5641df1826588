"""The runner: executes one claimed run inside a django-q2 worker.

This is the one place that moves a run from ``queued`` to ``running`` and on to a
terminal status. It wires the plain-Python engine (:mod:`runs.engine`) to the
database (state, events, attempts, heartbeats), the output store
(:mod:`runs.logstore`) and the server log (``stream_output``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from analytics.services.runs import AttemptFacts, RunFacts, Verdict, run_analyse
from core.precompiled import inserts_prepared, update_rows
from prechecks.services import precheck_for_run
from runs.conf import allowed_roots
from runs.engine import Limits, Outcome, Sample, Stats, Supervisor
from runs.events import OutputNotifier, run_changed
from runs.logstore import STREAM_CODES, LogReader, LogWriter
from runs.models import Control, EventKind, Run, RunAttempt, RunEvent, RunnerStatus, RunStatus
from runs.plan import PlanError, RetryPolicy
from runs.request import RunRequest, plan_resolve
from runs.selectors import SAMPLES_FILE
from runs.services.concurrency import run_claim, runs_start_waiting
from runs.services.lifecycle import run_fail_lost
from runs.services.uploads import upload_materialise

logger = logging.getLogger(__name__)
output_logger = logging.getLogger("scriptops.output")

STDERR_SNIPPET_BYTES = 2048
# The source of a scheduled task's runs (scheduler.services.firing.SOURCE; the scheduler
# sits above runs): alert rules may be limited to them.
SCHEDULED_SOURCE = "scheduler"
STOPPED_BETWEEN_ATTEMPTS = "stopped between attempts"


def _aware(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def build_plan(run: Run, *, script_path: str | None = None) -> dict[str, Any]:
    """Resolve everything needed to spawn ``run``, as the file system stands now: the check
    the API made (:func:`runs.request.plan_resolve`), made again. Raises :class:`PlanError`.

    ``script_path``: this host's copy of an uploaded script, if it is not at the run's own
    path (:func:`runs.services.uploads.upload_materialise`).

    Returns the plan's ``script``, ``command``, ``cwd`` and ``env`` as plain data.
    """
    params = run.request_parameters()
    if script_path is not None:
        params["script_path"] = script_path
    plan = plan_resolve(
        RunRequest.of_record(params),
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


Deferred = Callable[[Callable[[], object]], None]


def _now_call(work: Callable[[], object]) -> None:
    work()


def sample_line(sample: Sample, *, attempt: int) -> str:
    """A sample as a line of the run's samples file: what ``json.dumps`` writes for it,
    without its machinery (a runner writes a sample of each of its runs several times a
    second); ``json.dumps`` itself only for a non-finite number."""
    ts, cpu = round(sample.ts, 3), sample.cpu_percent
    if not (math.isfinite(ts) and math.isfinite(cpu)):
        row = {"ts": ts, "cpu": cpu, "rss": sample.rss, "children": sample.children, "attempt": attempt}
        return json.dumps(row) + "\n"
    return (
        f'{{"ts": {float(ts)!r}, "cpu": {float(cpu)!r}, "rss": {int(sample.rss)}, '
        f'"children": {int(sample.children)}, "attempt": {int(attempt)}}}\n'
    )


class DbReporter:
    """The engine's reporter for one attempt of one run.

    Output and samples go to files at once. Database writes go through ``defer``: run at
    once on a run's own loop (the default), queued to the host's database thread under a
    runner (:mod:`runs.host`), whose loop must never wait for SQLite's write lock."""

    def __init__(
        self,
        run: Run,
        writer: LogWriter,
        *,
        attempt: int,
        plan: dict[str, Any],
        control_seen: datetime | None = None,
        defer: Deferred = _now_call,
    ):
        self.run = run
        self.writer = writer
        self.attempt = attempt
        self.plan = plan
        self.defer = defer
        self.started_at = timezone.now()
        self._begun = False
        self.stderr_bytes = 0
        # The time of the last control request acted on, carried from attempt to attempt
        # (so a pause or resume is not replayed). It starts as None, not as the row's
        # value: a stop that landed between the claim and loading the row is still due.
        self.control_seen = control_seen
        self._samples_path = run.output_dir / SAMPLES_FILE
        self._samples_fd = os.open(self._samples_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.truncation_reported = writer.truncated
        self.notifier = OutputNotifier(str(run.pk))

    def close(self) -> None:
        self.notifier.flush()
        os.close(self._samples_fd)

    def _changed(self) -> None:
        """Wake live viewers once the write is visible: at once on a run's own loop, after
        the database thread's transaction commits under a runner host."""
        if self.defer is _now_call:
            run_changed(str(self.run.pk))
        else:
            transaction.on_commit(partial(run_changed, str(self.run.pk)))

    def begin(self, pid: int | None = None, create_time: float | None = None) -> None:
        """Record the attempt, once and in one write: its row, its start event and, on the
        run, the attempt count, the resolved script and (once spawned) the process id.

        One transaction instead of four: a worker's writes queue for SQLite's single
        write lock, so a burst of short runs starts sooner with fewer of them."""
        if self._begun:
            return
        self._begun = True
        fields: dict[str, Any] = {"attempts": self.attempt, "resolved_path": self.plan["script"]}
        if not self.run.working_dir:
            # Defaulted (the script's folder): the record says where it really ran.
            fields["working_dir"] = self.plan["cwd"]
        if pid is not None:
            fields.update(pid=pid, pid_create_time=create_time)

        attempt = RunAttempt(run=self.run, number=self.attempt, started_at=self.started_at)
        event = RunEvent(
            run=self.run,
            kind=EventKind.START,
            # The attempt's start, not this write's time: the engine reports the start
            # after it has stored the script's first output.
            timestamp=self.started_at,
            data={"attempt": self.attempt, "command": self.plan["command"], "cwd": self.plan["cwd"]},
        )

        def write() -> None:
            # Statements built once per shape (precompiled): the runner's database thread
            # holds SQLite's one write lock while it runs them.
            inserts = inserts_prepared([[attempt], [event]])
            with transaction.atomic():
                inserts.execute()
                update_rows(Run, values=fields, where={"pk": self.run.pk})
            self._changed()

        self.defer(write)

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
        os.write(self._samples_fd, sample_line(sample, attempt=self.attempt).encode())

    def event(self, kind: str, data: dict[str, object]) -> None:
        def write() -> None:
            RunEvent.objects.create(run=self.run, kind=kind, data={**data, "attempt": self.attempt})
            self._changed()

        self.defer(write)

    def control(self) -> str | None:
        self.notifier.flush()  # called every control poll: no wake-up stays pending long
        row = Run.objects.filter(pk=self.run.pk).values("control", "control_requested_at").first()
        if not row or not row["control"] or row["control_requested_at"] == self.control_seen:
            return None
        self.control_seen = row["control_requested_at"]
        return str(row["control"])

    def progress(self, stats: Stats) -> dict[str, Any]:
        """What a heartbeat records of this run besides the time."""
        return {
            "output_bytes": self.writer.total_bytes,
            "output_lines": self.writer.total_lines,
            "output_truncated": self.writer.truncated,
            "peak_rss": stats.peak_rss or None,
        }

    def truncation_event(self) -> RunEvent | None:
        """The ``output_truncated`` event, the first time the cap is reached."""
        if not self.writer.truncated or self.truncation_reported:
            return None
        self.truncation_reported = True
        return RunEvent(
            run=self.run,
            kind=EventKind.OUTPUT_TRUNCATED,
            data={"cap_bytes": self.writer.cap, "dropped_bytes": self.writer.dropped_bytes},
        )

    def heartbeat(self, stats: Stats) -> None:
        Run.objects.filter(pk=self.run.pk).update(heartbeat_at=timezone.now(), **self.progress(stats))
        event = self.truncation_event()
        if event is not None:
            event.save()

    def paused(self, *, paused: bool) -> None:
        def write() -> None:
            Run.objects.filter(pk=self.run.pk).update(paused=paused)
            RunEvent.objects.create(
                run=self.run, kind=EventKind.PAUSED if paused else EventKind.RESUMED, data={}
            )
            run_changed(str(self.run.pk))

        self.defer(write)


@transaction.atomic  # the failed status and its reason together: no reader sees one alone
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


@transaction.atomic  # the failed status and its reason together, as _reject
def _block(run: Run, *, reason: str, data: dict[str, Any]) -> None:
    now = timezone.now()
    summary = run.error_summary_for(
        exit_code=None,
        stderr_snippet=f"Blocked by pre-run checks: {reason}",
        status="failed",
        reason="blocked",
    )
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, run_status=RunnerStatus.BLOCKED, finished_at=now, error_summary=summary
    )
    RunEvent.objects.create(run=run, kind=EventKind.CHECK_BLOCKED, data=data)


def stop_requested(run_id: str) -> bool:
    """A stop, kill or cancel is pending on the run (checked between attempts)."""
    control = Run.objects.filter(pk=run_id).values_list("control", flat=True).first()
    return control in (Control.STOP, Control.KILL, Control.CANCEL)


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
        if stop_requested(str(run.pk)):
            return False
        time.sleep(min(settings.CONTROL_POLL_INTERVAL, max(0.0, end - now)))


class RunJob:
    """The life of one claimed run: its plan, its attempts and retries, its final write.

    Driven the same way by a run's own loop (:func:`run_execute`) and by a runner host
    (:mod:`runs.host`): :meth:`prepare`, then for each attempt :meth:`attempt_begin`,
    supervise it with the reporter, :meth:`attempt_end` (which says whether and when
    another attempt follows), and :meth:`finish`."""

    def __init__(self, run: Run):
        self.run = run
        self.run_id = str(run.pk)
        self.plan: dict[str, Any] = {}
        self.policy = retry_policy(run)
        self.attempts_allowed = self.policy.max_attempts if self.policy.enabled else 1
        self.number = 0
        self.outcomes: list[Outcome] = []
        self.control_seen: datetime | None = None
        self.closing: tuple[str, int, Outcome] | None = None  # the last attempt, closed with the run
        self.stderr_from = 0  # where the last attempt's stderr begins (the error summary)
        self.first_start = time.monotonic()
        self.writer: LogWriter | None = None

    def prepare(self) -> bool:
        """Check the plan again. False if refused: the run is then already over."""
        try:
            # An upload received by another host (hosts sharing no disk): this host's copy.
            local = upload_materialise(script_path=self.run.script_path)
            self.plan = build_plan(self.run, script_path=local)
        except PlanError as exc:
            _reject(self.run, exc)
            run_changed(self.run_id)
            if self.run.concurrency_key:
                runs_start_waiting(key=self.run.concurrency_key)
            return False
        if not self._precheck():
            run_changed(self.run_id)
            if self.run.concurrency_key:
                runs_start_waiting(key=self.run.concurrency_key)
            return False
        self.writer = LogWriter(self.run.output_dir, cap_bytes=settings.MAX_OUTPUT_BYTES)
        return True

    def _precheck(self) -> bool:
        """The pre-run checks the run asked for (issue 13), before any child is spawned.
        False if they block it: the run is then already over (``failed``, ``blocked``).

        Runs on the calling thread — a runner host's intake thread, never its event loop
        (:mod:`runs.host`), so the other runs' supervision goes on meanwhile. A cached
        result (unchanged script and tools) costs one indexed look-up; a cold check is
        bounded by ``SCRIPTOPS_PRECHECK_TIMEOUT`` per tool (the tools run side by side)."""
        kinds = frozenset(
            kind
            for kind, wanted in (
                ("code", self.run.enable_code_analysis),
                ("secret", self.run.enable_secret_scanning),
                ("dependency", self.run.enable_dependency_scanning),
            )
            if wanted
        )
        if not kinds:
            return True
        script = Path(self.plan["script"])
        root = next((r for r in allowed_roots() if script.is_relative_to(r)), None)
        outcome = precheck_for_run(run_id=self.run_id, path=script, kinds=kinds, root=root)
        data = {
            "status": outcome["status"],
            "cached": outcome["cached"],
            "reason": outcome["reason"],
            "findings": len(outcome["findings"]),
            "blocking": sum(1 for f in outcome["findings"] if f["blocking"]),
            "errors": outcome["errors"],
            "duration_ms": outcome["duration_ms"],
        }
        if not outcome["blocked"]:
            RunEvent.objects.create(run=self.run, kind=EventKind.CHECK_PASSED, data=data)
            return True
        _block(self.run, reason=outcome["reason"], data=data)
        return False

    def limits(self) -> Limits:
        return Limits(
            timeout=self.run.timeout,
            stop_grace=settings.STOP_GRACE,
            monitor_interval=max(0.02, self.run.monitor_interval),
            control_interval=settings.CONTROL_POLL_INTERVAL,
            heartbeat_interval=settings.HEARTBEAT_INTERVAL,
        )

    def attempt_begin(self, *, defer: Deferred = _now_call) -> DbReporter:
        assert self.writer is not None
        self.number += 1
        self.stderr_from = self.writer.stream_bytes[STREAM_CODES["stderr"]]
        if self.attempts_allowed > 1:
            marker = f"=== attempt {self.number} of {self.attempts_allowed} ===\n"
            self.writer.write("system", marker.encode(), time.time())
        return DbReporter(
            self.run,
            self.writer,
            attempt=self.number,
            plan=self.plan,
            control_seen=self.control_seen,
            defer=defer,
        )

    def attempt_failed_to_start(self, reporter: DbReporter, exc: OSError) -> Outcome:
        """The interpreter could not be started (e.g. a bad shebang)."""
        assert self.writer is not None
        reporter.begin()
        self.writer.write("stderr", f"{exc}\n".encode(), time.time())
        return Outcome(None, "failed", time.time(), time.time(), reason=str(exc))

    def attempt_end(self, reporter: DbReporter, outcome: Outcome) -> float | None:
        """Record the attempt's end. Returns the delay before the next attempt, or None
        when the run is over (call :meth:`finish`). Database work: call it where the
        reporter's deferred writes have been done (the attempt's row exists)."""
        assert self.writer is not None
        reporter.close()
        reporter.begin()  # a no-op once the process has started
        self.control_seen = reporter.control_seen
        self.outcomes.append(outcome)
        self.closing = (self.run_id, reporter.attempt, outcome)
        if outcome.run_status in ("success", "killed") or self.number >= self.attempts_allowed:
            return None
        _attempt_close(*self.closing)
        self.closing = None
        delay = self.policy.delay(self.number)
        if time.monotonic() - self.first_start + delay > self.policy.max_time:
            RunEvent.objects.create(
                run=self.run,
                kind=EventKind.RETRY,
                data={"attempt": self.number, "gave_up": True, "reason": "retry_max_time reached"},
            )
            return None
        RunEvent.objects.create(
            run=self.run,
            kind=EventKind.RETRY,
            data={"attempt": self.number, "next_attempt": self.number + 1, "delay": round(delay, 3)},
        )
        self.writer.write(
            "system",
            f"=== attempt {self.number} {outcome.run_status} (exit {outcome.exit_code}); "
            f"retrying in {delay:.2f}s ===\n".encode(),
            time.time(),
        )
        return delay

    def stopped_between_attempts(self) -> None:
        self.outcomes.append(
            Outcome(None, "killed", time.time(), time.time(), reason=STOPPED_BETWEEN_ATTEMPTS)
        )

    def abandon(self, *, message: str) -> None:
        """End the run as ``worker_lost`` (its runner is shutting down and killed it)."""
        assert self.writer is not None
        self.writer.close()
        if self.closing is not None:
            _attempt_close(*self.closing)
        run_fail_lost(run=Run.objects.get(pk=self.run_id), message=message)

    def finish(self, *, deferred: bool = False) -> str:
        """The terminal write; wakes the next run waiting on the concurrency key (after
        the caller's transaction commits when ``deferred``: a runner host's batch)."""
        assert self.writer is not None
        self.writer.close()
        status = _finalise(
            self.run, self.outcomes, self.writer, closing=self.closing, stderr_from=self.stderr_from
        )
        then: Deferred = transaction.on_commit if deferred else _now_call
        then(partial(run_changed, self.run_id))
        if self.run.concurrency_key:
            # A slot is free: the next in line starts.
            then(partial(runs_start_waiting, key=self.run.concurrency_key))
        return status


def run_execute(*, run_id: str) -> str | None:
    """Claim and execute ``run_id`` on this thread (django-q2's sync mode, tests, a
    worker without a runner host). Returns the final status, or None if not claimed.

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
    job = RunJob(Run.objects.get(pk=run_id))
    if not job.prepare():
        return RunStatus.FAILED
    try:
        while True:
            reporter = job.attempt_begin()
            delay = job.attempt_end(reporter, _supervise(job, reporter))
            if delay is None:
                break
            if not _wait_between_attempts(job.run, delay):
                job.stopped_between_attempts()
                break
    finally:
        if job.writer is not None:
            job.writer.close()
    return job.finish()


def _supervise(job: RunJob, reporter: DbReporter) -> Outcome:
    """One attempt on this thread's own loop."""
    supervisor = Supervisor(
        job.plan["command"], cwd=job.plan["cwd"], env=job.plan["env"], reporter=reporter, limits=job.limits()
    )
    try:
        return supervisor.run()
    except OSError as exc:
        supervisor.abort()
        return job.attempt_failed_to_start(reporter, exc)
    except Exception:
        # A bug or a database outage inside supervision: never leave the script
        # running unsupervised. If the database is down, the reaper fails the run later.
        logger.exception("Supervision of run %s failed; killing its processes", job.run_id)
        supervisor.abort()
        reporter.close()
        raise


def _attempt_close(run_id: str, number: int, outcome: Outcome) -> None:
    update_rows(
        RunAttempt,
        values={
            "finished_at": _aware(outcome.finished),
            "exit_code": outcome.exit_code,
            "run_status": outcome.run_status,
            "duration": outcome.duration,
            "cpu_time": outcome.stats.cpu_time,
            "peak_rss": outcome.stats.peak_rss or None,
        },
        where={"run": run_id, "number": number},  # unique together
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
    closing: tuple[str, int, Outcome] | None,
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
    avg_cpu = round(100.0 * cpu_time / duration, 2) if duration > 0 else 0.0
    peak_rss = max((o.stats.peak_rss for o in outcomes), default=0) or None
    finished_at = timezone.now()
    run_status, reason = last.run_status, last.reason
    verdict = _analyse(
        run,
        outcomes,
        writer,
        status=status,
        exit_code=exit_code,
        duration=duration,
        cpu_time=cpu_time,
        avg_cpu=avg_cpu,
        peak_rss=peak_rss,
        finished_at=finished_at,
    )
    if verdict is not None and verdict.violations:
        RunEvent.objects.create(run=run, kind=EventKind.GATE_FAILED, data={"violations": verdict.violations})
        if status == RunStatus.COMPLETED:
            # The script succeeded, its performance did not: a failed run, saying why.
            status, run_status, reason = RunStatus.FAILED, "failed", verdict.reason()
    summary = None
    if run_status != "success":
        summary = run.error_summary_for(
            exit_code=exit_code,
            stderr_snippet=_stderr_tail(run, since=stderr_from),
            status=run_status,
            reason=reason,
        )
    update_rows(
        Run,
        values={
            "status": status,
            "run_status": run_status,
            "exit_code": exit_code,
            "finished_at": finished_at,
            "duration": round(duration, 6),
            "cpu_time": round(cpu_time, 6),
            "avg_cpu": avg_cpu,
            "peak_rss": peak_rss,
            "max_children": max((o.stats.max_children for o in outcomes), default=0),
            "output_bytes": writer.total_bytes,
            "output_lines": writer.total_lines,
            "output_truncated": writer.truncated,
            "error_summary": summary,
            "paused": False,
            "heartbeat_at": timezone.now(),
        },
        where={"pk": run.pk, "status": RunStatus.RUNNING},
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
    }[run_status]
    end = RunEvent(
        run=run,
        kind=kind,
        data={
            "exit_code": exit_code,
            "run_status": run_status,
            "duration": round(duration, 3),
            "attempts": len([o for o in outcomes if o.exit_code is not None]),
            "reason": reason,
        },
    )
    inserts_prepared([[end]]).execute()
    return str(status)


def _analyse(
    run: Run,
    outcomes: list[Outcome],
    writer: LogWriter,
    *,
    status: str,
    exit_code: int | None,
    duration: float,
    cpu_time: float,
    avg_cpu: float,
    peak_rss: int | None,
    finished_at: datetime,
) -> Verdict | None:
    """Analytics' part of the run's end (:func:`analytics.services.runs.run_analyse`):
    history, gates, baselines, JUnit, cost, alerts. In a savepoint, and never fatal: a
    failure of analytics loses the analysis (logged), never the run's terminal write."""
    last = outcomes[-1]
    facts = RunFacts(
        run_id=str(run.pk),
        script_path=run.script_path,
        status=str(status),
        run_status=last.run_status,
        source=run.source,
        finished_at=finished_at,
        duration_seconds=duration,
        cpu_time_seconds=cpu_time,
        peak_rss_bytes=peak_rss,
        avg_cpu_percent=avg_cpu,
        exit_code=exit_code,
        output_bytes=writer.total_bytes,
        # The attempts made (a stop between attempts ends the run with a pseudo-outcome).
        attempt_count=len(outcomes) - (last.reason == STOPPED_BETWEEN_ATTEMPTS),
        attempts=[
            AttemptFacts(number, o.run_status, o.exit_code, o.duration, o.reason)
            for number, o in enumerate(outcomes, start=1)
        ],
        custom_metrics=dict(writer.metrics.values),
        reason=last.reason,
        scheduled=run.source == SCHEDULED_SOURCE,
        enable_history=run.enable_history,
        performance_gates=run.performance_gates or (),
        junit_output=run.junit_output,
        save_baseline=run.save_baseline,
        load_baseline=run.load_baseline,
        alerts=run.alerts or (),
        slack_webhook=run.slack_webhook,
        enable_cost_tracking=run.enable_cost_tracking,
    )
    try:
        with transaction.atomic():
            return run_analyse(facts=facts)
    except Exception:
        logger.exception("Analytics of run %s failed; the run ends without it", run.pk)
        return None
