"""Many requests at once: every run is accepted and finishes, and nothing answers 500.

Run against the configured database: SQLite by default (where "database is locked"
is the failure to look for), PostgreSQL when ``DATABASE_URL`` says so.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.helpers import RUN_DEADLINE, TERMINAL, get_run, logs, wait_for_status, wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration

# The default number of workers.
STACK_WORKERS = 4
BURST = 40
CHAOS_RUNS = 12
CHAOS_SECONDS = 8.0
CONTROLS = ("stop", "kill", "cancel", "pause", "resume")
# Weighted: enough stops and kills to end runs mid-way, mostly pauses, resumes and reads.
ACTIONS = ["stop", "kill", "cancel"] + ["pause", "resume", "get", "logs"] * 4 + ["events", "list"] * 2


def server_errors(stack: Stack) -> list[str]:
    text = stack.log_path.read_text(errors="replace")
    return [
        line
        for line in text.splitlines()
        if "database is locked" in line or "Traceback" in line or '" 500 ' in line
    ]


def test_forty_concurrent_requests_are_all_accepted_and_completed(stack: Stack) -> None:
    path = str(stack.script("burst.sh", 'echo "run $1"\nsleep 0.2\n'))

    def post(number: int) -> httpx.Response:
        with stack.client() as http:
            return http.post("/api/run", json={"script_path": path, "args": [str(number)]})

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        responses = list(pool.map(post, range(BURST)))

    assert [r.status_code for r in responses] == [202] * BURST, [r.text for r in responses if r.is_error]
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == BURST
    with stack.client() as client:
        for number, run_id in enumerate(ids):
            run = wait_for_status(stack, client, run_id, timeout=RUN_DEADLINE * 2)
            assert run["status"] == "completed", run
            assert run["attempts"] == 1
            assert logs(client, run_id).text == f"run {number}\n"
    assert server_errors(stack) == []


def test_control_requests_and_polling_while_runs_finish_never_fail(stack: Stack) -> None:
    path = str(stack.script("chatty.sh", 'for i in $(seq 1 "$1"); do echo "line $i"; sleep 0.1; done\n'))
    rng = random.Random(20240611)
    with stack.client() as client:
        ids = []
        for _ in range(CHAOS_RUNS):
            response = client.post("/api/run", json={"script_path": path, "args": [str(rng.randint(3, 30))]})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

    codes: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + CHAOS_SECONDS

    def hammer(seed: int) -> None:
        local = random.Random(seed)
        with stack.client() as http:
            while time.monotonic() < stop_at:
                run_id = local.choice(ids)
                action = local.choice(ACTIONS)
                response: Any
                if action in CONTROLS:
                    response = http.post(f"/api/runs/{run_id}/{action}")
                elif action == "get":
                    response = http.get(f"/api/runs/{run_id}")
                elif action == "list":
                    response = http.get("/api/runs", params={"page_size": 100})
                else:
                    response = http.get(f"/api/runs/{run_id}/{action}")
                with lock:
                    codes[(action, response.status_code)] += 1
                time.sleep(local.uniform(0, 0.05))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(hammer, range(8)))

    with stack.client() as client:
        # Paused runs would wait for a resume for ever: end what is left.
        for run_id in ids:
            if get_run(client, run_id)["status"] not in TERMINAL:
                assert client.post(f"/api/runs/{run_id}/kill").status_code in (200, 409)
        for run_id in ids:
            wait_for_status(stack, client, run_id)
        wait_until(lambda: all(not get_run(client, i)["paused"] for i in ids), what="no run left paused")

    unexpected = {
        key: count
        for key, count in codes.items()
        if key[1] not in ((200, 409) if key[0] in CONTROLS else (200,))
    }
    assert unexpected == {}, codes
    assert sum(codes.values()) > 50, codes
    assert server_errors(stack) == []
