"""The runner host (runs/host.py): runs taken from the real queue (the database broker,
or Redis on the PostgreSQL + Redis pass), claimed, executed as real subprocesses by one
loop in this process, recorded by its database thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
from django_q.conf import Conf

from runs.host import RunHost
from runs.logstore import LogReader
from runs.models import EventKind, Run, RunAttempt, RunEvent, RunStatus
from runs.services import queue as runs_queue_module
from runs.services import run_control, run_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Tasks go to the real runs queue instead of running in-process (the unit-test
    settings' sync mode), on a queue of this test's own."""
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.RUNS_QUEUE = f"test-runs-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setattr(runs_queue_module, "_broker", None)


@pytest.fixture
def start_host(queued: None) -> Iterator[Callable[..., RunHost]]:
    hosts: list[RunHost] = []

    def start(**kwargs: Any) -> RunHost:
        host = RunHost(**kwargs)
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()
    runs_queue_module.runs_broker().purge_queue()


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def launch(script: Path, **params: Any) -> Run:
    return run_enqueue(params={"script_path": str(script), **params}, source="test")


def status(run: Run) -> str:
    return str(Run.objects.values_list("status", flat=True).get(pk=run.pk))


def over(*runs: Run) -> Callable[[], bool]:
    ids = [run.pk for run in runs]
    return lambda: not Run.objects.filter(
        pk__in=ids, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)
    ).exists()


def text(run: Run) -> str:
    return LogReader(run.output_dir).read_bytes(stream="all")[0].decode()


GATED = """
echo "started $SCRIPTOPS_RUN_ID"
while [ ! -e go ]; do sleep 0.05; done
echo done
"""


def test_many_runs_at_once_in_one_process(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script("gated.sh", GATED)
    host = start_host(max_runs=50)
    runs = [launch(script) for _ in range(30)]

    # All 30 run at the same time (each waits for the gate), supervised by this process.
    wait_until(lambda: all("started" in text(run) for run in runs), "all 30 running at once")
    assert Run.objects.filter(pk__in=[r.pk for r in runs], status=RunStatus.RUNNING).count() == 30
    assert set(Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("worker_pid", flat=True)) == {
        os.getpid()
    }
    (script.parent / "go").touch()
    wait_until(over(*runs), "all 30 over")

    for run in runs:
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED, run.error_summary
        assert text(run) == f"started {run.pk}\ndone\n"
        assert run.output_lines == 2
        assert run.attempts == 1
        assert RunAttempt.objects.filter(run=run).count() == 1
        kinds = list(RunEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))
        assert kinds == [EventKind.QUEUED, EventKind.START, EventKind.SUCCESS]
    assert host.held == 0


def test_capacity_holds_the_rest_in_the_queue(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script("gated.sh", GATED)
    host = start_host(max_runs=3)
    runs = [launch(script) for _ in range(5)]

    wait_until(lambda: Run.objects.filter(status=RunStatus.RUNNING).count() == 3, "3 running")
    time.sleep(0.5)  # room for a wrong fourth claim
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 3
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 2
    assert host.held == 3
    (script.parent / "go").touch()
    wait_until(over(*runs), "all 5 over")
    assert Run.objects.filter(pk__in=[r.pk for r in runs], status=RunStatus.COMPLETED).count() == 5


def test_retries_with_their_delay(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script(
        "flaky.sh",
        """
        if [ -e tried ]; then echo second; exit 0; fi
        touch tried; echo first; exit 3
        """,
    )
    start_host()
    run = launch(script, retry_on_failure=True, retry_max_attempts=3, retry_initial_delay=0.2)
    wait_until(over(run), "the run over")

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.attempts == 2
    assert list(
        RunAttempt.objects.filter(run=run).order_by("number").values_list("run_status", flat=True)
    ) == [
        "failed",
        "success",
    ]
    assert "=== attempt 1 of 3 ===\nfirst\n" in text(run)
    assert text(run).endswith("=== attempt 2 of 3 ===\nsecond\n")
    assert RunEvent.objects.filter(run=run, kind=EventKind.RETRY).count() == 1


def test_a_stop_between_attempts_ends_the_run(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script("fails.sh", "echo nope; exit 1\n")
    start_host()
    run = launch(script, retry_on_failure=True, retry_max_attempts=3, retry_initial_delay=60)
    wait_until(
        lambda: RunEvent.objects.filter(run=run, kind=EventKind.RETRY).exists(), "the first retry planned"
    )

    run_control(run=run, command="stop")
    wait_until(over(run), "the stopped run over", timeout=10)  # not after the 60 s delay

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.attempts == 1


def test_controls_reach_the_script(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script(
        "ticker.sh",
        """
        trap 'echo got TERM; exit 0' TERM
        echo "pid $$"
        while true; do sleep 0.05; done
        """,
    )
    start_host()
    run = launch(script)
    wait_until(lambda: "pid " in text(run), "the script started")
    pid = int(text(run).split()[1])

    run_control(run=run, command="pause")
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "the script paused")
    wait_until(lambda: Run.objects.get(pk=run.pk).paused, "the pause recorded")
    run_control(run=run, command="resume")
    wait_until(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, "the script resumed")
    run_control(run=run, command="stop")
    wait_until(over(run), "the stopped run over")

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "got TERM" in text(run)
    kinds = set(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert {EventKind.PAUSED, EventKind.RESUMED, EventKind.STOP_REQUESTED} <= kinds


def test_heartbeats_record_progress_of_running_runs(
    start_host: Callable[..., RunHost], make_script: Any
) -> None:
    script = make_script(
        "chatty.sh", GATED.replace("echo done", "echo done").replace("started", "line1\necho started")
    )
    start_host()
    runs = [launch(script) for _ in range(3)]

    # HEARTBEAT_INTERVAL is 0.5 s in the test settings: every run's counters are written
    # while it runs (one statement for all of them).
    wait_until(
        lambda: Run.objects.filter(
            pk__in=[r.pk for r in runs], status=RunStatus.RUNNING, output_lines=2
        ).count()
        == 3,
        "the output counters of all three written by a heartbeat",
    )
    (script.parent / "go").touch()
    wait_until(over(*runs), "all over")


def test_a_script_that_went_away_is_rejected(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script("gone.sh", "echo hi\n")
    run = launch(script)
    script.unlink()  # after the API's check, before the runner's
    start_host()
    wait_until(over(run), "the run over")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert RunEvent.objects.filter(run=run, kind=EventKind.REJECTED).exists()


def test_a_concurrency_key_runs_one_at_a_time(start_host: Callable[..., RunHost], make_script: Any) -> None:
    script = make_script("gated.sh", GATED)
    start_host()
    runs = [launch(script, concurrency_key="k", concurrency_limit=1) for _ in range(3)]

    wait_until(lambda: Run.objects.filter(status=RunStatus.RUNNING).count() == 1, "one running")
    time.sleep(0.5)
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 1
    (script.parent / "go").touch()
    wait_until(over(*runs), "all three over", timeout=WAIT)
    assert Run.objects.filter(pk__in=[r.pk for r in runs], status=RunStatus.COMPLETED).count() == 3


def test_stopping_the_host_ends_its_runs_as_worker_lost(
    start_host: Callable[..., RunHost], make_script: Any
) -> None:
    script = make_script("long.sh", 'echo "pid $$"\nsleep 60\n')
    host = start_host()
    run = launch(script)
    wait_until(lambda: "pid " in text(run), "the script started")
    pid = int(text(run).split()[1])

    host.stop()

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_summary is not None
    assert run.error_summary["reason"] == "worker_lost"
    assert "shut down" in run.error_summary["stderr_snippet"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert RunAttempt.objects.get(run=run).finished_at is not None


def test_a_heartbeat_writes_each_running_run_and_never_a_finished_one(tmp_path: Path) -> None:
    running = Run.objects.create(script_path=str(tmp_path / "a.sh"), status=RunStatus.RUNNING)
    over = Run.objects.create(
        script_path=str(tmp_path / "b.sh"), status=RunStatus.COMPLETED, output_lines=7, output_bytes=70
    )
    host = RunHost(max_runs=1)

    host.heartbeats(
        {
            str(running.pk): {
                "output_bytes": 12,
                "output_lines": 2,
                "output_truncated": False,
                "peak_rss": 4096,
            },
            str(over.pk): {"output_bytes": 99, "output_lines": 9, "output_truncated": True, "peak_rss": 1},
        },
        [],
    )

    running.refresh_from_db()
    over.refresh_from_db()
    assert (running.output_bytes, running.output_lines, running.peak_rss) == (12, 2, 4096)
    assert running.heartbeat_at is not None
    # The run ended between the sample and the write: what it recorded at its end stays.
    assert (over.output_bytes, over.output_lines, over.output_truncated, over.heartbeat_at) == (
        70,
        7,
        False,
        None,
    )


def test_a_draining_host_takes_no_more_runs_and_ends_once_its_runs_have(
    queued: None, make_script: Any
) -> None:
    script = make_script("gated.sh", GATED)
    host = RunHost()
    served = threading.Thread(target=host.serve_forever, args=(lambda: False,), daemon=True)
    served.start()
    try:
        first = launch(script)
        wait_until(
            lambda: Run.objects.filter(pk=first.pk, status=RunStatus.RUNNING).exists(), "first running"
        )

        host.drain()
        second = launch(script)
        time.sleep(1.0)  # several intake turns: a host that still took runs would claim it now

        assert Run.objects.get(pk=second.pk).status == RunStatus.QUEUED
        assert host.held == 1 and served.is_alive()
        (script.parent / "go").touch()
        served.join(WAIT)  # serve_forever returns by itself once nothing is held
        assert not served.is_alive()
        first.refresh_from_db()
        assert first.status == RunStatus.COMPLETED  # not killed: it went on to its end
        assert Run.objects.get(pk=second.pk).status == RunStatus.QUEUED  # left for another host
    finally:
        if served.is_alive():
            host.stop()
        runs_queue_module.runs_broker().purge_queue()


def test_heartbeats_go_ahead_of_a_backlog_of_database_work() -> None:
    from runs.host import DB_BATCH, DbThread

    db = DbThread(name="test-db")
    held, order = threading.Event(), []
    db.submit(lambda: held.wait(WAIT))  # the thread is busy while the backlog builds
    db.start()
    try:
        for i in range(DB_BATCH * 3):
            db.submit(partial(order.append, i))
        db.submit(lambda: order.append("beat"), first=True)
        held.set()
    finally:
        db.stop()
    # Not behind the whole backlog: in the next transaction at the latest.
    assert order.index("beat") <= DB_BATCH
    assert [x for x in order if x != "beat"] == list(range(DB_BATCH * 3))


def test_a_periodic_work_is_done_only_when_its_check_says_so() -> None:
    from runs.host import DbThread

    db = DbThread(name="test-db")
    wanted, done = threading.Event(), []
    db.every(0.01, lambda: done.append(time.monotonic()), when=wanted.is_set)
    db.start()
    try:
        time.sleep(0.2)
        assert done == [] and db.done == 0  # asked ~20 times, nothing done, no transaction
        wanted.set()
        wait_until(lambda: len(done) >= 3, "the periodic work, once wanted")
    finally:
        db.stop()


def test_an_idle_host_opens_no_transaction(start_host: Callable[..., RunHost], make_script: Any) -> None:
    """Its periodic checks (runs waiting between attempts) have nothing to do: before, they
    took SQLite's write lock every CONTROL_POLL_INTERVAL (20 times a second)."""
    host = start_host(max_runs=4)
    run = launch(make_script("idle_ok.sh", "echo ok\n"))
    wait_until(over(run), "the run's end")
    wait_until(lambda: not host.runs, "the host to let the run go")

    def quiet() -> bool:  # the run's last writes done: nothing more for 0.3 s
        before = host.db.done
        time.sleep(0.3)
        return host.db.done == before

    wait_until(quiet, "the host's database thread to go quiet", timeout=10)
    before = host.db.done
    time.sleep(0.5)
    assert host.db.done == before
