"""The script library over a real stack: register a root, scan it, read a script, run it
from the library; ``max_concurrent=1`` across two workers; scan progress on the feed.

Everything goes through HTTP and the websocket, as a client would; the scans and runs
happen in the django-q2 worker processes.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.helpers import RUN_DEADLINE, STEP_DEADLINE, TERMINAL, event_kinds, logs, wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration

# Two workers: a run limited to one at a time must wait although a worker is free.
STACK_WORKERS = 2

GREET = '''
"""Greet whoever is named."""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("name")
print(f"hello {parser.parse_args().name}")
'''

SLEEPER = """
echo "start $1"
sleep 1.5
echo "end $1"
"""


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def register(client: httpx.Client, stack: Stack, files: dict[str, str]) -> dict[str, Any]:
    """A fresh folder under the stack's allowed root, with ``files``, registered as a root."""
    folder = f"lib-{uuid.uuid4().hex[:8]}"
    for name, body in files.items():
        stack.script(f"{folder}/{name}", textwrap.dedent(body).lstrip("\n"))
    response = client.post(
        "/api/library/folder-roots", json={"name": folder, "path": str(stack.scripts / folder)}
    )
    assert response.status_code == 201, response.text
    root: dict[str, Any] = response.json()
    return root


def start_scan(client: httpx.Client, root: dict[str, Any]) -> str:
    response = client.post(f"/api/library/folder-roots/{root['id']}/scan")
    assert response.status_code == 202, response.text
    assert response.json()["joined"] is False
    scan_id: str = response.json()["scan_id"]
    return scan_id


def wait_for_scan(client: httpx.Client, root: dict[str, Any], scan_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = client.get(f"/api/library/folder-roots/{root['id']}/scan/{scan_id}")
        assert response.status_code == 200, response.text
        scan: dict[str, Any] = response.json()
        return scan if scan["state"] in ("completed", "failed") else None

    scan = wait_until(finished, timeout=STEP_DEADLINE, what=f"scan {scan_id} to finish")
    assert scan["state"] == "completed", scan
    return scan


def script_named(client: httpx.Client, root: dict[str, Any], name: str) -> dict[str, Any]:
    listed = client.get("/api/library/scripts", params={"root_id": root["id"], "search": name}).json()
    matches = [s for s in listed["results"] if s["name"] == name]
    assert len(matches) == 1, listed
    return matches[0]


def test_register_scan_read_and_run_a_library_script(stack: Stack, client: httpx.Client) -> None:
    root = register(client, stack, {"greet.py": GREET, "tools/other.sh": "echo other\n"})

    scan = wait_for_scan(client, root, start_scan(client, root))

    assert (scan["files_seen"], scan["files_added"], scan["error_count"]) == (2, 2, 0)
    assert scan["progress"] == 100 and scan["finished_at"]
    greet = script_named(client, root, "greet.py")
    assert greet["language"] == "python" and greet["description"] == "Greet whoever is named."
    assert greet["parameters_count"] == 1
    content = client.get(f"/api/library/scripts/{greet['id']}/content")
    assert content.status_code == 200 and content.headers["content-type"] == "text/plain; charset=utf-8"
    assert content.text == textwrap.dedent(GREET).lstrip("\n")

    response = client.post(f"/api/library/scripts/{greet['id']}/run", json={"args": ["library"]})

    assert response.status_code == 202, response.text
    run = stack.wait_for_run(client, response.json()["id"], timeout=RUN_DEADLINE)
    assert run["status"] == "completed" and run["exit_code"] == 0, run
    assert run["script"] == greet["id"] and run["source"] == "library"
    assert logs(client, run["id"]).text == "hello library\n"
    runs = client.get(f"/api/library/scripts/{greet['id']}/runs").json()
    assert [r["id"] for r in runs["results"]] == [run["id"]]
    detail = client.get(f"/api/library/scripts/{greet['id']}").json()
    assert detail["run_count"] == 1 and detail["last_run"]["status"] == "completed"
    root_now = client.get(f"/api/library/folder-roots/{root['id']}").json()
    assert root_now["script_count"] == 2 and root_now["last_scan"]["id"] == scan["id"]


def test_max_concurrent_one_holds_across_two_workers_and_runs_start_in_order(
    stack: Stack, client: httpx.Client
) -> None:
    root = register(client, stack, {"sleeper.sh": SLEEPER})
    wait_for_scan(client, root, start_scan(client, root))
    sleeper = script_named(client, root, "sleeper.sh")
    patched = client.patch(f"/api/library/scripts/{sleeper['id']}", json={"max_concurrent": 1})
    assert patched.status_code == 200 and patched.json()["max_concurrent"] == 1

    ids = []
    for n in range(3):
        response = client.post(f"/api/library/scripts/{sleeper['id']}/run", json={"args": [str(n)]})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])

    most_running = 0
    reasons: dict[str, str] = {}
    deadline = time.monotonic() + RUN_DEADLINE * 2
    while True:
        listed = client.get("/api/runs", params={"script": sleeper["id"], "page_size": 100}).json()
        rows = {r["id"]: r for r in listed["results"]}
        assert set(rows) == set(ids), rows
        most_running = max(most_running, sum(r["status"] == "running" for r in rows.values()))
        for run_id, row in rows.items():
            if row["status"] == "queued" and row["wait_reason"]:
                reasons[run_id] = row["wait_reason"]
        if all(r["status"] in TERMINAL for r in rows.values()):
            break
        assert time.monotonic() < deadline, f"runs did not finish: {rows}"
        time.sleep(0.05)

    runs = [rows[i] for i in ids]
    assert [r["status"] for r in runs] == ["completed"] * 3, runs
    assert most_running == 1
    # The second and third waited, with the reason on the run, although a worker was free.
    assert set(reasons) == set(ids[1:]), reasons
    assert all("max 1" in reason for reason in reasons.values()), reasons
    for later in ids[1:]:
        assert "waiting" in event_kinds(client, later)
    # They started in creation order, each after the one before had ended.
    for before, after in itertools.pairwise(runs):
        assert parse(after["started_at"]) >= parse(before["finished_at"]), (before, after)
    assert [logs(client, i).text for i in ids] == [f"start {n}\nend {n}\n" for n in range(3)]


def test_the_feed_reports_scan_progress(stack: Stack, client: httpx.Client) -> None:
    root = register(client, stack, {f"job{i}.py": f"print({i})\n" for i in range(20)})
    url = f"ws://127.0.0.1:{stack.port}/ws/runs/?api_key={stack.key}"
    seen: list[dict[str, Any]] = []
    with connect(url, open_timeout=30, close_timeout=5, max_size=None) as ws:
        first = json.loads(ws.recv(timeout=30))
        assert first["type"] == "connection_established"
        scan_id = start_scan(client, root)
        end = time.monotonic() + STEP_DEADLINE
        while not (seen and seen[-1]["state"] == "completed"):
            left = end - time.monotonic()
            assert left > 0, f"no completed scan_progress for {scan_id}; got {seen}"
            try:
                message = json.loads(ws.recv(timeout=left))
            except (TimeoutError, ConnectionClosed) as exc:
                raise AssertionError(f"no completed scan_progress for {scan_id}; got {seen}") from exc
            assert set(message) == {"type", "data", "timestamp"}, message
            if message["type"] == "scan_progress" and message["data"]["id"] == scan_id:
                seen.append(message["data"])

    final = seen[-1]
    assert final["root_id"] == root["id"] and final["files_added"] == 20 and final["files_total"] == 20
    assert final["finished_at"] and final["phase"] == "done"
    assert all(s["state"] in ("queued", "running", "completed") for s in seen)
