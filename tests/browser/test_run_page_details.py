"""The run page, round two: the log viewer's server-side stream filter, "first error",
per-line times and the jump-to-latest pill on a long live log; retried runs' wall time;
the output counter; "Run again…"; the analytics card appearing when a live run ends."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import RUN_TIMEOUT, no_page_errors, start_run, write_script
from tests.integration.helpers import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.browser

# A long log whose trouble is far above the tail: an ERROR line on stdout at line 11,
# one stderr line at line 51, then 20,000 lines of stdout.
BURIED = """
import sys
for i in range(1, 11):
    print(f"starting {i}")
print("ERROR: the disk is full")
for i in range(1, 40):
    print(f"retrying {i}")
print("boom on stderr", file=sys.stderr, flush=True)
sys.stdout.flush()
for i in range(1, 20001):
    print(f"row {i:05d}")
"""

# Prints a numbered line every 20 ms until its "stop" flag exists.
CHATTY = r"""
import pathlib, sys, time
flag = pathlib.Path(__file__).with_name("stop-" + sys.argv[1])
i = 0
while not flag.exists() and i < 30000:
    i += 1
    print(f"tick {i:05d}", flush=True)
    time.sleep(0.02)
"""

FLAKY = """
import sys
print("attempt failing")
sys.exit(3)
"""

WAITS = r"""
import pathlib, sys, time
flag = pathlib.Path(__file__).with_name("go-" + sys.argv[1])
print("waiting", flush=True)
while not flag.exists():
    time.sleep(0.05)
print("done", flush=True)
"""


LAST_SHOWN = (
    "() => Math.max(...[...document.querySelectorAll('#term-lines .tl')].map((r) => Number(r.dataset.n)))"
)
AT_BOTTOM = (
    "() => { const t = document.querySelector('#term');"
    " return t.scrollTop + t.clientHeight >= t.scrollHeight - 30; }"
)


def finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    wait_until(
        lambda: api.get(f"/api/runs/{run_id}").json()["status"] not in ("queued", "running"),
        timeout=RUN_TIMEOUT / 1000,
    )
    run: dict[str, Any] = api.get(f"/api/runs/{run_id}").json()
    return run


def test_the_stream_filter_is_applied_by_the_server_and_first_error_jumps_far_back(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "buried.py", BURIED)
    run = finished(api, start_run(api, "buried.py")["id"])
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    terminal = page.locator("[data-testid=terminal]")
    expect(terminal).to_contain_text("row 20000")
    expect(terminal).not_to_contain_text("boom on stderr")  # far above the loaded tail

    # stderr only: the server returns the one stderr line, 20,000 lines above the tail.
    page.locator("[data-stream-toggle=stdout]").click()
    page.locator("[data-stream-toggle=system]").click()
    expect(terminal.locator(".tl")).to_have_count(1)
    expect(terminal.locator(".tl.s-stderr")).to_have_text(re.compile("boom on stderr"))
    expect(page.locator("[data-stream-toggle=stderr]")).to_have_attribute("aria-pressed", "true")

    # First error: the ERROR line on stdout (line 11) comes before the stderr line.
    page.get_by_test_id("first-error").click()
    row = terminal.locator(".tl.first-error")
    expect(row).to_have_attribute("data-n", "11")
    expect(row).to_contain_text("ERROR: the disk is full")
    expect(page.locator("[data-stream-toggle=stdout]")).to_have_attribute("aria-pressed", "true")

    # Per-line times, off by default.
    stamp = terminal.locator(".tl[data-n='11'] .ts")
    expect(stamp).to_be_hidden()
    page.get_by_test_id("timestamps").click()
    expect(stamp).to_be_visible()
    expect(stamp).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    no_page_errors(page)


def test_the_jump_to_latest_pill_on_a_long_live_log(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "chatty.py", CHATTY)
    token = uuid.uuid4().hex[:8]
    run = start_run(api, "chatty.py", args=[token])
    wait_until(lambda: api.get(f"/api/runs/{run['id']}").json()["output_lines"] >= 300, timeout=60)
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    pill = page.locator("#jump-latest")
    expect(page.locator("[data-testid=terminal]")).to_contain_text("tick")
    expect(pill).to_be_hidden()  # following the tail

    page.evaluate("document.querySelector('#term').scrollTop = 0")
    expect(pill).to_be_visible()
    expect(pill).to_have_text(re.compile(r"newer lines|Jump to latest"))
    # The output counter keeps up with what the terminal has seen.
    counted = page.get_by_test_id("output-count")
    wait_until(
        lambda: int(counted.inner_text().split()[0].replace(",", "")) >= page.evaluate(LAST_SHOWN),
        timeout=10,
    )
    pill.click()
    expect(pill).to_be_hidden()
    expect(page.get_by_test_id("follow")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(AT_BOTTOM)
    (stack.scripts / f"stop-{token}").touch()
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)
    no_page_errors(page)


def test_a_retried_run_shows_its_wall_time_and_each_attempts_time_and_runs_again(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "flaky.py", FLAKY)
    run = start_run(
        api,
        "flaky.py",
        retry_on_failure=True,
        retry_max_attempts=2,
        retry_initial_delay=1.0,
        retry_strategy="linear",
    )
    run = finished(api, run["id"])
    assert run["attempts"] == 2
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    wall = page.get_by_test_id("wall-time")
    expect(wall).to_be_visible()
    expect(page.locator("#run-meta")).to_contain_text("Run time (all attempts)")
    expect(page.locator("#attempts-body tr")).to_have_count(2)
    # The wall time holds the wait between the attempts: longer than their sum.
    wall_s = float(re.match(r"([\d.]+)", wall.inner_text()).group(1))  # type: ignore[union-attr]
    assert wall_s >= 1.0

    page.get_by_test_id("rerun").click()
    expect(page).to_have_url(re.compile(rf"rerun={run['id']}"))
    expect(page.get_by_test_id("rerun-note")).to_be_visible()
    no_page_errors(page)


def test_the_analytics_card_appears_when_a_live_run_ends(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "waits.py", WAITS)
    token = uuid.uuid4().hex[:8]
    run = start_run(api, "waits.py", args=[token])
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    expect(page.locator("[data-testid=terminal]")).to_contain_text("waiting", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-testid=run-analytics]")).to_have_count(0)
    (stack.scripts / f"go-{token}").touch()
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-testid=run-analytics]")).to_be_visible()
    expect(page.get_by_test_id("run-usual")).to_be_visible()
    no_page_errors(page)


def test_a_running_runs_page_shows_progress_against_its_usual_duration(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "steady.sh", 'sleep "$1"\n')
    for _ in range(3):  # what "usual" is: about 1 s
        finished(api, start_run(api, "steady.sh", args=["1"])["id"])
    run = start_run(api, "steady.sh", args=["60"])
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    progress = page.get_by_test_id("run-progress")
    expect(progress).to_be_visible(timeout=RUN_TIMEOUT)
    expect(progress).to_contain_text("running longer than usual", timeout=RUN_TIMEOUT)
    expect(progress.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    api.post(f"/api/runs/{run['id']}/kill")
    no_page_errors(page)
