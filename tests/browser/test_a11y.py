"""axe-core over every page, in light and dark: no serious or critical violation.

axe-core is vendored in tests/browser/vendor (see its README), never served by the app.
It is injected with ``page.add_script_tag``, which the app's Content-Security-Policy
(script-src 'self', no inline script) would block; this file's contexts are therefore
made with ``bypass_csp=True``. Only these a11y contexts bypass the policy: test_csp.py
keeps checking it with the policy on.

The same tour of pages (``TOUR``) drives ``make screenshots``: with
``SCRIPTOPS_SCREENSHOTS=1`` the screenshot test saves each page at 1440 and 390 px in
light and dark into test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import SCREENSHOTS, UI_TIMEOUT, USERS, start_run
from tests.browser.test_analytics_page import DURATIONS, seed
from tests.browser.test_library_page import indexed_root
from tests.stack import Stack

pytestmark = pytest.mark.browser

STACK_WORKERS = 2
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

RUN_AXE = """
async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} -- ` +
      v.nodes.slice(0, 12).map((n) => {
        const data = (n.any[0] || {}).data || {};
        const colours = data.fgColor ? ` ${data.fgColor} on ${data.bgColor} = ${data.contrastRatio}` : "";
        return n.target.join(" ") + colours;
      }).join(" | "));
}
"""


def wait_status(client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/api/runs/{run_id}").json()["status"] not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} never reached {statuses}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[dict[str, Any]]:
    """Something on every page: a finished and a running run, a library, analytics data."""
    with stack.client() as client:
        finished = start_run(client, "examples/hello.py")
        wait_status(client, finished["id"], {"completed", "failed"})
        running = start_run(client, "examples/ticker.py", args=["--ticks", "600", "--interval", "0.5"])
        wait_status(client, running["id"], {"running"})
        root = indexed_root(client, stack, {"report.py": '"""Nightly report."""\nprint("ok")\n'})
        path = f"/srv/a11y-{uuid.uuid4().hex[:8]}/nightly.py"
        seed(stack, path, "duration_seconds", DURATIONS)
        try:
            yield {
                "finished": finished["id"],
                "running": running["id"],
                "script": root["scripts"]["report.py"],
                "analytics": path,
            }
        finally:
            client.post(f"/api/runs/{running['id']}/kill")


def tour(world: dict[str, Any]) -> list[tuple[str, Callable[[Page], None]]]:
    """(name, how to get there) for every page; each step leaves the page settled."""

    def goto(path: str, ready: str) -> Callable[[Page], None]:
        def step(page: Page) -> None:
            page.goto(path)
            expect(page.locator(ready).first).to_be_visible()
            page.wait_for_load_state("networkidle")

        return step

    def library_sheet(page: Page) -> None:
        page.goto(f"/library/?root_id={world['script']['root_id']}")
        page.locator(f"#scripts-body tr[data-id='{world['script']['id']}'] [data-action=open-name]").click()
        expect(page.locator("[data-testid=script-sheet]")).to_be_visible()
        page.wait_for_load_state("networkidle")

    def task_dialog(page: Page) -> None:
        goto("/scheduler/", "[data-testid=new-task]")(page)
        page.click("[data-testid=new-task]")
        expect(page.locator("[data-testid=task-dialog]")).to_be_visible()

    def analytics(page: Page) -> None:
        page.goto(f"/analytics/?script_path={world['analytics']}")
        expect(page.locator("[data-testid=an-chart]")).to_have_attribute("data-chart-ready", "1")

    return [
        ("runs", goto("/", "#runs-body tr[data-id]")),
        ("run-running", goto(f"/runs/{world['running']}/", ".term .tl")),
        ("run-finished", goto(f"/runs/{world['finished']}/", ".term .tl")),
        ("library", goto("/library/", "#roots-list")),
        ("library-sheet", library_sheet),
        ("scheduler", goto("/scheduler/", "[data-testid=new-task]")),
        ("scheduler-dialog", task_dialog),
        ("analytics", analytics),
        ("system", goto("/system/", "#main h1")),
        ("keys", goto("/keys/", "#main h1")),
        ("404", goto("/no-such-page/", "#main")),
    ]


def context_for(browser: Browser, stack: Stack, *, scheme: str, viewport: dict[str, int]) -> BrowserContext:
    # bypass_csp: axe is injected as a script tag the policy would refuse (see the docstring).
    context = browser.new_context(viewport=viewport, base_url=stack.url, color_scheme=scheme, bypass_csp=True)  # type: ignore[arg-type]
    context.set_default_timeout(UI_TIMEOUT)
    return context


def sign_in(page: Page, stack: Stack) -> None:
    page.goto("/login/")
    page.fill("#id_username", "adm")
    page.fill("#id_password", USERS["adm"][0])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.url}/")


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(RUN_AXE)
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_axe_violations_on_any_page(
    browser: Browser, stack: Stack, world: dict[str, Any], scheme: str
) -> None:
    context = context_for(browser, stack, scheme=scheme, viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/login/")
        expect(page.locator("html")).to_have_attribute("data-theme", scheme)
        problems = {"login": serious_violations(page)}
        sign_in(page, stack)
        for name, step in tour(world):
            step(page)
            assert page.evaluate("document.documentElement.dataset.theme") == scheme
            problems[name] = serious_violations(page)
        found = {name: found for name, found in problems.items() if found}
        assert not found, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)
    finally:
        context.close()


def test_axe_finds_what_it_should(browser: Browser, stack: Stack) -> None:
    """The check can fail: a page with an unlabelled field and grey-on-grey text is caught."""
    context = context_for(browser, stack, scheme="light", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/login/")
        page.evaluate(
            """() => {
              const input = document.createElement("input"); document.body.append(input);
              const p = document.createElement("p"); p.textContent = "faint";
              p.style.color = "#ccc"; p.style.background = "#fff"; document.body.append(p);
            }"""
        )
        found = " ".join(serious_violations(page))
        assert "label" in found and "color-contrast" in found, found
    finally:
        context.close()


@pytest.mark.skipif(
    not os.environ.get("SCRIPTOPS_SCREENSHOTS"), reason="make screenshots sets SCRIPTOPS_SCREENSHOTS=1"
)
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1440, 390])
def test_screenshots(browser: Browser, stack: Stack, world: dict[str, Any], scheme: str, width: int) -> None:
    viewport = WIDE if width == 1440 else PHONE
    context = context_for(browser, stack, scheme=scheme, viewport=viewport)
    try:
        page = context.new_page()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.goto("/login/")
        page.screenshot(path=str(SCREENSHOTS / f"login-{width}-{scheme}.png"), full_page=True)
        sign_in(page, stack)
        for name, step in tour(world):
            step(page)
            # Dialogs and sheets are fixed panels: the viewport shows them as a user sees them.
            full = not name.endswith(("-sheet", "-dialog"))
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}-{scheme}.png"), full_page=full)
    finally:
        context.close()
