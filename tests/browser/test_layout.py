"""Phone layout, colour theme and focus ring, in a real Chromium.

At 390 px nothing scrolls sideways on any page, the runs table is a list of cards, the
run page is one column with the terminal full width and the launch form starts folded.
The theme toggle is remembered across a reload and "Auto" follows the system setting
(Chromium's ``prefers-color-scheme`` emulation). A focused control shows an outline of
at least 2 px.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RUN_TIMEOUT, UI_TIMEOUT, USERS, VIEWPORT, start_run
from tests.stack import Stack

pytestmark = pytest.mark.browser

STACK_WORKERS = 1
PHONE = {"width": 390, "height": 844}

# Every page a signed-in user reaches from the top bar, plus the browser's 404.
PAGES = ["/", "/library/", "/scheduler/", "/analytics/", "/system/", "/keys/", "/no-such-page/"]


def signed_in(
    browser: Browser, stack: Stack, *, viewport: dict[str, int], username: str = "exe", **options: object
) -> BrowserContext:
    context = browser.new_context(viewport=viewport, base_url=stack.url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", USERS[username][0])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.url}/")
    page.close()
    return context


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Iterator[Page]:
    # Not is_mobile: a mobile viewport widens itself to fit the content, hiding overflow.
    context = signed_in(browser, stack, viewport=PHONE)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def finished_run(stack: Stack) -> str:
    with stack.client() as client:
        run = start_run(client, "examples/hello.py")
        run_id = str(run["id"])
        wait_finished(client, run_id)
    return run_id


def wait_finished(client: httpx.Client, run_id: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT / 1000
    while time.monotonic() < deadline:
        if client.get(f"/api/runs/{run_id}").json()["status"] in {"completed", "failed", "cancelled"}:
            return
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish")


def sideways(page: Page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits)."""
    overflow: int = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    return overflow


# What sticks out past the right edge (the nav, tables and the terminal scroll inside).
WIDEST = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
  .filter((e) => !e.closest(".mainnav, .table-wrap, .term"))
  .slice(0, 6)
  .map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`)"""


def test_no_page_scrolls_sideways_at_390px(phone: Page, finished_run: str) -> None:
    for path in [*PAGES, f"/runs/{finished_run}/"]:
        phone.goto(path)
        phone.wait_for_load_state("networkidle")
        assert sideways(phone) <= 0, (
            f"{path} scrolls sideways by {sideways(phone)} px: {phone.evaluate(WIDEST)}"
        )
    phone.context.clear_cookies()
    phone.goto("/login/")
    assert sideways(phone) <= 0, "/login/ scrolls sideways at 390 px"


def test_runs_table_is_cards_and_launch_form_folded_on_a_phone(phone: Page, finished_run: str) -> None:
    phone.goto("/")
    row = phone.locator("#runs-body tr[data-id]").first
    expect(row).to_be_visible()
    assert phone.locator("#runs-table thead").bounding_box()["height"] <= 1  # type: ignore[index]
    assert row.evaluate("r => getComputedStyle(r).display") == "grid"
    box = row.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    fold = phone.locator("[data-testid=launch-fold]")
    assert fold.evaluate("d => d.open") is False
    expect(phone.locator("#launch-form")).to_be_hidden()
    phone.locator("#launch-fold > summary").click()
    expect(phone.locator("#launch-form input[name=script_path]").first).to_be_visible()


def test_a_link_to_a_script_opens_the_launch_form_on_a_phone(phone: Page) -> None:
    phone.goto("/?rerun=00000000-0000-0000-0000-000000000000")
    assert phone.locator("[data-testid=launch-fold]").evaluate("d => d.open") is True


def test_launch_form_open_on_a_desktop(browser: Browser, stack: Stack) -> None:
    context = signed_in(browser, stack, viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto("/")
        assert page.locator("[data-testid=launch-fold]").evaluate("d => d.open") is True
        expect(page.locator("#runs-table thead")).to_be_visible()
    finally:
        context.close()


def test_run_page_is_one_column_with_full_width_terminal(phone: Page, finished_run: str) -> None:
    phone.goto(f"/runs/{finished_run}/")
    term = phone.locator(".term").first
    expect(term).to_be_visible()
    main = phone.locator("#main").bounding_box()
    box = term.bounding_box()
    assert main is not None and box is not None
    # Full width of the content column (the page's padding aside), not a side column.
    assert box["width"] >= main["width"] - 2 * 12 - 4, (box, main)
    columns = phone.locator(".detail-grid").first.evaluate("g => getComputedStyle(g).gridTemplateColumns")
    assert len(columns.split()) == 1, columns


def test_theme_toggle_persists_across_reload(browser: Browser, stack: Stack) -> None:
    context = signed_in(browser, stack, viewport=VIEWPORT, color_scheme="light")
    try:
        page = context.new_page()
        page.goto("/")
        html = page.locator("html")
        expect(html).to_have_attribute("data-theme", "light")
        light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.locator("[data-theme-value=dark]").click()
        expect(html).to_have_attribute("data-theme", "dark")
        expect(page.locator("[data-theme-value=dark]")).to_have_attribute("aria-pressed", "true")
        page.reload()
        expect(html).to_have_attribute("data-theme", "dark")
        dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert dark_bg != light_bg
        # Set before first paint: the theme is on <html> at DOMContentLoaded already.
        page.goto("/library/", wait_until="commit")
        page.wait_for_selector("body")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        page.locator("[data-theme-value=system]").click()
        expect(html).to_have_attribute("data-theme", "light")
        page.reload()
        expect(html).to_have_attribute("data-theme", "light")
    finally:
        context.close()


def test_auto_theme_follows_the_system_setting(browser: Browser, stack: Stack) -> None:
    context = signed_in(browser, stack, viewport=VIEWPORT, color_scheme="dark")
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        expect(page.locator("[data-theme-value=system]")).to_have_attribute("aria-pressed", "true")
        page.emulate_media(color_scheme="light")
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        page.goto("/login/")  # signed-out pages follow it too
        page.emulate_media(color_scheme="dark")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_focus_ring_is_visible(browser: Browser, stack: Stack, scheme: str) -> None:
    context = signed_in(browser, stack, viewport=VIEWPORT, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("#runs-body tr").first).to_be_visible()
        for selector in [
            "[data-testid=launch]",
            ".mainnav a >> nth=1",
            "#launch-form input[name=script_path]",
        ]:
            target = page.locator(selector).first
            target.focus()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")  # keyboard focus, so :focus-visible applies
            style = target.evaluate(
                "e => { const s = getComputedStyle(e); return [document.activeElement === e,"
                " s.outlineStyle, parseFloat(s.outlineWidth)]; }"
            )
            assert style[0], f"{selector} did not take focus"
            assert style[1] != "none" and style[2] >= 2, f"{selector}: outline {style}"
    finally:
        context.close()


def test_times_in_a_tasks_zone_name_the_zone(browser: Browser, stack: Stack) -> None:
    """A browser in New York previewing a Tokyo cron task sees Tokyo times, labelled."""
    context = signed_in(browser, stack, viewport=VIEWPORT, username="usr", timezone_id="America/New_York")
    try:
        page = context.new_page()
        page.goto("/scheduler/")
        page.click("[data-testid=new-task]")
        dialog = page.locator("[data-testid=task-dialog]")
        expect(dialog).to_be_visible()
        dialog.locator("label.seg-opt", has_text="Cron").click()
        dialog.locator("[data-testid=task-timezone]").fill("Asia/Tokyo")
        dialog.locator("[data-testid=task-cron]").press_sequentially("30 2 * * *")
        first = dialog.locator("[data-testid=cron-next] li").first
        expect(first).to_contain_text("02:30")
        expect(first).to_contain_text("Asia/Tokyo")
    finally:
        context.close()
