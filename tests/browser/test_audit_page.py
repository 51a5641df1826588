"""The Audit page in real Chromium: an admin reads, filters and exports the log; others
see no link and get a 403."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import VIEWPORT, no_page_errors, screenshot
from tests.stack import Stack

pytestmark = pytest.mark.browser


def _fail_a_sign_in(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.url, user_agent="AuditBrowserTest/1.0")
    try:
        page = context.new_page()
        page.goto("/login/")
        page.fill("#id_username", "ro")
        page.fill("#id_password", "not-the-password")
        page.click("button[type=submit]")
        expect(page.locator("[data-testid=login-error]")).to_be_visible()
    finally:
        context.close()


def test_an_admin_reads_filters_and_exports_the_audit_log(
    browser: Browser, stack: Stack, login: Callable[[str], Page]
) -> None:
    _fail_a_sign_in(browser, stack)
    page = login("adm")
    page.locator("[data-testid=nav-audit]").click()
    expect(page).to_have_url(re.compile(r"/audit/?$"))
    rows = page.locator("[data-testid=audit-row]")
    expect(rows.first).to_be_visible()
    failed = page.locator("[data-testid=audit-row][data-action='auth.login_failed']")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("ro")
    expect(failed).to_contain_text("127.0.0.1")
    expect(failed).to_contain_text("AuditBrowserTest/1.0")
    expect(page.locator("[data-testid=audit-row][data-action='auth.login']").first).to_contain_text("adm")
    expect(page.locator("#pager-info")).to_contain_text(re.compile(r"Showing 1\u2013\d+ of \d+ events?"))
    screenshot(page, "audit")

    # A filter narrows the list, and lives in the address (a reload keeps it).
    page.fill("[data-testid=filter-action]", "auth.login_failed")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"action=auth\.login_failed"))
    page.reload()
    expect(page.locator("[data-testid=filter-action]")).to_have_value("auth.login_failed")
    expect(rows).to_have_count(1)

    # The export link carries the same filters; the CSV holds that one event.
    link = page.locator("[data-testid=audit-csv]")
    expect(link).to_have_attribute("href", re.compile(r"^/api/audit/export\?action=auth\.login_failed$"))
    response = page.request.get(str(link.get_attribute("href")))
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text())))
    assert len(lines) == 2 and lines[1][2] == "auth.login_failed" and lines[1][4] == "ro"

    # Nothing matches: the empty state says so; Clear brings every event back.
    page.fill("[data-testid=filter-actor]", "nobody-at-all")
    expect(page.locator(".empty-title")).to_have_text("No events match these filters")
    page.locator("#f-clear").click()
    expect(rows.nth(1)).to_be_visible()
    no_page_errors(page)


def test_others_see_no_link_and_get_a_403(login: Callable[[str], Page]) -> None:
    page = login("usr")
    expect(page.locator("nav.mainnav")).to_contain_text("API keys")
    expect(page.locator("[data-testid=nav-audit]")).to_have_count(0)
    response = page.goto("/audit/")
    assert response is not None and response.status == 403
    expect(page.locator("[data-testid=audit-row]")).to_have_count(0)
