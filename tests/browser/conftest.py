"""Browser fixtures: a real stack per test file, Chromium driven by Playwright, signed-in pages.

Chromium is the system one (``/usr/bin/chromium``); no browser is ever downloaded. The
tests are skipped when it is missing. Every wait is Playwright's auto-waiting
``expect`` with a generous timeout: the suite shares a small machine.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect, sync_playwright

from tests.stack import BASE_DIR, CHROMIUM, CHROMIUM_ARGS, Stack

SCREENSHOTS = BASE_DIR / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1360, "height": 900}
# Milliseconds. Reaching one means something hangs, not that the machine is slow.
UI_TIMEOUT = 45_000
RUN_TIMEOUT = 90_000

# username -> (password, role)
USERS = {
    "exe": ("exe-password-1", "executor"),
    "usr": ("usr-password-1", "user"),
    "ro": ("ro-password-1", "readonly"),
    "adm": ("adm-password-1", "admin"),
}

expect.set_options(timeout=UI_TIMEOUT)


@pytest.fixture(autouse=True, scope="module")
def _needs_chromium() -> None:
    """Autouse, so it runs before any stack is started for nothing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need a system Chromium")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A real stack (daphne + workers) with the example scripts and one user per role.

    A test file may set ``STACK_WORKERS`` and ``STACK_ENV`` (extra environment for serve).
    """
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    started = Stack(
        base,
        workers=getattr(request.module, "STACK_WORKERS", 2),
        extra_env=getattr(request.module, "STACK_ENV", None),
    )
    try:
        started.start()
        for example in (BASE_DIR / "examples").iterdir():
            if example.is_file():
                started.script(f"examples/{example.name}", example.read_text())
        code = "from core.models import User\n" + "".join(
            f"User.objects.create_user({name!r}, password={password!r}, role={role!r})\n"
            for name, (password, role) in USERS.items()
        )
        started.manage("shell", "-c", code)
        yield started
    finally:
        left = started.stop()
        assert not left, f"processes left behind by the stack: {left}\n{started.log()}"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def login(browser: Browser, stack: Stack) -> Iterator[Callable[[str], Page]]:
    """``login("exe")``: a new browser context signed in as that user, on the Runs page."""
    contexts: list[BrowserContext] = []

    def sign_in(username: str) -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=stack.url)
        context.set_default_timeout(UI_TIMEOUT)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # What the Content-Security-Policy blocked counts as an error too (no_page_errors).
        page.on(
            "console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None
        )
        page.errors = errors  # type: ignore[attr-defined]
        page.goto("/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", USERS[username][0])
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{stack.url}/")
        expect(page.locator("[data-testid=role]")).to_have_text(USERS[username][1])
        # The header shows before the scripts at the end of the body have run; a test acts on a
        # page whose handlers are in place (as a page.goto would wait for).
        page.wait_for_load_state("load")
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """The REST API with the stack's admin key, to arrange and check what the pages show."""
    with stack.client() as client:
        yield client


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def no_page_errors(page: Page) -> None:
    errors: list[str] = getattr(page, "errors", [])
    assert not errors, f"JavaScript errors on the page: {errors}"


def write_script(stack: Stack, name: str, body: str) -> Path:
    return stack.script(name, textwrap.dedent(body).lstrip("\n"))


def start_run(client: httpx.Client, script: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/run", json={"script_path": script, **fields})
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


class Held:
    """``with Held(page, url) as held:`` holds back the page's requests to ``url``, to act
    while one is in flight; the test then lets it go (``held.route().continue_()``) or
    answers it (``held.route().fulfill(...)``). Requests after the block go through."""

    def __init__(self, page: Page, url: str | re.Pattern[str]) -> None:
        self.page = page
        self.url = url
        self.routes: list[Route] = []

    def __enter__(self) -> Held:
        self.page.route(self.url, self._hold)
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.unroute(self.url, self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def route(self) -> Route:
        """The first request held (waits for it, for up to the UI timeout)."""
        for _ in range(UI_TIMEOUT // 50):
            if self.routes:
                return self.routes[0]
            self.page.wait_for_timeout(50)  # (the page's requests are handled while it waits)
        raise AssertionError("the page made no such request")
