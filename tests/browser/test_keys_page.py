"""Signing in and out, and managing API keys from the dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import USERS, VIEWPORT, no_page_errors, screenshot
from tests.stack import Stack

pytestmark = pytest.mark.browser


def test_sign_in_redirects_back_and_sign_out_ends_the_session(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.url)
    try:
        page = context.new_page()
        page.goto("/keys/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/keys/"))
        screenshot(page, "login")

        page.fill("#id_username", "usr")
        page.fill("#id_password", "not-the-password")
        page.click("button[type=submit]")
        expect(page.locator("[data-testid=login-error]")).to_be_visible()

        page.fill("#id_password", USERS["usr"][0])
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/keys/$"))
        expect(page.locator("[data-testid=role]")).to_have_text("user")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login/$"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    finally:
        context.close()


def test_an_api_key_is_shown_once_works_and_can_be_revoked(
    login: Callable[[str], Page], stack: Stack
) -> None:
    page = login("usr")
    page.get_by_role("link", name="API keys").click()
    expect(page).to_have_url(re.compile(r"/keys/?$"))
    # A key never grants more than its user's role: no admin option for a "user".
    expect(page.locator("[data-testid=key-role] option")).to_have_text(["Read only", "Executor", "User"])

    page.fill("[data-testid=key-name]", "browser-test key")
    page.select_option("[data-testid=key-role]", "executor")
    page.fill("input[name=expires_days]", "30")
    page.click("[data-testid=key-create]")

    shown = page.locator("[data-testid=new-key-value]")
    expect(shown).to_have_value(re.compile(r"^sops_"))
    raw = shown.input_value()
    row = page.locator("#keys-body tr", has_text="browser-test key")
    expect(row.locator("[data-testid=key-state]")).to_have_text("Active")
    expect(row).to_contain_text(raw[:8])
    screenshot(page, "keys")

    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {raw}"}) as client:
        assert client.get("/api/runs").status_code == 200

        # Shown once: "Done" forgets it, and a reload never shows it again.
        page.get_by_role("button", name="Done").click()
        expect(page.locator("[data-testid=new-key]")).to_be_hidden()
        page.reload()
        expect(row).to_be_visible()
        expect(page.locator("[data-testid=new-key]")).to_be_hidden()
        expect(page.locator("body")).not_to_contain_text(raw)

        revoke = row.locator("[data-action=revoke]")
        revoke.click()
        expect(revoke).to_have_text("Really revoke?")
        revoke.click()
        expect(row.locator("[data-testid=key-state]")).to_have_text("Revoked")
        assert client.get("/api/runs").status_code == 401
    no_page_errors(page)


def test_creating_a_key_without_a_name_shows_the_error_by_the_field(login: Callable[[str], Page]) -> None:
    page = login("ro")
    page.goto("/keys/")
    page.click("[data-testid=key-create]")
    expect(page.locator('[data-error-for="name"]')).not_to_be_empty()
    expect(page.locator("[data-testid=new-key]")).to_be_hidden()
