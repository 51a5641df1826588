"""Helpers for the integration tests: posting runs, polling with deadlines, process checks.

Every wait polls against a generous deadline and never asserts on speed: the suite
shares a small machine with other test processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import psutil

from tests.stack import Stack

T = TypeVar("T")

# Deadlines, in seconds. Generous: reaching them means a hang, not a slow machine.
RUN_DEADLINE = 90.0
STEP_DEADLINE = 45.0
TERMINAL = ("completed", "failed", "cancelled")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float = STEP_DEADLINE, interval: float = 0.1, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; return that. Fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or probe}")
        time.sleep(interval)


def start_run(client: httpx.Client, script: str, **fields: Any) -> dict[str, Any]:
    """POST /api/run; the answer must be 202 with a queued RunRecord."""
    response = client.post("/api/run", json={"script_path": script, **fields})
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] == "queued", run
    return run


def get_run(client: httpx.Client, run_id: str) -> dict[str, Any]:
    response = client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_for_status(
    stack: Stack,
    client: httpx.Client,
    run_id: str,
    statuses: tuple[str, ...] = TERMINAL,
    *,
    timeout: float = RUN_DEADLINE,
) -> dict[str, Any]:
    return stack.wait_for_run(client, run_id, statuses=statuses, timeout=timeout)


def wait_for_output(client: httpx.Client, run_id: str, needle: str, *, timeout: float = STEP_DEADLINE) -> str:
    """Poll the run's logs until ``needle`` appears; return the logs."""

    def probe() -> str | None:
        text = client.get(f"/api/runs/{run_id}/logs").text
        return text if needle in text else None

    return wait_until(probe, timeout=timeout, what=f"{needle!r} in the logs of {run_id}")


def logs(client: httpx.Client, run_id: str, **params: Any) -> httpx.Response:
    response = client.get(f"/api/runs/{run_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return response


def event_kinds(client: httpx.Client, run_id: str) -> list[str]:
    response = client.get(f"/api/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return [event["kind"] for event in response.json()]


def pid_gone(pid: int) -> bool:
    """True once ``pid`` has exited; a zombie waiting for its parent counts as exited."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_pid_gone(pid: int, *, timeout: float = STEP_DEADLINE) -> None:
    wait_until(lambda: pid_gone(pid), timeout=timeout, what=f"pid {pid} to exit")


def run_from_database(stack: Stack, run_id: str) -> dict[str, Any]:
    """Read a run straight from the stack's database with a fresh ``manage.py shell``.

    For what the API does not show (``worker_pid``) or when no server is running.
    """
    code = (
        "import json; from runs.models import Run; "
        f"print(json.dumps(Run.objects.filter(pk={run_id!r}).values().first(), default=str))"
    )
    out = stack.manage("shell", "-c", code).stdout.strip().splitlines()
    row: dict[str, Any] = json.loads(out[-1])
    return row
