"""Draining a host for a deploy: SIGUSR1 to ``serve`` lets the running scripts end, takes
no new ones (they stay queued for another host or the next start), then stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.helpers import run_from_database, start_run, wait_for_output, wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration

GATED = """
echo "started"
while [ ! -e "$(dirname "$0")/go" ]; do sleep 0.05; done
echo "done"
"""
DRAIN_DEADLINE = 60.0  # serve gone after the last run ended: generous, never a speed test


def test_sigusr1_drains_the_host_then_stops_it(tmp_path: Path) -> None:
    stack = Stack(tmp_path, workers=1)
    stack.start()
    try:
        script = stack.script("gated.sh", GATED)
        with stack.client() as client:
            first = start_run(client, str(script))
            wait_for_output(client, first["id"], "started")
            assert stack.proc is not None
            stack.proc.send_signal(signal.SIGUSR1)
            # The runner's own line: serve's "Draining" comes before the runner is told.
            wait_until(lambda: "no more runs are taken" in stack.log(), what="the runner to start draining")
            second = start_run(client, str(script))  # the web goes on answering meanwhile
            time.sleep(1.5)  # intake turns in which a runner still taking runs would claim it
            assert run_from_database(stack, second["id"])["status"] == "queued"
            assert stack.proc.poll() is None  # a run is still going: not stopped yet

        (script.parent / "go").touch()
        stack.proc.wait(timeout=DRAIN_DEADLINE)
        assert stack.proc.returncode == 0
        log = stack.log()
        assert "Runner stopped after draining" in log and "Drained." in log
        done = run_from_database(stack, first["id"])
        assert (done["status"], done["exit_code"]) == ("completed", 0)  # ended by itself, not killed
        assert run_from_database(stack, second["id"])["status"] == "queued"  # left for later
    finally:
        left = stack.stop()
    assert not left, f"processes left behind: {left}"
