"""Runs whose worker dies: the reaper fails them and ends their scripts; nothing is stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.integration.helpers import (
    event_kinds,
    run_from_database,
    start_run,
    wait_for_output,
    wait_for_status,
    wait_pid_gone,
    wait_until,
)
from tests.stack import Stack

pytestmark = pytest.mark.integration

STACK_WORKERS = 2

# What a lost worker leaves behind: a script (a session leader) and its child.
LONG_SCRIPT = textwrap.dedent(
    """
    sleep 300 &
    echo "started $$ sleeper $!"
    wait
    """
).lstrip("\n")

# How long the reaper may take to notice a lost worker: generous, never a speed test.
REAP_DEADLINE = 60.0
# serve stops its children with SIGTERM, then SIGKILL after 10 s, then reaps.
SERVE_STOP_DEADLINE = 30.0


def started_pids(client: httpx.Client, run_id: str) -> tuple[int, int]:
    """The pids the script printed: its own and its child's."""
    line = next(
        line for line in wait_for_output(client, run_id, "sleeper").splitlines() if line.startswith("started")
    )
    _, script_pid, _, sleeper_pid = line.split()
    return int(script_pid), int(sleeper_pid)


def test_a_run_whose_worker_is_killed_fails_as_worker_lost_and_its_script_is_ended(
    stack: Stack, client: httpx.Client
) -> None:
    run = start_run(client, str(stack.script("long.sh", LONG_SCRIPT)))
    script_pid, sleeper_pid = started_pids(client, run["id"])
    worker_pid = run_from_database(stack, run["id"])["worker_pid"]
    assert worker_pid and psutil.Process(script_pid).ppid() == worker_pid

    os.kill(worker_pid, signal.SIGKILL)

    done = wait_for_status(stack, client, run["id"], timeout=REAP_DEADLINE)
    assert done["status"] == "failed", done
    summary = done["error_summary"]
    assert summary["reason"] == "worker_lost"
    assert f"pid {worker_pid}" in summary["stderr_snippet"]
    assert summary["correlation_id"] == run["correlation_id"]
    assert "orphaned" in event_kinds(client, run["id"])
    wait_pid_gone(script_pid, timeout=REAP_DEADLINE)
    wait_pid_gone(sleeper_pid, timeout=REAP_DEADLINE)

    # The cluster replaced its worker and keeps working.
    after = start_run(client, str(stack.script("after.sh", "echo still working\n")))
    assert wait_for_status(stack, client, after["id"])["status"] == "completed"


def test_sigterm_to_serve_stops_everything_and_fails_the_running_run(
    new_stack: Callable[..., Stack],
) -> None:
    stack = new_stack(workers=1)
    with stack.client() as client:
        run = start_run(client, str(stack.script("long.sh", LONG_SCRIPT)))
        script_pid, sleeper_pid = started_pids(client, run["id"])
    worker_pid = run_from_database(stack, run["id"])["worker_pid"]
    assert stack.proc is not None

    stack.proc.send_signal(signal.SIGTERM)

    try:
        stack.proc.wait(timeout=SERVE_STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {SERVE_STOP_DEADLINE:g}s after SIGTERM")
    for pid in (worker_pid, script_pid, sleeper_pid):
        wait_pid_gone(pid, timeout=10)
    wait_until(lambda: not stack.leftovers(), timeout=10, what="every process of the stack to exit")
    row = run_from_database(stack, run["id"])
    assert row["status"] == "failed", row
    assert row["error_summary"]["reason"] == "worker_lost"
    assert row["finished_at"]
