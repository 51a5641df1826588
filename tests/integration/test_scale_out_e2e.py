"""Scale-out: hosts that share only the database and Redis, and runners that share a queue.

- A web host (``serve --no-worker``) and a worker host (``serve --no-web``), each with
  its own data dir: runs launched, watched, read and stopped through the web host are
  executed by the worker host; its output reaches the web host through the database
  (``SCRIPTOPS_OUTPUT_STORE=database``), its wake-ups through Redis.
- A script uploaded to the web host runs on the worker host (from its database copy).
- Three runner processes take 1,000 runs queued at once: each runs exactly once.
- A worker host's runner killed with SIGKILL: its run ends ``worker_lost`` (seen live
  by the web host), its script is ended, the runner comes back and takes new runs.

The multi-host tests need PostgreSQL and Redis (the ``make test`` pass with
``DATABASE_URL`` and ``SCRIPTOPS_REDIS_URL``); the exactly-once test runs on both passes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.helpers import (
    RUN_DEADLINE,
    get_run,
    logs,
    run_from_database,
    start_run,
    wait_for_output,
    wait_for_status,
    wait_pid_gone,
    wait_until,
)
from tests.integration.test_live_e2e import is_completed, log_entries, open_ws, read_until, sse_frames
from tests.stack import Stack

pytestmark = pytest.mark.integration

SHARED_SERVICES = os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(
    os.environ.get("SCRIPTOPS_REDIS_URL")
)
needs_shared_services = pytest.mark.skipif(
    not SHARED_SERVICES,
    reason=(
        "hosts with separate data dirs share runs only through PostgreSQL (queue, output store) "
        "and Redis (wake-ups): runs on the PostgreSQL + Redis pass (DATABASE_URL=postgres://..., "
        "SCRIPTOPS_REDIS_URL)"
    ),
)

# Prints ten numbered lines, holding after the fifth until the flag file exists (so a
# watcher surely sees lines before the end, whatever the machine's load).
HELD = """
import os, sys, time
for i in range(1, 11):
    print(f"line {i:02d}", flush=True)
    if i == 5:
        end = time.monotonic() + 120
        while not os.path.exists(sys.argv[1]) and time.monotonic() < end:
            time.sleep(0.02)
"""
LINES = [f"line {i:02d}" for i in range(1, 11)]

# A script (a session leader) and its child, both long-lived.
LONG = """
sleep 300 &
echo "started $$ sleeper $!"
wait
"""


def runner_pid(stack: Stack) -> int | None:
    """The pid of the ``manage.py runner`` that ``serve`` supervises, if it is alive."""
    assert stack.proc is not None
    try:
        children = psutil.Process(stack.proc.pid).children()
    except psutil.Error:
        return None
    for child in children:
        try:
            if "runner" in child.cmdline()[2:3] and child.status() != psutil.STATUS_ZOMBIE:
                return child.pid
        except psutil.Error:
            continue
    return None


def shell(stack: Stack, code: str) -> Any:
    """Run ``code`` in ``manage.py shell`` in the stack's environment; its last line, as JSON."""
    out = stack.manage("shell", "-c", code).stdout.strip().splitlines()
    return json.loads(out[-1])


def started_pids(client: httpx.Client, run_id: str) -> tuple[int, int]:
    line = next(
        line for line in wait_for_output(client, run_id, "sleeper").splitlines() if line.startswith("started")
    )
    _, script_pid, _, sleeper_pid = line.split()
    return int(script_pid), int(sleeper_pid)


def files_of(data_dir: Path, run_id: str) -> list[Path]:
    return [path for path in data_dir.rglob("*") if run_id in str(path.relative_to(data_dir))]


# -- two hosts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not SHARED_SERVICES:
        pytest.skip(needs_shared_services.kwargs["reason"])
    host = Stack(tmp_path_factory.mktemp("web-host"), serve_args=("--no-worker",))
    try:
        host.start()
        yield host
    finally:
        left = host.stop()
        assert not left, f"processes left behind by the web host: {left}\n{host.log()}"


@pytest.fixture(scope="module")
def worker_host(web_host: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    host = Stack(
        tmp_path_factory.mktemp("worker-host"), share=web_host, serve_args=("--no-web",), max_runs=20
    )
    try:
        host.start()
        yield host
    finally:
        left = host.stop()
        assert not left, f"processes left behind by the worker host: {left}\n{host.log()}"


@pytest.fixture
def web(web_host: Stack, worker_host: Stack) -> Iterator[httpx.Client]:
    """The web host's API (the worker host is up)."""
    with web_host.client() as http:
        yield http
        listed = http.get("/api/runs", params={"status": ["queued", "running"], "page_size": 1000})
        for run in listed.json()["results"]:
            http.post(f"/api/runs/{run['id']}/{'kill' if run['status'] == 'running' else 'cancel'}")


@needs_shared_services
def test_a_run_launched_on_the_web_host_runs_on_the_worker_host_and_streams_back(
    web_host: Stack, worker_host: Stack, web: httpx.Client
) -> None:
    assert web_host.data_dir != worker_host.data_dir
    assert runner_pid(web_host) is None  # the web host runs nothing itself
    flag = web_host.base_dir / "flag-stream"
    run = start_run(web, str(web_host.script("held.py", textwrap.dedent(HELD))), args=[str(flag)])
    run_id = run["id"]

    with open_ws(web_host, f"/ws/runs/{run_id}/") as ws:
        first = log_entries(
            read_until(ws, lambda m: m["type"] == "log_entry" and m["data"]["content"] == "line 05")
        )
        # Live: the lines came through the web host while the run still runs elsewhere.
        assert get_run(web, run_id)["status"] == "running"
        row = run_from_database(web_host, run_id)
        assert row["host"] == socket.gethostname()
        assert row["worker_pid"] == runner_pid(worker_host)
        middle = logs(web, run_id)
        assert middle.text.splitlines() == LINES[:5]
        resume_at = int(middle.headers["X-Next-Offset"])
        flag.touch()
        rest = read_until(ws, is_completed)
    assert [e["content"] for e in first + log_entries(rest)] == LINES
    assert [e["offset"] for e in first + log_entries(rest)] == list(range(1, 11))
    assert rest[-1]["data"]["status"] == "completed" and rest[-1]["data"]["exit_code"] == 0

    # After the run, from the web host: whole, resumed by bytes, and resumed by line.
    done = wait_for_status(web_host, web, run_id)
    assert done["status"] == "completed" and done["output_lines"] == 10
    assert logs(web, run_id).text.splitlines() == LINES
    assert logs(web, run_id, offset=resume_at).text.splitlines() == LINES[5:]
    with web.stream("GET", f"/api/runs/{run_id}/stream", params={"after": 7}, timeout=60) as response:
        assert response.status_code == 200
        frames = list(sse_frames(response))
    assert [(f["offset"], f["content"]) for f in frames if f["type"] == "log_entry"] == [
        (8, "line 08"),
        (9, "line 09"),
        (10, "line 10"),
    ]
    assert frames[-1]["type"] == "exit" and frames[-1]["code"] == 0

    # The output lives on the worker host (its local copy) and in the database, never on
    # the web host.
    assert files_of(worker_host.data_dir, run_id)
    assert files_of(web_host.data_dir, run_id) == []


@needs_shared_services
def test_an_upload_to_the_web_host_runs_on_the_worker_host(
    web_host: Stack, worker_host: Stack, web: httpx.Client
) -> None:
    # The upload is stored in the web host's data dir; the worker host (another data dir)
    # writes its own copy from the database before it checks the plan.
    script = b"import sys\nprint('uploaded and run elsewhere', sys.argv[1:])\n"
    response = web.post(
        "/api/run/upload", files={"file": ("job.py", script)}, data={"args": json.dumps(["a", "b"])}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    script_path = Path(response.json()["script_path"])
    assert script_path.is_relative_to(web_host.data_dir.resolve())

    done = wait_for_status(web_host, web, run_id)
    assert done["status"] == "completed", done["error_summary"]
    assert logs(web, run_id).text == "uploaded and run elsewhere ['a', 'b']\n"
    copy = worker_host.data_dir / "uploads" / script_path.parent.name / "job.py"
    assert copy.read_bytes() == script
    assert copy.stat().st_mode & 0o777 == script_path.stat().st_mode & 0o777

    row = (
        "from runs.models import UploadedScript; "
        f"print(UploadedScript.objects.filter(path={str(script_path)!r}).count())"
    )
    assert shell(web_host, row) == 1
    assert web.delete(f"/api/runs/{run_id}").status_code == 204
    assert shell(web_host, row) == 0  # the last run of it is gone


@needs_shared_services
def test_a_stop_through_the_web_host_stops_the_run_on_the_worker_host(
    web_host: Stack, worker_host: Stack, web: httpx.Client
) -> None:
    run = start_run(web, str(web_host.script("long.sh", textwrap.dedent(LONG).lstrip("\n"))))
    script_pid, sleeper_pid = started_pids(web, run["id"])
    assert run_from_database(web_host, run["id"])["worker_pid"] == runner_pid(worker_host)

    response = web.post(f"/api/runs/{run['id']}/stop")
    assert response.status_code in (200, 202), response.text

    done = wait_for_status(web_host, web, run["id"])
    assert done["status"] == "cancelled", done
    wait_pid_gone(script_pid)
    wait_pid_gone(sleeper_pid)
    assert files_of(web_host.data_dir, run["id"]) == []


@needs_shared_services
def test_a_killed_runner_of_the_worker_host_loses_its_run_and_comes_back(
    web_host: Stack, worker_host: Stack, web: httpx.Client
) -> None:
    # What test_orphans_e2e adds nothing of: the web host (no reaper, no runner) learns
    # of the loss live, and the worker host's supervisor brings its runner back.
    run = start_run(web, str(web_host.script("long.sh", textwrap.dedent(LONG).lstrip("\n"))))
    script_pid, sleeper_pid = started_pids(web, run["id"])
    lost_runner = runner_pid(worker_host)
    assert lost_runner is not None
    assert run_from_database(web_host, run["id"])["worker_pid"] == lost_runner

    with open_ws(web_host, f"/ws/runs/{run['id']}/") as ws:
        read_until(ws, lambda m: m["type"] == "connection_established")
        os.kill(lost_runner, signal.SIGKILL)
        end = read_until(ws, is_completed, deadline=RUN_DEADLINE)
    assert end[-1]["data"]["status"] == "failed", end[-1]
    done = get_run(web, run["id"])
    assert done["status"] == "failed"
    assert done["error_summary"]["reason"] == "worker_lost"
    assert f"pid {lost_runner}" in done["error_summary"]["stderr_snippet"]
    wait_pid_gone(script_pid)
    wait_pid_gone(sleeper_pid)

    back = wait_until(
        lambda: (pid := runner_pid(worker_host)) != lost_runner and pid,
        timeout=RUN_DEADLINE,
        what="the supervisor to restart the runner",
    )
    after = start_run(web, str(web_host.script("after.sh", "echo still working\n")))
    assert wait_for_status(web_host, web, after["id"])["status"] == "completed"
    assert run_from_database(web_host, after["id"])["worker_pid"] == back


# -- exactly once ---------------------------------------------------------------------------

RUNS = 1000
RUNNERS = 3
PER_RUNNER = 100


def test_a_thousand_runs_queued_at_once_run_exactly_once_over_three_runners(
    new_stack: Callable[..., Stack],
) -> None:
    # The product's heartbeat timeout (30 s), not the stacks' 5 s: this test is about
    # delivery, and three runners finishing 1,000 runs while the rest of the suite runs
    # beside them have let a run's heartbeat age past 5 s (reaped: a flaky failure).
    stack = new_stack(workers=1, max_runs=PER_RUNNER, extra_env={"SCRIPTOPS_HEARTBEAT_TIMEOUT": "30"})
    extra = [
        stack.start_runner("--no-housekeeping", "--max-runs", str(PER_RUNNER)) for _ in range(RUNNERS - 1)
    ]
    runners = {runner_pid(stack), *(proc.pid for proc in extra)}
    assert None not in runners and len(runners) == RUNNERS
    ids_file = stack.base_dir / "ids.txt"
    # One short write with O_APPEND per run: lines from concurrent runs never interleave.
    path = stack.script("append.sh", f'echo "$SCRIPTOPS_RUN_ID" >> {ids_file}\n')

    queued = shell(
        stack,
        "import json; from runs.services import runs_enqueue_many; "
        f"runs = runs_enqueue_many(requests=[{{'script_path': {str(path)!r}}}] * {RUNS}, source='api'); "
        "print(json.dumps([str(run.pk) for run in runs]))",
    )
    assert len(set(queued)) == RUNS

    with stack.client() as client:

        def all_over() -> bool:
            page = client.get("/api/runs", params={"status": ["queued", "running"], "page_size": 1})
            return bool(page.status_code == 200 and page.json()["count"] == 0)

        wait_until(all_over, timeout=300, interval=1.0, what=f"{RUNS} runs to finish")

    rows = shell(
        stack,
        "import json; from runs.models import Run; "
        "rows = Run.objects.values_list('pk', 'status', 'worker_pid'); "
        "print(json.dumps([[str(pk), status, pid] for pk, status, pid in rows]))",
    )
    assert sorted(row[0] for row in rows) == sorted(queued)
    assert {row[1] for row in rows} == {"completed"}, [row for row in rows if row[1] != "completed"][:5]
    written = ids_file.read_text().splitlines()
    assert len(written) == RUNS and sorted(written) == sorted(queued)
    took_part = {row[2] for row in rows}
    assert took_part <= runners, (took_part, runners)
    assert len(took_part) > 1, f"only {took_part} took runs"
