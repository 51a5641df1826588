"""The run page's output viewer on big logs: tail first, pages on scroll, a bounded DOM,
the truncation banner, server-side search, downloads, and following a live run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import RUN_TIMEOUT, no_page_errors, screenshot, start_run, write_script
from tests.integration.helpers import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.browser

# A small output cap, so a few hundred kilobytes of output are truncated (the cap keeps
# whole 64 KiB segments of the newest output).
STACK_ENV = {"SCRIPTOPS_MAX_OUTPUT_BYTES": "150000"}
MAX_DOM_LINES = 5000

BIG = """
for i in range(1, 30001):
    print(f"row {i:05d} end")
"""

# Writes a burst of stdout lines with a stderr checkpoint every 500, waits for the test's
# "ready" flag before the last checkpoint (stdout and stderr are two pipes: which one the
# runner drains first is a race, so the test lets the burst be stored before the last
# checkpoint is written, and that checkpoint is then the log's last line), then waits
# for its "go" flag and writes one more line.
LIVE = r"""
import pathlib, sys, time

def wait_for(name):
    flag = pathlib.Path(__file__).with_name(name + "-" + sys.argv[1])
    deadline = time.monotonic() + 120
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

for i in range(1, 3001):
    print(f"burst {i:04d}")
    if i % 500 == 0 and i < 3000:
        print(f"checkpoint {i}", file=sys.stderr)
sys.stdout.flush()
wait_for("ready")
print("checkpoint 3000", file=sys.stderr, flush=True)
wait_for("go")
print("\x1b[1;36mfinal line\x1b[0m", flush=True)
"""


def wait_finished(api: httpx.Client, run_id: str, timeout: float = RUN_TIMEOUT / 1000) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.get(f"/api/runs/{run_id}").json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.1)


def wait_output_lines(api: httpx.Client, run_id: str, lines: int) -> None:
    wait_until(
        lambda: api.get(f"/api/runs/{run_id}").json()["output_lines"] >= lines,
        timeout=RUN_TIMEOUT / 1000,
        what=f"run {run_id} to store {lines} lines",
    )


def dom_lines(page: Page) -> tuple[int, int, int]:
    """(number of line rows, first line number, last line number) in the viewer."""
    count, first, last = page.evaluate(
        """() => {
            const rows = document.querySelectorAll('#term-lines .tl');
            const n = (row) => Number(row?.dataset.n || 0);
            return [rows.length, n(rows[0]), n(rows[rows.length - 1])];
        }"""
    )
    return int(count), int(first), int(last)


@pytest.fixture(scope="module")
def big_run(stack: Stack) -> dict[str, Any]:
    write_script(stack, "big.py", BIG)
    with stack.client() as api:
        run = start_run(api, "big.py")
        return wait_finished(api, run["id"])


def test_a_big_log_opens_at_its_tail_pages_back_and_keeps_the_dom_bounded(
    login: Callable[[str], Page], api: httpx.Client, big_run: dict[str, Any]
) -> None:
    run_id = big_run["id"]
    tail = api.get(f"/api/runs/{run_id}/logs", params={"format": "json", "limit": 500}).json()
    assert tail["truncated"] and tail["dropped_lines"] > 0, tail
    assert tail["last_line"] == 30000
    first_stored = tail["dropped_lines"] + 1

    page = login("exe")
    page.goto(f"/runs/{run_id}/")
    terminal = page.locator("[data-testid=terminal]")
    expect(terminal).to_contain_text("row 30000 end")
    # Only the newest page was loaded, not the whole log.
    assert dom_lines(page) == (500, tail["first_line"], 30000)
    banner = page.locator("#term-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("truncated")
    expect(banner).to_contain_text(f"{tail['dropped_lines']:,}")
    screenshot(page, "run-big-log")

    # Scroll up page after page, to the first stored line: never more than 5,000 rows.
    deadline = time.monotonic() + 180
    while True:
        count, first, last = dom_lines(page)
        assert count <= MAX_DOM_LINES, (count, first, last)
        if first == first_stored:
            break
        assert time.monotonic() < deadline, f"still paging back at {(count, first, last)}"
        page.evaluate("document.querySelector('#term').scrollTop = 0")
        try:
            page.wait_for_function(
                "n => Number(document.querySelector('#term-lines .tl')?.dataset.n) < n",
                arg=first,
                timeout=15_000,
            )
        except PlaywrightTimeoutError:
            continue  # a slow page load: scroll to the top again
    expect(page.locator("#term-top")).to_contain_text("dropped by the output cap")
    count, first, last = dom_lines(page)
    assert first == first_stored
    assert count == min(MAX_DOM_LINES, 30000 - first_stored + 1)
    if 30000 - first_stored + 1 > MAX_DOM_LINES:
        # The newest lines were dropped from the DOM: the viewer offers to go back.
        assert last < 30000
        jump = page.locator("#jump-latest")
        expect(jump).to_be_visible()
        jump.click()
        expect(terminal).to_contain_text("row 30000 end")
        assert dom_lines(page)[2] == 30000
    no_page_errors(page)


def test_search_jumps_to_a_line_outside_the_loaded_page_and_downloads_are_attachments(
    login: Callable[[str], Page], api: httpx.Client, big_run: dict[str, Any]
) -> None:
    run_id = big_run["id"]
    tail = api.get(f"/api/runs/{run_id}/logs", params={"format": "json", "limit": 500}).json()
    target = tail["dropped_lines"] + 20  # stored, far before the tail page

    page = login("exe")
    page.goto(f"/runs/{run_id}/")
    expect(page.locator("[data-testid=terminal]")).to_contain_text("row 30000 end")
    page.fill("[data-testid=log-search]", f"row {target:05d} end")
    page.press("[data-testid=log-search]", "Enter")
    hits = page.locator("[data-testid=search-results] .search-hit")
    expect(hits).to_have_count(1)
    hits.first.click()
    line = page.locator(f"#term-lines .tl[data-n='{target}']")
    expect(line).to_be_visible()
    expect(line).to_have_class("tl s-stdout hit")
    screenshot(page, "run-log-search")

    href = page.locator("#download-link").get_attribute("href")
    assert href is not None and "download=1" in href
    response = api.get(href)
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.text.rstrip().endswith("row 30000 end")
    no_page_errors(page)


def test_a_live_run_opens_at_the_tail_then_follows_with_the_stream_toggles(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    write_script(stack, "live.py", LIVE)
    token = uuid.uuid4().hex[:8]
    run = start_run(api, "live.py", args=[token])
    # Wait for the burst, so the page has a long log to open on, then for the last
    # checkpoint, written once the burst is stored.
    wait_output_lines(api, run["id"], 3005)
    (stack.scripts / f"ready-{token}").touch()
    wait_output_lines(api, run["id"], 3006)

    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    terminal = page.locator("[data-testid=terminal]")
    expect(terminal).to_contain_text("burst 3000")
    count, first, last = dom_lines(page)
    assert count == 500 and first > 1, (count, first, last)
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("running")

    # stderr can be hidden without reloading anything.
    checkpoint = terminal.locator(".s-stderr", has_text="checkpoint 3000")
    expect(checkpoint).to_be_visible()
    page.locator("[data-stream-toggle=stderr]").click()
    expect(checkpoint).to_be_hidden()
    page.locator("[data-stream-toggle=stderr]").click()
    expect(checkpoint).to_be_visible()

    # Scrolling up stops following (and loads older lines); Follow resumes it.
    follow = page.locator("[data-testid=follow]")
    expect(follow).to_have_attribute("aria-pressed", "true")
    page.evaluate("document.querySelector('#term').scrollTop = 0")
    expect(follow).to_have_attribute("aria-pressed", "false")
    page.wait_for_function(f"() => document.querySelectorAll('#term-lines .tl').length > {count}")
    follow.click()
    expect(follow).to_have_attribute("aria-pressed", "true")

    (stack.scripts / f"go-{token}").touch()
    final = terminal.locator(".ansi-fg-36.ansi-bold", has_text="final line")
    expect(final).to_be_visible(timeout=RUN_TIMEOUT)
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed")
    # Followed to the bottom: the last line is in view.
    assert page.evaluate(
        "() => { const t = document.querySelector('#term');"
        " return t.scrollTop + t.clientHeight >= t.scrollHeight - 30; }"
    )
    no_page_errors(page)
