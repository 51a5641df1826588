"""A run's whole path over HTTP: queue, execute in a real worker, record, output, retry."""

from __future__ import annotations

import textwrap
import time
import uuid

import httpx
import pytest

from tests.integration.helpers import (
    RUN_DEADLINE,
    TERMINAL,
    event_kinds,
    get_run,
    logs,
    start_run,
    wait_for_status,
)
from tests.stack import Stack

pytestmark = pytest.mark.integration

STACK_WORKERS = 2


def script(stack: Stack, name: str, body: str) -> str:
    return str(stack.script(name, textwrap.dedent(body).lstrip("\n")))


def test_a_run_is_queued_then_completes_with_its_record_logs_and_events(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(
        stack,
        "hello.sh",
        """
        echo "hello from $SCRIPTOPS_RUN_ID"
        echo "a warning" >&2
        """,
    )
    queued = start_run(client, path)

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "completed", run
    assert run["run_status"] == "success"
    assert run["exit_code"] == 0
    assert run["attempts"] == 1
    assert run["correlation_id"] == queued["correlation_id"]
    uuid.UUID(run["correlation_id"])
    assert run["created_by"] == "it-admin"
    assert run["duration"] is not None and run["duration"] >= 0
    # A two-line script may end before its first resource sample: then peak_rss is
    # unknown (null), never a borrowed figure such as the worker's own size.
    assert run["peak_rss"] is None or 0 < run["peak_rss"] < 50 * 1024 * 1024
    assert run["started_at"] and run["finished_at"]
    assert run["error_summary"] is None
    assert run["output_lines"] == 2
    text = logs(client, run["id"]).text
    assert text.splitlines() == [f"hello from {run['id']}", "a warning"]
    assert logs(client, run["id"], stream="stdout").text == f"hello from {run['id']}\n"
    assert logs(client, run["id"], stream="stderr").text == "a warning\n"
    assert event_kinds(client, run["id"]) == ["queued", "start", "success"]


def test_a_failing_script_fails_with_its_exit_code_and_stderr_in_the_summary(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(
        stack,
        "broken.sh",
        """
        echo "working on it"
        echo "fatal: the disk is full" >&2
        exit 3
        """,
    )
    queued = start_run(client, path)

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "failed", run
    assert run["run_status"] == "failed"
    assert run["exit_code"] == 3
    summary = run["error_summary"]
    assert summary["exit_code"] == 3
    assert "fatal: the disk is full" in summary["stderr_snippet"]
    assert summary["status"] == "failed"
    assert summary["correlation_id"] == run["correlation_id"] == queued["correlation_id"]
    assert event_kinds(client, run["id"])[-1] == "failure"


def test_a_script_running_past_its_timeout_fails_with_timeout(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "sleepy.sh", "echo going to sleep\nsleep 60\n")
    queued = start_run(client, path, timeout=1)

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "failed", run
    assert run["run_status"] == "timeout"
    assert run["error_summary"]["status"] == "timeout"
    assert "timeout" in event_kinds(client, run["id"])


def test_a_run_that_fails_twice_is_retried_until_it_succeeds(stack: Stack, client: httpx.Client) -> None:
    counter = stack.scripts / f"counter-{uuid.uuid4().hex}"
    path = script(
        stack,
        "flaky.sh",
        """
        n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
        echo "$n" > "$1"
        echo "attempt $n"
        if [ "$n" -lt 3 ]; then echo "failure $n" >&2; exit 1; fi
        echo "finally"
        """,
    )
    queued = start_run(
        client,
        path,
        args=[str(counter)],
        retry_on_failure=True,
        retry_max_attempts=5,
        retry_strategy="linear",
        retry_initial_delay=0.1,
        retry_max_delay=1,
    )

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "completed", run
    assert run["attempts"] == 3
    assert run["exit_code"] == 0
    attempts = client.get(f"/api/runs/{run['id']}/attempts").json()
    assert [a["run_status"] for a in attempts] == ["failed", "failed", "success"]
    assert event_kinds(client, run["id"]).count("retry") == 2
    text = logs(client, run["id"], stream="stdout").text
    assert text.splitlines() == ["attempt 1", "attempt 2", "attempt 3", "finally"]


def test_ten_thousand_lines_are_all_kept_in_order(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "many.py", 'for i in range(1, 10001):\n    print(f"line {i:05d}")\n')
    expected = [f"line {i:05d}" for i in range(1, 10001)]
    queued = start_run(client, path)

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "completed", run
    assert run["output_lines"] == 10_000
    full = logs(client, run["id"])
    assert full.text.splitlines() == expected
    assert int(full.headers["X-Next-Offset"]) == len(full.content)
    assert logs(client, run["id"], tail=10_000).text.splitlines() == expected
    tail = logs(client, run["id"], tail=3)
    assert tail.text.splitlines() == expected[-3:]
    # A tail tells where to resume polling: the end of the output.
    assert int(tail.headers["X-Next-Offset"]) == len(full.content)


def test_polling_logs_by_offset_while_the_run_is_live_loses_and_repeats_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(
        stack,
        "ticker.py",
        """
        import time
        for i in range(1, 3001):
            print(f"tick {i:04d} " + "x" * (i % 37))
            if i % 100 == 0:
                time.sleep(0.1)
        """,
    )
    expected = "".join(f"tick {i:04d} " + "x" * (i % 37) + "\n" for i in range(1, 3001))
    queued = start_run(client, path)

    received = b""
    offset = 0
    live_chunks = 0
    deadline = time.monotonic() + RUN_DEADLINE
    while True:
        # A small limit: chunks end mid-line, so the offsets must be exact.
        response = logs(client, queued["id"], offset=offset, limit=4000)
        received += response.content
        offset = int(response.headers["X-Next-Offset"])
        assert offset == len(received)
        status = response.headers["X-Run-Status"]
        if status == "running" and response.content:
            live_chunks += 1
        if status in TERMINAL and not response.content:
            break
        assert time.monotonic() < deadline, f"run still {status}"
        if not response.content:
            time.sleep(0.05)

    assert live_chunks >= 2, "the run ended before the output could be polled live"
    assert received.decode() == expected
    assert logs(client, queued["id"], offset=offset).content == b""


def test_an_uploaded_script_is_queued_and_runs(stack: Stack, client: httpx.Client) -> None:
    response = client.post(
        "/api/run/upload",
        files={"file": ("uploaded.sh", b'echo "uploaded with $1"\n', "text/x-shellscript")},
        data={"args": '["arg-one"]'},
    )
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["source"] == "upload"

    run = wait_for_status(stack, client, queued["id"])

    assert run["status"] == "completed", run
    assert logs(client, run["id"]).text == "uploaded with arg-one\n"


def test_a_dry_run_returns_the_plan_and_starts_nothing(stack: Stack, client: httpx.Client) -> None:
    marker = stack.scripts / f"dry-run-marker-{uuid.uuid4().hex}"
    path = script(stack, "dry.sh", 'touch "$1"\n')

    response = client.post("/api/run", json={"script_path": path, "args": [str(marker)], "dry_run": True})

    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["dry_run"] is True
    assert plan["command"][-2:] == [path, str(marker)]
    assert "id" not in plan
    # Let the queue drain: a run queued after the dry run has finished.
    after = start_run(client, script(stack, "after-dry.sh", "echo after\n"))
    assert wait_for_status(stack, client, after["id"])["status"] == "completed"
    assert not marker.exists()
    runs = client.get("/api/runs", params={"page_size": 1000}).json()["results"]
    assert path not in {run["script_path"] for run in runs}


def test_restarting_a_finished_run_queues_a_new_one_that_completes(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(stack, "again.sh", 'echo "run with $1"\n')
    first = wait_for_status(stack, client, start_run(client, path, args=["same-args"])["id"])
    assert first["status"] == "completed", first

    response = client.post(f"/api/runs/{first['id']}/restart")

    assert response.status_code == 202, response.text
    restarted = response.json()
    assert restarted["id"] != first["id"]
    assert restarted["restarted_from"] == first["id"]
    assert restarted["source"] == "restart"
    run = wait_for_status(stack, client, restarted["id"])
    assert run["status"] == "completed", run
    assert run["restarted_from"] == first["id"]
    assert logs(client, run["id"]).text == "run with same-args\n"
    assert get_run(client, first["id"])["status"] == "completed"
