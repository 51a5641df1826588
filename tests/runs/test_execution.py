"""The runner service: claim a queued run, execute it (with retries) and record everything.

Scripts run for real; ``run_execute`` is called directly in the test process, and
in a background thread where a test must send control requests while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from core.hostid import host_id
from runs.logstore import LogReader
from runs.models import EventKind, Run, RunAttempt, RunStatus
from runs.serializers import RunSerializer
from runs.services import execution, lifecycle, run_control, run_enqueue, run_execute, run_reap_orphans
from tests.runs.helpers import is_gone, process_of, strays, wait_for

__all__ = ["strays"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.usefixtures("strays", "no_dispatch")

ALWAYS_FAILS = "echo 'attempt failed' >&2\nexit 1\n"


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue without handing the run to django-q: the tests call ``run_execute`` themselves."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


def queue(script: Path | str, **params: Any) -> Run:
    return run_enqueue(params={"script_path": str(script), **params}, source="test")


def kinds(run: Run) -> list[str]:
    return list(run.events.order_by("timestamp", "id").values_list("kind", flat=True))


def stdout_of(run: Run, stream: str = "stdout") -> str:
    return LogReader(run.output_dir).read_bytes(stream=stream)[0].decode()


def counting_script(make_script: Callable[..., Path], *, succeed_at: int) -> Path:
    """A script that counts its runs in the file given as $1 and fails until run ``succeed_at``."""
    return make_script(
        "flaky.sh",
        f"""
        n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
        echo "$n" > "$1"
        echo "run $n"
        if [ "$n" -lt {succeed_at} ]; then echo "run $n failed" >&2; exit 1; fi
        echo "run $n succeeded"
        """,
    )


# -- outcomes ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_success_completes_with_events_attempt_and_metrics(make_script: Callable[..., Path]):
    script = make_script(
        "work.py",
        """
        import sys, time
        # Whole lines in one write each: with -u, print() writes the text and the newline
        # separately, and a busy machine could let the engine flush the text on its own.
        sys.stdout.write("starting\\n")
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        sys.stderr.write("a warning\\n")
        sys.stdout.write("done\\n")
        """,
    )
    run = queue(script, args=["--fast"])

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.exit_code, run.attempts) == ("completed", "success", 0, 1)
    assert run.error_summary is None
    assert kinds(run) == [EventKind.QUEUED, EventKind.START, EventKind.SUCCESS]
    assert run.duration and run.duration > 0.3
    assert run.cpu_time and run.cpu_time > 0.2
    assert run.peak_rss and run.peak_rss > 1_000_000
    assert run.avg_cpu is not None and run.avg_cpu > 0
    assert run.started_at and run.finished_at and run.started_at <= run.finished_at
    assert run.resolved_path == str(script.resolve())
    assert (run.host, run.host_id, run.worker_pid) == (socket.gethostname(), host_id(), os.getpid())
    assert run.pid and run.pid_create_time
    assert stdout_of(run) == "starting\ndone\n"
    assert stdout_of(run, "stderr") == "a warning\n"
    assert (run.output_lines, run.output_truncated) == (3, False)
    attempt = RunAttempt.objects.get(run=run)
    assert (attempt.number, attempt.exit_code, attempt.run_status) == (1, 0, "success")
    assert attempt.finished_at and attempt.duration and attempt.cpu_time and attempt.peak_rss
    start = run.events.get(kind=EventKind.START).data
    assert start["command"][-2:] == [str(script.resolve()), "--fast"]
    samples = [json.loads(row) for row in (run.output_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["rss"] > 0 and s["attempt"] == 1 for s in samples)


@pytest.mark.django_db
def test_failure_records_an_error_summary_with_the_stderr_tail(make_script: Callable[..., Path]):
    script = make_script(
        "broken.sh",
        """
        echo "some output"
        for i in $(seq 1 300); do echo "noise line $i" >&2; done
        echo "Traceback: the real cause" >&2
        exit 4
        """,
    )
    run = queue(script)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.exit_code) == ("failed", "failed", 4)
    assert kinds(run) == [EventKind.QUEUED, EventKind.START, EventKind.FAILURE]
    stderr = stdout_of(run, "stderr")
    assert len(stderr) > 2048
    summary = run.error_summary
    assert summary is not None
    assert {k: summary[k] for k in ("exit_code", "status", "correlation_id")} == {
        "exit_code": 4,
        "status": "failed",
        "correlation_id": str(run.correlation_id),
    }
    assert summary["stderr_snippet"] == stderr[-2048:]
    assert summary["stderr_snippet"].endswith("Traceback: the real cause\n")


@pytest.mark.django_db
def test_timeout_fails_the_run_with_run_status_timeout(make_script: Callable[..., Path]):
    script = make_script("slow.sh", "echo begin\nsleep 100\n")
    run = queue(script, timeout=1.0)
    started = time.monotonic()

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    assert time.monotonic() - started < 10
    run.refresh_from_db()
    assert (run.status, run.run_status) == ("failed", "timeout")
    assert run.error_summary and run.error_summary["status"] == "timeout"
    assert EventKind.TIMEOUT in kinds(run)
    assert kinds(run)[-1] == EventKind.FAILURE


@pytest.mark.django_db
def test_script_whose_interpreter_cannot_start_fails_with_the_error(make_script: Callable[..., Path]):
    script = make_script("bad-shebang", "#!/nonexistent/interpreter\necho never\n")
    run = queue(script)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.exit_code) == ("failed", "failed", None)
    assert run.error_summary and "No such file" in run.error_summary["stderr_snippet"]


@pytest.mark.django_db
def test_output_over_the_cap_keeps_the_tail_and_reports_truncation(
    make_script: Callable[..., Path], settings
):
    settings.MAX_OUTPUT_BYTES = 64 * 1024
    script = make_script(
        "loud.py",
        "import sys\nfor i in range(20000):\n    sys.stdout.write(f'line {i:06d} ' + 'x' * 40 + '\\n')\n",
    )
    run = queue(script)

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert run.output_truncated
    assert run.output_bytes == 20000 * 53
    assert kinds(run).count(EventKind.OUTPUT_TRUNCATED) == 1
    reader = LogReader(run.output_dir)
    assert reader.tail_lines(1)[0].text.startswith("line 019999 ")
    assert reader.dropped()[0] > 0


@pytest.mark.django_db
def test_stream_output_copies_lines_to_the_server_log(
    make_script: Callable[..., Path], caplog: pytest.LogCaptureFixture
):
    script = make_script("talk.sh", "echo to-out\necho to-err >&2\n")
    run = queue(script, stream_output=True)

    with caplog.at_level(logging.INFO, logger="scriptops.output"):
        run_execute(run_id=str(run.pk))

    logged = {(r.levelno, r.getMessage()) for r in caplog.records if r.name == "scriptops.output"}
    assert (logging.INFO, f"[{run.pk} stdout] to-out") in logged
    assert (logging.WARNING, f"[{run.pk} stderr] to-err") in logged


# -- retries --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("strategy", "delays"),
    [
        ("linear", [0.05, 0.1]),
        ("exponential", [0.05, 0.1]),
        ("fibonacci", [0.05, 0.05]),
        ("exponential_jitter", None),
    ],
)
def test_retries_record_each_attempt_and_stop_once_one_succeeds(
    strategy: str, delays: list[float] | None, make_script: Callable[..., Path], tmp_path: Path
):
    script = counting_script(make_script, succeed_at=3)
    counter = tmp_path / "count"
    run = queue(
        script,
        args=[str(counter)],
        retry_on_failure=True,
        retry_max_attempts=5,
        retry_strategy=strategy,
        retry_initial_delay=0.05,
        retry_multiplier=2.0,
        retry_max_delay=1.0,
    )

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.exit_code, run.attempts) == ("completed", "success", 0, 3)
    assert counter.read_text().strip() == "3"
    attempts = list(RunAttempt.objects.filter(run=run).values_list("number", "exit_code", "run_status"))
    assert attempts == [(1, 1, "failed"), (2, 1, "failed"), (3, 0, "success")]
    assert kinds(run) == [
        EventKind.QUEUED,
        EventKind.START,
        EventKind.RETRY,
        EventKind.START,
        EventKind.RETRY,
        EventKind.START,
        EventKind.SUCCESS,
    ]
    retries = [e.data for e in run.events.filter(kind=EventKind.RETRY).order_by("id")]
    assert [(r["attempt"], r["next_attempt"]) for r in retries] == [(1, 2), (2, 3)]
    if delays is not None:
        assert [r["delay"] for r in retries] == delays
    else:  # equal jitter: between half and all of 0.05, 0.1
        assert 0.025 <= retries[0]["delay"] <= 0.05 and 0.05 <= retries[1]["delay"] <= 0.1
    output = stdout_of(run, "all")
    markers = [line for line in output.splitlines() if line.startswith("=== attempt ") and " of " in line]
    assert markers == ["=== attempt 1 of 5 ===", "=== attempt 2 of 5 ===", "=== attempt 3 of 5 ==="]
    assert "=== attempt 1 failed (exit 1); retrying in" in output
    assert (
        output.index("run 2 failed")
        < output.index("=== attempt 3 of 5 ===")
        < output.index("run 3 succeeded")
    )
    assert run.error_summary is None


@pytest.mark.django_db
def test_retries_give_up_after_max_attempts(make_script: Callable[..., Path]):
    script = make_script("always-fails.sh", ALWAYS_FAILS)
    run = queue(script, retry_on_failure=True, retry_max_attempts=3, retry_initial_delay=0.01)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.exit_code, run.attempts) == ("failed", "failed", 1, 3)
    assert kinds(run).count(EventKind.RETRY) == 2
    assert kinds(run).count(EventKind.START) == 3
    assert RunAttempt.objects.filter(run=run).count() == 3
    assert run.error_summary and run.error_summary["stderr_snippet"].endswith("attempt failed\n")


@pytest.mark.django_db
def test_retry_max_time_stops_retrying(make_script: Callable[..., Path]):
    script = make_script("always-fails.sh", ALWAYS_FAILS)
    # First delay 0.1 s fits in 3 s; the second (10 s) would not, whatever the machine's speed.
    run = queue(
        script,
        retry_on_failure=True,
        retry_max_attempts=10,
        retry_strategy="exponential",
        retry_initial_delay=0.1,
        retry_multiplier=100.0,
        retry_max_delay=60.0,
        retry_max_time=3.0,
    )

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert (run.status, run.attempts) == ("failed", 2)
    retries = [e.data for e in run.events.filter(kind=EventKind.RETRY).order_by("id")]
    assert retries[0] == {"attempt": 1, "next_attempt": 2, "delay": 0.1}
    assert retries[1] == {"attempt": 2, "gave_up": True, "reason": "retry_max_time reached"}
    assert "=== attempt 3 of 10 ===" not in stdout_of(run, "all")


# -- isolation and refusals --------------------------------------------------------------------


@pytest.mark.django_db
def test_child_environment_holds_only_the_documented_variables(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SCRIPTOPS_SECRET_KEY", "top-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://admin:hunter2@db/prod")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")  # no locale coercion adding LC_CTYPE in the child
    monkeypatch.delenv("LC_ALL", raising=False)
    script = make_script("env.py", "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    run = queue(script, env_vars={"GREETING": "hello", "RETRIES": 3}, log_level="DEBUG")

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    env = json.loads(stdout_of(run))
    assert env == {
        "PATH": settings.SCRIPT_PATH,
        "HOME": os.environ["HOME"],
        "LANG": "C.UTF-8",
        "TZ": os.environ.get("TZ", "UTC"),
        "SCRIPTOPS_RUN_ID": str(run.pk),
        "SCRIPTOPS_CORRELATION_ID": str(run.correlation_id),
        "SCRIPTOPS_LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "GREETING": "hello",
        "RETRIES": "3",
    }


@pytest.mark.django_db
def test_shell_scripts_do_not_see_server_secrets_either(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SCRIPTOPS_SECRET_KEY", "top-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://admin:hunter2@db/prod")
    script = make_script("env.sh", "env\n")
    run = queue(script)

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    names = {line.split("=", 1)[0] for line in stdout_of(run).splitlines()}
    # bash adds PWD, SHLVL and _ itself.
    assert names - {"PWD", "SHLVL", "_"} == {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "SCRIPTOPS_RUN_ID",
        "SCRIPTOPS_CORRELATION_ID",
        "SCRIPTOPS_LOG_LEVEL",
    }
    assert "top-secret-key" not in stdout_of(run) and "hunter2" not in stdout_of(run)


@pytest.mark.django_db
def test_script_swapped_for_a_symlink_escaping_the_root_after_queueing_is_rejected(
    make_script: Callable[..., Path], tmp_path: Path
):
    script = make_script("job.sh", "echo harmless\n")
    run = queue(script)  # valid when queued
    marker = tmp_path / "escaped"
    outside = tmp_path / "evil.sh"
    outside.write_text(f"touch {marker}\n")
    outside.chmod(0o755)
    script.unlink()
    script.symlink_to(outside)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert (run.status, run.run_status, run.pid) == ("failed", "failed", None)
    assert kinds(run) == [EventKind.QUEUED, EventKind.REJECTED]
    assert run.events.get(kind=EventKind.REJECTED).data["field"] == "script_path"
    assert run.error_summary and run.error_summary["reason"] == "path_not_allowed"
    assert not RunAttempt.objects.filter(run=run).exists()
    assert not marker.exists()


@pytest.mark.django_db
def test_denied_env_var_slipped_into_a_queued_run_is_rejected(make_script: Callable[..., Path]):
    script = make_script("job.sh", "echo hi\n")
    run = queue(script, env_vars={"LD_PRELOAD": "/tmp/evil.so"})

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary and "LD_PRELOAD" in run.error_summary["stderr_snippet"]
    assert kinds(run) == [EventKind.QUEUED, EventKind.REJECTED]


@pytest.mark.django_db
def test_claiming_twice_runs_once(make_script: Callable[..., Path], tmp_path: Path):
    counter = tmp_path / "count"
    script = counting_script(make_script, succeed_at=1)
    run = queue(script, args=[str(counter)])

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED
    assert run_execute(run_id=str(run.pk)) is None

    assert counter.read_text().strip() == "1"
    assert kinds(run).count(EventKind.START) == 1


@pytest.mark.django_db
def test_queued_run_cancelled_before_the_worker_starts_never_runs(
    make_script: Callable[..., Path], tmp_path: Path
):
    marker = tmp_path / "ran"
    script = make_script("job.sh", f"touch {marker}\n")
    run = queue(script)

    run_control(run=run, command="cancel")
    assert run_execute(run_id=str(run.pk)) is None

    run.refresh_from_db()
    assert (run.status, run.pid, run.started_at) == ("cancelled", None, None)
    assert kinds(run) == [EventKind.QUEUED, EventKind.CANCELLED]
    assert not marker.exists()


# -- control requests while running ------------------------------------------------------------

TREE_SCRIPT = """
trap 'echo "stopping"; exit 0' TERM
setsid sleep 300 &
echo "grandchild $!"
while true; do sleep 0.1; done
"""


class BackgroundRunner:
    """``run_execute`` in a thread of its own, while the test thread sends requests.

    On SQLite the thread shares the test's database connection, as Django's
    LiveServerTestCase does: the test database is in-memory, and two connections to it
    share one cache with table locks that ignore the busy timeout (a read in one thread
    during a write in the other fails with "database table is locked"); through one
    connection the statements simply interleave. On PostgreSQL the thread has its own
    connection, as a worker would: one psycopg connection used by two threads at once
    breaks as soon as one of them is inside a transaction (the runner writes the start
    of a run while the test may be sending its control request).
    """

    def __init__(self, run: Run):
        self.run = run
        self.result: str | None = None
        self.error: BaseException | None = None
        default = connections[DEFAULT_DB_ALIAS]
        self.shared = default if default.vendor == "sqlite" else None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        if self.shared is not None:
            connections[DEFAULT_DB_ALIAS] = self.shared
        try:
            self.result = run_execute(run_id=str(self.run.pk))
        except BaseException as exc:
            self.error = exc
        finally:
            if self.shared is None:
                connections.close_all()  # its own: the test database is dropped at the end

    def __enter__(self) -> BackgroundRunner:
        if self.shared is not None:
            self.shared.inc_thread_sharing()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():  # the test failed half-way: end the run, not the suite
            with contextlib.suppress(Exception):
                run_control(run=Run.objects.get(pk=self.run.pk), command="kill")
        self.thread.join(timeout=30)
        if self.shared is not None:
            self.shared.dec_thread_sharing()

    def until(self, predicate: Callable[[], bool], *, timeout: float = 30) -> bool:
        """Wait for ``predicate``; fail at once (with the runner's error) if the run ended."""
        assert wait_for(lambda: predicate() or not self.thread.is_alive(), timeout=timeout), (
            f"still waiting after {timeout:g}s"
        )
        if not predicate():
            self.join(0)
            pytest.fail(f"the run ended first, with status {self.result}")
        return True

    def wait_for_output(self, text: str, *, timeout: float = 30) -> str:
        self.until(lambda: text in stdout_of(self.run), timeout=timeout)
        return stdout_of(self.run)

    def join(self, timeout: float = 30) -> str | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the runner did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def grandchild_of(output: str) -> int:
    return int(next(line for line in output.splitlines() if line.startswith("grandchild ")).split()[1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("command", "requested_event"),
    [
        ("stop", EventKind.STOP_REQUESTED),
        ("cancel", EventKind.STOP_REQUESTED),
        ("kill", EventKind.KILL_REQUESTED),
    ],
)
def test_control_request_ends_a_running_run_and_its_whole_tree(
    command: str,
    requested_event: str,
    make_script: Callable[..., Path],
    strays: list[psutil.Process],
):
    script = make_script("tree.sh", TREE_SCRIPT)
    run = queue(script)

    with BackgroundRunner(run) as runner:
        grandchild = grandchild_of(runner.wait_for_output("grandchild"))
        proc = process_of(grandchild)
        assert proc is not None
        strays.append(proc)
        created = proc.create_time()

        run_control(run=Run.objects.get(pk=run.pk), command=command)
        assert runner.join() == RunStatus.CANCELLED

    run.refresh_from_db()
    assert (run.status, run.run_status) == ("cancelled", "killed")
    events = kinds(run)
    assert requested_event in events
    assert events[-1] == EventKind.CANCELLED
    if command == "kill":
        assert EventKind.FORCED_TERMINATION in events
        assert run.exit_code == -9
    else:
        assert run.exit_code == 0
        assert "stopping" in stdout_of(run)
    assert run.error_summary and run.error_summary["status"] == "killed"
    assert wait_for(lambda: is_gone(grandchild, created), timeout=10)


@pytest.mark.django_db(transaction=True)
def test_pause_and_resume_requests_reach_the_running_script(
    make_script: Callable[..., Path], strays: list[psutil.Process]
):
    script = make_script("ticker.sh", "echo started\nwhile true; do echo tick; sleep 0.05; done\n")
    run = queue(script)

    with BackgroundRunner(run) as runner:
        runner.wait_for_output("started")
        assert run_control(run=Run.objects.get(pk=run.pk), command="pause").status == "running"
        assert runner.until(lambda: Run.objects.get(pk=run.pk).paused)
        pid = Run.objects.get(pk=run.pk).pid or 0
        assert wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED)

        run_control(run=Run.objects.get(pk=run.pk), command="resume")
        assert runner.until(lambda: not Run.objects.get(pk=run.pk).paused)
        ticks = stdout_of(run).count("tick")
        assert runner.until(lambda: stdout_of(run).count("tick") > ticks + 3), "output did not resume"

        run_control(run=Run.objects.get(pk=run.pk), command="kill")
        assert runner.join() == RunStatus.CANCELLED

    events = kinds(run)
    assert events.index(EventKind.PAUSED) < events.index(EventKind.RESUMED)


@pytest.mark.django_db(transaction=True)
def test_stop_while_waiting_between_attempts_cancels_without_another_attempt(
    make_script: Callable[..., Path],
):
    script = make_script("always-fails.sh", ALWAYS_FAILS)
    run = queue(script, retry_on_failure=True, retry_max_attempts=3, retry_initial_delay=60.0)

    with BackgroundRunner(run) as runner:
        runner.until(lambda: run.events.filter(kind=EventKind.RETRY).exists())
        run_control(run=Run.objects.get(pk=run.pk), command="stop")
        assert runner.join() == RunStatus.CANCELLED  # long before the 60 s delay is over

    run.refresh_from_db()
    assert (run.status, run.run_status, run.attempts, run.exit_code) == ("cancelled", "killed", 1, 1)
    assert run.error_summary and run.error_summary["reason"] == "stopped between attempts"
    assert kinds(run).count(EventKind.START) == 1


# -- orphans --------------------------------------------------------------------------------------


@pytest.fixture
def orphan_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real process tree standing for a run whose worker died."""
    proc = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.django_db
def test_reaper_fails_a_run_with_a_stale_heartbeat_and_kills_its_tree(
    make_script: Callable[..., Path], orphan_process: subprocess.Popen[bytes]
):
    leader = psutil.Process(orphan_process.pid)
    assert wait_for(lambda: len(leader.children()) == 1)
    child = leader.children()[0]
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT + 60)
    run = Run.objects.create(
        script_path=str(make_script("job.sh", "sleep 300\n")),
        status=RunStatus.RUNNING,
        started_at=stale,
        heartbeat_at=stale,
        host=socket.gethostname(),
        host_id=host_id(),
        pid=orphan_process.pid,
        pid_create_time=leader.create_time(),
    )

    assert run_reap_orphans() == [str(run.pk)]

    run.refresh_from_db()
    assert (run.status, run.run_status) == ("failed", "failed")
    assert run.error_summary and run.error_summary["reason"] == "worker_lost"
    assert run.events.get(kind=EventKind.ORPHANED).data["process_killed"] is True
    assert orphan_process.wait(timeout=10) == -9
    assert wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=10)
    assert run_reap_orphans() == []  # once only


@pytest.mark.django_db
def test_reaper_leaves_a_healthy_run_alone(
    make_script: Callable[..., Path], orphan_process: subprocess.Popen[bytes]
):
    run = Run.objects.create(
        script_path=str(make_script("job.sh", "sleep 300\n")),
        status=RunStatus.RUNNING,
        heartbeat_at=timezone.now(),
        host=socket.gethostname(),
        host_id=host_id(),
        worker_pid=os.getpid(),
        pid=orphan_process.pid,
        pid_create_time=psutil.Process(orphan_process.pid).create_time(),
    )

    assert run_reap_orphans() == []

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert orphan_process.poll() is None


@pytest.mark.django_db
def test_reaper_spares_a_recycled_pid(
    make_script: Callable[..., Path], orphan_process: subprocess.Popen[bytes]
):
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT + 60)
    run = Run.objects.create(
        script_path=str(make_script("job.sh", "sleep 300\n")),
        status=RunStatus.RUNNING,
        heartbeat_at=stale,
        host=socket.gethostname(),
        host_id=host_id(),
        pid=orphan_process.pid,
        # The run's process started an hour earlier: this pid now names another process.
        pid_create_time=psutil.Process(orphan_process.pid).create_time() - 3600,
    )

    assert run_reap_orphans() == [str(run.pk)]

    assert run.events.get(kind=EventKind.ORPHANED).data["process_killed"] is False
    assert orphan_process.poll() is None


@pytest.mark.django_db
def test_reaper_judges_this_host_by_its_id_not_its_name(
    make_script: Callable[..., Path], orphan_process: subprocess.Popen[bytes]
):
    """Two hosts may share a name (containers from one image): a run whose worker pid
    does not exist here is another host's business unless the host ids match."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that exists nowhere on this machine now
    fresh = timezone.now()
    elsewhere = Run.objects.create(
        script_path=str(make_script("job.sh", "sleep 300\n")),
        status=RunStatus.RUNNING,
        heartbeat_at=fresh,
        host=socket.gethostname(),
        host_id=f"{socket.gethostname()}#another-machine",
        worker_pid=gone.pid,
        pid=orphan_process.pid,
        pid_create_time=psutil.Process(orphan_process.pid).create_time(),
    )
    here = Run.objects.create(
        script_path=str(make_script("job2.sh", "sleep 300\n")),
        status=RunStatus.RUNNING,
        heartbeat_at=fresh,
        host=socket.gethostname(),
        host_id=host_id(),
        worker_pid=gone.pid,
    )

    assert run_reap_orphans() == [str(here.pk)]

    elsewhere.refresh_from_db()
    assert elsewhere.status == RunStatus.RUNNING
    assert orphan_process.poll() is None  # its tree is not this host's to kill


@pytest.mark.django_db
def test_stop_requested_between_the_claim_and_the_first_poll_is_not_lost(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    script = make_script("long.sh", "sleep 300\n")
    run = queue(script, timeout=20.0)
    claim = execution.run_claim

    def claim_then_stop(*, run_id: str) -> str:
        claimed = claim(run_id=run_id)
        # The user presses stop the instant the run turns "running".
        run_control(run=Run.objects.get(pk=run_id), command="stop")
        return claimed

    monkeypatch.setattr(execution, "run_claim", claim_then_stop)
    started = time.monotonic()

    assert run_execute(run_id=str(run.pk)) == RunStatus.CANCELLED

    assert time.monotonic() - started < 15  # stopped, not timed out
    run.refresh_from_db()
    assert (run.status, run.run_status) == ("cancelled", "killed")


@pytest.mark.django_db
def test_system_env_set_by_scriptops_reaches_the_script_but_its_values_are_never_returned(
    make_script: Callable[..., Path],
) -> None:
    script = make_script("env.py", "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    run = queue(
        script,
        system_env={"SCRIPTOPS_WEBHOOK_PAYLOAD": '{"token": "s3cret"}', "NOT_OURS": "dropped"},
    )

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    env = json.loads(stdout_of(run))
    assert env["SCRIPTOPS_WEBHOOK_PAYLOAD"] == '{"token": "s3cret"}'
    assert "NOT_OURS" not in env  # only SCRIPTOPS_* names are ScriptOps' own
    shown = RunSerializer(Run.objects.get(pk=run.pk)).data
    assert shown["system_env"] == ["NOT_OURS", "SCRIPTOPS_WEBHOOK_PAYLOAD"]
    assert "s3cret" not in json.dumps(shown)
