"""Every page under the Content-Security-Policy, in a real Chromium: no violation anywhere.

The policy allows only the app's own scripts, styles and connections (no inline script
or style). Chromium reports each blocked thing as a ``securitypolicyviolation`` event
and a console message; both are collected on every page and any one fails the test.
The live websocket must connect too (``connect-src 'self'`` covers same-origin ws:).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import RUN_TIMEOUT, USERS, VIEWPORT, start_run, write_script
from tests.stack import Stack

pytestmark = pytest.mark.browser

STACK_WORKERS = 1

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} in ${where}`);
});
"""


def watched(page: Page) -> list[str]:
    """Console messages about the policy, collected from now on."""
    console: list[str] = []
    page.on(
        "console",
        lambda msg: console.append(msg.text)
        if "Content Security Policy" in msg.text or "Refused to" in msg.text
        else None,
    )
    return console


def violations(page: Page, console: list[str]) -> list[str]:
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # scripts that run after load (charts, fetches) have had their go
    events: list[str] = page.evaluate("window.__csp || []")
    return [*events, *console]


def sign_in(context: BrowserContext, stack: Stack, username: str) -> tuple[Page, list[str]]:
    context.add_init_script(WATCH)
    page = context.new_page()
    console = watched(page)
    page.goto("/login/")
    assert violations(page, console) == [], "the sign-in page"
    page.fill("#id_username", username)
    page.fill("#id_password", USERS[username][0])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.url}/")
    return page, console


def test_every_page_loads_without_a_policy_violation(browser, stack: Stack, api: httpx.Client) -> None:
    write_script(stack, "hello.sh", "echo hello\n")
    run = start_run(api, "hello.sh")
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.url)
    try:
        page, console = sign_in(context, stack, "adm")
        response = page.goto("/")
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        found: dict[str, list[str]] = {}
        for path in [
            "/",
            f"/runs/{run['id']}/",
            "/library/",
            "/scheduler/",
            "/analytics/",
            "/system/",
            "/keys/",
            "/api/docs/",
            "/admin/",
        ]:
            console.clear()
            page.goto(path)
            if path == "/api/docs/":
                expect(page.locator(".swagger-ui .info .title")).to_be_visible()  # its script ran
            problems = violations(page, console)
            if problems:
                found[path] = problems
        assert found == {}, f"Content-Security-Policy violations: {found}"
    finally:
        context.close()


def test_the_live_websocket_connects_under_the_policy(login: Callable[[str], Page], stack: Stack) -> None:
    page = login("exe")

    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live", timeout=RUN_TIMEOUT)
