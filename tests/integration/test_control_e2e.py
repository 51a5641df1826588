"""Stop, kill, cancel, pause and resume over HTTP, acting on real processes."""

from __future__ import annotations

import re
import textwrap
import time
import uuid

import httpx
import psutil
import pytest

from tests.integration.helpers import (
    event_kinds,
    get_run,
    logs,
    start_run,
    wait_for_output,
    wait_for_status,
    wait_pid_gone,
    wait_until,
)
from tests.stack import Stack

pytestmark = pytest.mark.integration

# Two workers: filling both with sleepers keeps the next run queued.
STACK_WORKERS = 2
STACK_MAX_RUNS = 2  # the runner's capacity: a third run waits in the queue
# Long enough for a script that traps TERM to clean up before the SIGKILL.
STACK_ENV = {"SCRIPTOPS_STOP_GRACE": "5"}

SLEEPER = """
echo "started $$"
sleep 300
"""

SETSID_GRANDCHILD = """
import os, sys, time

def grandchild():
    os.setsid()  # leaves the run's session and process group
    # One write per line: scripts run with PYTHONUNBUFFERED, where print() writes the
    # text and its newline separately and two processes' lines could interleave.
    os.write(1, f"grandchild {os.getpid()} session {os.getsid(0)}\\n".encode())
    time.sleep(300)

if os.fork() == 0:
    if os.fork() == 0:
        grandchild()
        os._exit(0)
    if sys.argv[1] == "orphan":
        os._exit(0)  # the grandchild is re-parented to the worker
    time.sleep(300)
    os._exit(0)
os.write(1, f"script {os.getpid()} session {os.getsid(0)}\\n".encode())
time.sleep(300)
"""

REPORT = re.compile(r"^(?P<who>grandchild|script) (?P<pid>\d+) session (?P<sid>\d+)$", re.MULTILINE)

# Double fork and setsid, stdio on /dev/null: a daemon that holds none of the run's pipes.
DAEMONISER = """
import os, time

r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(w, f"{os.getpid()}\\n".encode())
        time.sleep(300)
    os._exit(0)
os.close(w)
print("daemon", os.read(r, 100).decode().strip(), flush=True)
"""


def script(stack: Stack, name: str, body: str) -> str:
    return str(stack.script(name, textwrap.dedent(body).lstrip("\n")))


def test_stop_lets_a_script_that_traps_term_clean_up_and_ends_cancelled(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(
        stack,
        "trapper.sh",
        """
        trap 'echo "caught TERM, cleaning up"; exit 0' TERM
        echo ready
        while true; do sleep 0.1; done
        """,
    )
    run = start_run(client, path)
    wait_for_output(client, run["id"], "ready")

    response = client.post(f"/api/runs/{run['id']}/stop")

    assert response.status_code == 200, response.text
    done = wait_for_status(stack, client, run["id"])
    assert done["status"] == "cancelled", done
    assert done["run_status"] == "killed"
    assert "caught TERM, cleaning up" in logs(client, run["id"]).text
    assert "stop_requested" in event_kinds(client, run["id"])
    wait_pid_gone(done["pid"])


@pytest.mark.parametrize("middle", ["waiting", "orphan"])
def test_kill_also_ends_a_grandchild_that_called_setsid(
    stack: Stack, client: httpx.Client, middle: str
) -> None:
    path = script(stack, "escaper.py", SETSID_GRANDCHILD)
    run = start_run(client, path, args=[middle])
    wait_for_output(client, run["id"], "grandchild ")
    text = wait_for_output(client, run["id"], "script ")
    found = {m["who"]: m for m in REPORT.finditer(text)}
    assert set(found) == {"grandchild", "script"}, f"unexpected output: {text!r}"
    grandchild = int(found["grandchild"]["pid"])
    assert found["grandchild"]["sid"] != found["script"]["sid"], "the grandchild did not leave the session"
    assert psutil.pid_exists(grandchild)

    response = client.post(f"/api/runs/{run['id']}/kill")

    assert response.status_code == 200, response.text
    done = wait_for_status(stack, client, run["id"])
    assert done["status"] == "cancelled", done
    assert done["run_status"] == "killed"
    assert "kill_requested" in event_kinds(client, run["id"])
    wait_pid_gone(grandchild)
    wait_pid_gone(done["pid"])


def test_a_daemon_left_behind_by_a_finished_script_is_ended(stack: Stack, client: httpx.Client) -> None:
    # A long monitor interval: no resource sample gets a chance to see the daemon.
    run = start_run(client, script(stack, "daemoniser.py", DAEMONISER), monitor_interval=5)

    done = wait_for_status(stack, client, run["id"])

    assert done["status"] == "completed", done
    daemon = int(logs(client, run["id"]).text.split()[1])
    wait_pid_gone(daemon)


def test_a_cancelled_queued_run_never_starts(stack: Stack, client: httpx.Client) -> None:
    sleeper = script(stack, "blocker.sh", SLEEPER)
    blockers = [start_run(client, sleeper) for _ in range(STACK_MAX_RUNS)]
    for blocker in blockers:
        wait_for_output(client, blocker["id"], "started")
    marker = stack.scripts / f"never-{uuid.uuid4().hex}"
    waiting = start_run(client, script(stack, "toucher.sh", 'touch "$1"\necho touched\n'), args=[str(marker)])
    # The runner is full: the run stays queued (give it time to be wrongly picked up).
    time.sleep(1)
    assert get_run(client, waiting["id"])["status"] == "queued"
    assert client.post(f"/api/runs/{waiting['id']}/pause").status_code == 409

    response = client.post(f"/api/runs/{waiting['id']}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    for blocker in blockers:
        assert client.post(f"/api/runs/{blocker['id']}/kill").status_code == 200
    for blocker in blockers:
        assert wait_for_status(stack, client, blocker["id"])["status"] == "cancelled"
    # Once a run queued after it has completed, the workers have seen the cancelled one.
    probe = start_run(client, script(stack, "probe.sh", "echo probe\n"))
    assert wait_for_status(stack, client, probe["id"])["status"] == "completed"
    run = get_run(client, waiting["id"])
    assert run["status"] == "cancelled"
    assert run["started_at"] is None
    assert run["attempts"] == 0
    assert run["pid"] is None
    assert logs(client, waiting["id"]).text == ""
    assert "start" not in event_kinds(client, waiting["id"])
    assert not marker.exists()


def test_cancelling_a_running_run_stops_it(stack: Stack, client: httpx.Client) -> None:
    run = start_run(client, script(stack, "sleeper.sh", SLEEPER))
    wait_for_output(client, run["id"], "started")

    response = client.post(f"/api/runs/{run['id']}/cancel")

    assert response.status_code == 200, response.text
    done = wait_for_status(stack, client, run["id"])
    assert done["status"] == "cancelled", done
    assert done["run_status"] == "killed"
    wait_pid_gone(done["pid"])


def test_pause_freezes_the_output_and_resume_lets_the_run_complete(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(
        stack,
        "counter.py",
        """
        import time
        for i in range(1, 41):
            print(f"count {i:02d}", flush=True)
            time.sleep(0.1)
        """,
    )
    run = start_run(client, path)
    wait_for_output(client, run["id"], "count 03")

    assert client.post(f"/api/runs/{run['id']}/pause").status_code == 200

    paused = wait_until(lambda: (r := get_run(client, run["id"]))["paused"] and r, what="paused")
    assert paused["status"] == "running"
    assert psutil.Process(paused["pid"]).status() == psutil.STATUS_STOPPED
    time.sleep(0.5)  # a line read just before the SIGSTOP may still land
    before = logs(client, run["id"]).content
    time.sleep(2)
    assert logs(client, run["id"]).content == before, "output grew while paused"
    assert "count 40" not in before.decode()

    assert client.post(f"/api/runs/{run['id']}/resume").status_code == 200

    wait_until(lambda: not get_run(client, run["id"])["paused"], what="resumed")
    wait_until(lambda: len(logs(client, run["id"]).content) > len(before), what="output after resume")
    done = wait_for_status(stack, client, run["id"])
    assert done["status"] == "completed", done
    assert logs(client, run["id"]).text.splitlines() == [f"count {i:02d}" for i in range(1, 41)]
    kinds = event_kinds(client, run["id"])
    assert kinds.index("paused") < kinds.index("resumed")


def test_control_requests_on_a_finished_run_answer_409(stack: Stack, client: httpx.Client) -> None:
    run = start_run(client, script(stack, "quick.sh", "echo done\n"))
    assert wait_for_status(stack, client, run["id"])["status"] == "completed"

    for command in ("stop", "kill", "cancel", "pause", "resume"):
        response = client.post(f"/api/runs/{run['id']}/{command}")
        assert response.status_code == 409, (command, response.text)

    assert get_run(client, run["id"])["status"] == "completed"
