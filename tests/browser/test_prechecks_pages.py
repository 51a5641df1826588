"""Pre-run checks in the pages (issue 13), in a real Chromium on a real stack: the library's
check badges and filter, a script's findings in its sheet (the secret masked), "Check now"
with its progress, and a blocked run's page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import RUN_TIMEOUT, no_page_errors, screenshot, start_run
from tests.browser.test_library_page import indexed_root, open_library, row, sheet_shot
from tests.stack import Stack

pytestmark = pytest.mark.browser

# Built from parts so that this test file itself holds no scannable secret.
AWS_KEY = "AKIA" + "Q3EGRIOSFODNN7XY"
LEAKY = f'"""Sync the bucket."""\nKEY = "{AWS_KEY}"\nprint("synced")\n'
TIDY = '"""Say hello."""\nprint("hello")\n'


def checked(api: httpx.Client, script_id: int, timeout: float = 60.0) -> dict[str, Any]:
    """Check a script through the API and wait for the job to end."""
    queued = api.post(f"/api/library/scripts/{script_id}/check", json={})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/api/library/checks/{queued.json()['id']}").json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"check still {job['state']} after {timeout}s"
        time.sleep(0.1)


def test_the_library_shows_check_badges_filters_by_them_and_checks_on_demand(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"leaky.py": LEAKY, "tidy.py": TIDY})
    leaky, tidy = root["scripts"]["leaky.py"], root["scripts"]["tidy.py"]
    assert checked(api, leaky["id"])["state"] == "done"
    page = login("usr")
    open_library(page, f"?root_id={root['id']}")

    # The list: one badge per script.
    expect(row(page, leaky).locator("[data-badge=check]")).to_have_text("secret found")
    expect(row(page, tidy).locator("[data-badge=check]")).to_have_text("not checked")

    # The "Check" filter, kept in the URL.
    page.select_option("[data-testid=filter-check]", value="secret")
    expect(page.locator("#scripts-body tr")).to_have_count(1)
    expect(row(page, leaky)).to_be_visible()
    assert "check=secret" in page.url
    page.select_option("[data-testid=filter-check]", value="not_checked")
    expect(page.locator("#scripts-body tr")).to_have_count(1)
    expect(row(page, tidy)).to_be_visible()
    page.select_option("[data-testid=filter-check]", value="")
    expect(page.locator("#scripts-body tr")).to_have_count(2)

    # The sheet: the findings, the secret masked.
    row(page, leaky).locator("[data-action=open]").click()
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("#sheet-title")).to_have_text("leaky.py")
    findings = sheet.locator("[data-testid=check-findings]")
    expect(findings.locator("tbody tr")).to_have_count(1)
    first = findings.locator("tbody tr").first
    expect(first).to_have_attribute("data-kind", "secret")
    expect(first).to_contain_text("detect-secrets")
    expect(first).to_contain_text("leaky.py:2")
    expect(first).to_contain_text("value masked")
    expect(first).to_contain_text("high")
    expect(sheet.locator("[data-testid=check-latest]")).to_contain_text(
        "for code, dependency, secret — findings"
    )
    assert "[object" not in sheet.inner_text()
    assert AWS_KEY not in sheet.inner_text() and AWS_KEY not in page.content()
    sheet_shot(page, "prechecks-sheet-findings")
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()

    # "Check now" on the unchecked script: its progress, then the result, in the sheet and the list.
    row(page, tidy).locator("[data-action=open]").click()
    expect(sheet.locator("#sheet-title")).to_have_text("tidy.py")
    expect(sheet.locator("[data-testid=check-none]")).to_have_text("Not checked yet.")
    page.evaluate(
        """() => {
        window.seenProgress = [];
        const node = document.querySelector('[data-testid=check-progress]');
        new MutationObserver(() => window.seenProgress.push(node.textContent))
          .observe(node, {childList: true, characterData: true, subtree: true});
    }"""
    )
    sheet.locator("[data-testid=check-now]").click()
    progress = sheet.locator("[data-testid=check-progress]")
    expect(progress).to_have_text("Done: 1/1 checked, 0 with findings.", timeout=RUN_TIMEOUT)
    seen: list[str] = page.evaluate("window.seenProgress")
    assert any(text.startswith("Checking…") for text in seen), seen
    expect(sheet.locator("[data-testid=check-clean]")).to_have_text("Nothing found.")
    expect(sheet.locator(".check-head [data-badge=check]")).to_have_text("clean")
    expect(sheet.locator("[data-testid=check-now]")).to_be_enabled()
    page.keyboard.press("Escape")
    expect(row(page, tidy).locator("[data-badge=check]")).to_have_text("clean")
    no_page_errors(page)


def test_a_reader_sees_the_findings_but_no_check_now(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"leaky.py": LEAKY})
    leaky = root["scripts"]["leaky.py"]
    checked(api, leaky["id"])
    page = login("ro")
    page.goto(f"/library/?root_id={root['id']}#script={leaky['id']}")
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("[data-testid=check-findings] tbody tr")).to_have_count(1)
    expect(sheet.locator("[data-testid=check-now]")).to_have_count(0)
    no_page_errors(page)


def test_a_blocked_runs_page_says_so_and_lists_the_findings(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    marker = stack.base_dir / "blocked.ran"
    script = stack.script(
        "pre/blocked.py",
        f'from pathlib import Path\nKEY = "{AWS_KEY}"\nPath({str(marker)!r}).write_text("x")\n',
    )
    run = start_run(api, str(script), enable_secret_scanning=True)
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")

    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("failed", timeout=RUN_TIMEOUT)
    card = page.locator("[data-testid=run-checks]")
    expect(card).to_be_visible()
    blocked = card.locator("[data-testid=checks-blocked]")
    expect(blocked).to_be_visible()
    expect(blocked).to_contain_text("Blocked by pre-run checks")
    expect(blocked).to_contain_text("1 secret")
    findings = card.locator("[data-testid=run-findings] tbody tr")
    expect(findings).to_have_count(1)
    expect(findings.first).to_contain_text("detect-secrets")
    expect(findings.first).to_contain_text("blocked.py:2")
    expect(findings.first).to_contain_text("blocks")
    expect(card.locator("#checks-summary")).to_contain_text(re.compile(r"secret · findings · 1 finding"))
    assert AWS_KEY not in page.content()
    assert "{#" not in page.inner_text("body") and "comment" not in card.inner_text()
    assert not marker.exists()
    screenshot(page, "prechecks-run-blocked")
    no_page_errors(page)


def test_a_run_without_checks_shows_no_checks_card(login: Callable[[str], Page], api: httpx.Client) -> None:
    run = start_run(api, "examples/fail.py")
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("failed", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-testid=run-checks]")).to_be_hidden()
    no_page_errors(page)
