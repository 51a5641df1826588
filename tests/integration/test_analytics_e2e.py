"""Analytics on a real stack: a script's own metrics recorded, a performance gate failing a
run that exited 0, its alert delivered by the real task cluster to a local HTTP receiver,
the JUnit report, and the history, trend and export endpoints over what was recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.integration.helpers import start_run, wait_for_status, wait_until
from tests.stack import Stack, free_port

pytestmark = pytest.mark.integration

RECEIVER_PORT = free_port()
RECEIVER = f"http://127.0.0.1:{RECEIVER_PORT}"
STACK_ENV = {"SCRIPTOPS_ALERT_URL_ALLOWLIST": f"{RECEIVER}/hooks/"}

REPORT = """import sys
print("exporting rows")
print("::metric rows=1500")
print("::metric error_rate=0.25")
print("::metric bad name=1")
"""


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", RECEIVER_PORT), Handler)
        self.received: list[tuple[str, dict[str, Any]]] = []


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.path, json.loads(body or b"{}")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_gate_fails_a_run_that_exited_0_and_its_alert_is_delivered(
    stack: Stack, client: httpx.Client, receiver: Receiver
) -> None:
    script = stack.script("report.py", REPORT)
    run = start_run(
        client,
        str(script),
        performance_gates=[{"metric": "error_rate", "max_value": 0.1}, {"metric": "rows", "min_value": 1000}],
        alerts=[
            {
                "name": "export broken",
                "condition": "status == 'failed' and rows > 0",
                "channels": [f"webhook:{RECEIVER}/hooks/ops"],
                "severity": "critical",
            }
        ],
        junit_output=True,
    )
    done = wait_for_status(stack, client, run["id"])
    assert (done["status"], done["exit_code"]) == ("failed", 0), done
    block = done["analytics"]
    assert block["metrics"]["rows"] == 1500 and block["metrics"]["error_rate"] == 0.25
    assert "bad name" not in json.dumps(block["metrics"])  # an invalid name is not recorded
    verdicts = {g["metric"]: g["passed"] for g in block["gates"]}
    assert verdicts == {"error_rate": False, "rows": True}

    # The alert: delivered once by the stack's task cluster, with the run named in it.
    wait_until(lambda: receiver.received, what="the alert to reach the receiver")
    path, payload = receiver.received[0]
    assert path == "/hooks/ops" and run["id"] in json.dumps(payload)

    def delivered() -> dict[str, Any] | None:
        alerts = client.get(f"/api/runs/{run['id']}").json()["analytics"]["alerts"]
        return alerts[0] if alerts and alerts[0]["status"] == "sent" else None

    assert wait_until(delivered, what="the delivery to be recorded as sent")["response_code"] == 204

    junit = client.get(f"/api/runs/{run['id']}/junit")
    assert junit.status_code == 200 and "<failure" in junit.text and "error_rate" in junit.text

    history = client.get(
        "/api/analytics/history", params={"script_path": done["script_path"], "metric": "rows"}
    ).json()
    assert [(r["run_id"], r["value"], r["status"]) for r in history["results"]] == [
        (run["id"], 1500.0, "failed")
    ]


def test_trends_and_export_cover_the_recorded_runs(stack: Stack, client: httpx.Client) -> None:
    script = stack.script("steady.sh", 'echo "::metric items=$1"\n')
    # One after the other: a trend follows the order the values were recorded in, and runs
    # started together finish (and are recorded) in any order.
    for items in (10, 20, 30):
        run_id = start_run(client, str(script), args=[str(items)])["id"]
        assert wait_for_status(stack, client, run_id)["status"] == "completed"
    params = {"script_path": str(script), "metric": "items", "days": 1}
    trend = client.get("/api/analytics/trends", params=params).json()
    assert trend["n"] == 3 and trend["direction"] == "increasing"
    with client.stream("GET", "/api/analytics/export", params={**params, "format": "csv"}) as resp:
        assert resp.status_code == 200
        text = resp.read().decode()
    rows = text.strip().splitlines()
    assert rows[0].startswith("recorded_at,") and len(rows) == 4
    assert sorted(float(r.rsplit(",", 1)[1]) for r in rows[1:]) == [10.0, 20.0, 30.0]


def test_an_alert_to_a_url_off_the_allowlist_is_refused_before_anything_runs(
    stack: Stack, client: httpx.Client
) -> None:
    script = stack.script("ok.sh", "echo ok\n")
    response = client.post(
        "/api/run",
        json={
            "script_path": str(script),
            "alerts": [{"name": "x", "channels": ["webhook:http://169.254.169.254/latest"]}],
        },
    )
    assert response.status_code == 400, response.text
    assert "alerts" in response.json()["details"]
    assert client.get("/api/runs", params={"script_path": str(script)}).json()["count"] == 0
