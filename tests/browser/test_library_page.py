"""The Library page (and the Runs page's launch form filled from it) in a real Chromium."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import RUN_TIMEOUT, SCREENSHOTS, no_page_errors, screenshot, write_script
from tests.stack import Stack

pytestmark = pytest.mark.browser

RUN_PAGE = re.compile(r"/runs/[0-9a-f-]{36}/$")

ROTATE = '''
#!/usr/bin/env python3
"""Rotate the logs of a folder."""
import argparse

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("folder", help="where the logs are")
parser.add_argument("--days", type=int, default=7, help="keep this many days")
parser.add_argument("--mode", choices=["gzip", "zstd"], default="gzip", help="compression")
parser.add_argument("--dry-run", action="store_true", help="only say what would happen")
options = parser.parse_args()
print(f"rotating {options.folder} for {options.days} days with {options.mode} dry={options.dry_run}")
'''


def sheet_shot(page: Page, name: str) -> None:
    """The script sheet is a fixed panel: the viewport shows it as a user sees it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def token() -> str:
    return uuid.uuid4().hex[:6]


def wait_for_scan(api: httpx.Client, root_id: int, scan_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        scan: dict[str, Any] = api.get(f"/api/library/folder-roots/{root_id}/scan/{scan_id}").json()
        if scan["state"] in ("completed", "failed"):
            return scan
        assert time.monotonic() < deadline, f"scan still {scan['state']} after {timeout}s"
        time.sleep(0.05)


def indexed_root(api: httpx.Client, stack: Stack, files: dict[str, str | bytes]) -> dict[str, Any]:
    """A folder of the given files, registered as a root and scanned (through the API)."""
    name = f"lib-{token()}"
    for relpath, body in files.items():
        path = stack.scripts / name / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            write_script(stack, f"{name}/{relpath}", body)
    created = api.post("/api/library/folder-roots", json={"name": name, "path": str(stack.scripts / name)})
    assert created.status_code == 201, created.text
    root: dict[str, Any] = created.json()
    started = api.post(f"/api/library/folder-roots/{root['id']}/scan")
    assert started.status_code == 202, started.text
    assert wait_for_scan(api, root["id"], started.json()["scan_id"])["state"] == "completed"
    listed = api.get("/api/library/scripts", params={"root_id": root["id"], "page_size": 100}).json()
    root["scripts"] = {s["relpath"]: s for s in listed["results"]}
    return root


def row(page: Page, script: dict[str, Any]) -> Locator:
    return page.locator(f"#scripts-body tr[data-id='{script['id']}']")


def open_library(page: Page, query: str = "") -> None:
    page.get_by_role("link", name="Library", exact=True).click()
    expect(page).to_have_url(re.compile(r"/library/$"))
    if query:
        page.goto(f"/library/{query}")
    expect(page.locator("#roots-list .loading-row")).to_have_count(0)


def test_an_empty_library_says_where_roots_may_live(login: Callable[[str], Page], stack: Stack) -> None:
    # The first test of the file: the module's stack has no roots yet.
    page = login("exe")
    open_library(page)

    empty = page.locator("[data-testid=roots-empty]")
    expect(empty).to_contain_text("No folder roots yet")
    expect(empty).to_contain_text(f"Register one inside {os.path.realpath(stack.scripts)}")
    expect(empty).to_contain_text("Only an admin can register folder roots")
    expect(page.locator("#scripts-body")).to_contain_text("No scripts yet")
    expect(page.locator("[data-testid=duplicates]")).to_contain_text("No duplicates")
    expect(page.locator('[data-stat="total_scripts"]')).to_have_text("0")
    screenshot(page, "library-empty")
    no_page_errors(page)


def test_register_a_root_with_the_folder_picker_scan_it_and_watch_the_progress(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    folder = f"bulk-{token()}"
    scripts = Path(os.path.realpath(stack.scripts))  # what the API shows: resolved paths
    target = scripts / folder
    target.mkdir()
    # Enough files that the reading phase lasts a while (two seconds or more here).
    for i in range(10_000):
        (target / f"job_{i:05d}.py").write_text(f'"""Job {i}."""\nprint({i})\n')
    page = login("adm")
    open_library(page)

    page.click("[data-testid=root-new]")
    expect(page.locator("#root-form")).to_be_visible()
    expect(page.locator("[data-testid=root-name]")).to_be_focused()
    page.click("[data-testid=root-browse]")
    picker = page.locator("[data-testid=folder-picker]")
    expect(picker).to_be_visible()
    picker.locator(f".picker-item[data-path='{scripts}']").click()
    expect(picker.locator("#picker-current")).to_have_text(str(scripts))
    picker.locator(f".picker-item[data-path='{target}']").click()
    expect(picker.locator("#picker-current")).to_have_text(str(target))
    expect(picker.locator(".picker-file").first).to_contain_text("job_00000.py")
    sheet_shot(page, "library-folder-picker")
    page.click("[data-testid=picker-choose]")
    expect(picker).to_be_hidden()
    expect(page.locator("[data-testid=root-browse]")).to_be_focused()
    expect(page.locator("[data-testid=root-path]")).to_have_value(str(target))
    expect(page.locator("[data-testid=root-name]")).to_have_value(folder)

    # Record every state the progress bar goes through: the scan is quick.
    page.evaluate(
        """() => {
        window.seenProgress = [];
        new MutationObserver(() => {
          for (const bar of document.querySelectorAll('[data-testid=scan-progress]')) {
            window.seenProgress.push([bar.dataset.state, bar.getAttribute('aria-valuenow'),
                                      bar.getAttribute('aria-valuetext')]);
          }
        }).observe(document.getElementById('roots-list'), {childList: true, subtree: true});
    }"""
    )
    page.click("[data-testid=root-submit]")  # "Scan right away" is ticked by default
    item = page.locator("[data-testid=root]", has_text=folder)
    expect(item.locator("[data-testid=scan-progress]")).to_be_visible()
    expect(item.locator("[data-action=scan]")).to_be_disabled()
    summary = item.locator("[data-testid=scan-summary]")
    expect(summary).to_have_attribute("data-state", "completed", timeout=RUN_TIMEOUT)
    expect(summary.locator("[data-counter=added]")).to_have_text("10,000 added")
    expect(item.locator("[data-testid=root-script-count]")).to_have_text("10,000 scripts")
    seen: list[list[Any]] = page.evaluate("window.seenProgress")
    assert seen, "the progress bar never showed"
    reading = [s for s in seen if s[1] is not None and s[2].startswith("Reading")]
    assert reading, f"no 'Reading n of 10,000 files' progress was shown: {seen[:20]}"
    assert all(0 <= int(s[1]) <= 100 for s in reading)
    # The new scripts are listed (paginated: 25 per page).
    expect(page.locator("#pager-info")).to_contain_text("of")
    screenshot(page, "library-after-scan")

    # A rescan finds every file unchanged.
    item.locator("[data-action=scan]").click()
    expect(summary.locator("[data-counter=unchanged]")).to_have_text("10,000 unchanged", timeout=RUN_TIMEOUT)
    expect(item.locator("[data-action=scan]")).to_have_text("Rescan")
    no_page_errors(page)


def test_without_the_live_feed_a_scan_is_followed_by_polling(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"first.sh": "echo first\n"})
    write_script(stack, f"{root['name']}/second.sh", "echo second\n")
    page = login("usr")
    # The feed's socket is refused from now on: the page must poll the scan instead.
    page.route_web_socket(re.compile(r"/ws/runs/"), lambda ws: ws.close())
    open_library(page)
    expect(page.locator("#live-indicator")).to_have_attribute(
        "data-state", re.compile("connecting|reconnecting")
    )

    item = page.locator(f"#roots-list [data-root-id='{root['id']}']")
    with page.expect_request(re.compile(rf"/api/library/folder-roots/{root['id']}/scan/[0-9a-f-]{{36}}$")):
        item.locator("[data-action=scan]").click()
    summary = item.locator("[data-testid=scan-summary]")
    expect(summary.locator("[data-counter=added]")).to_have_text("1 added")
    expect(summary.locator("[data-counter=unchanged]")).to_have_text("1 unchanged")
    expect(item.locator("[data-testid=root-script-count]")).to_have_text("2 scripts")
    no_page_errors(page)


def test_registering_shows_the_apis_errors_and_removing_a_root_asks_first(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"one.sh": "echo one\n"})
    page = login("adm")
    open_library(page)

    page.click("[data-testid=root-new]")
    page.fill("[data-testid=root-name]", "outside")
    page.fill("[data-testid=root-path]", "/etc")
    page.click("[data-testid=root-submit]")
    expect(page.locator('#root-form [data-error-for="path"]')).to_contain_text("outside the allowed roots")
    expect(page.locator("[data-testid=root-path]")).to_have_attribute("aria-invalid", "true")
    page.click("#root-cancel")
    expect(page.locator("#root-form")).to_be_hidden()

    item = page.locator(f"#roots-list [data-root-id='{root['id']}']")
    item.locator("[data-action=delete-root]").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("1 indexed script")
    expect(page.locator("#confirm-cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(item).to_be_visible()

    item.locator("[data-action=delete-root]").click()
    page.click("[data-testid=confirm-ok]")
    expect(item).to_have_count(0)
    assert api.get(f"/api/library/folder-roots/{root['id']}").status_code == 404
    no_page_errors(page)


def test_tags_are_created_attached_and_filter_the_list(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"backup.py": ROTATE, "report.sh": "# Report.\necho report\n"})
    backup, report = root["scripts"]["backup.py"], root["scripts"]["report.sh"]
    tag = f"nightly-{token()}"
    page = login("usr")
    open_library(page, f"?root_id={root['id']}")
    expect(page.locator("#scripts-body tr")).to_have_count(2)

    page.fill("[data-testid=tag-name]", tag)
    page.fill("[data-testid=tag-color]", "#c5283d")
    page.click("[data-testid=tag-create]")
    chip = page.locator(f"#tags-list .tag-chip[data-tag='{tag}']")
    expect(chip).to_be_visible()

    row(page, backup).locator("[data-action=open-name]").click()
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("#sheet-title")).to_have_text("backup.py")
    sheet.locator("[data-testid=tag-select]").select_option(label=tag)
    sheet.locator("[data-testid=tag-attach]").click()
    expect(sheet.locator(f"[data-testid=sheet-tags] .tag-chip[data-tag='{tag}']")).to_be_visible()
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    expect(row(page, backup).locator(f".tag-chip[data-tag='{tag}']")).to_be_visible()
    expect(chip.locator("xpath=..")).to_contain_text("1 script")

    # The tag filter (a select) and the tag chips filter the same way.
    page.select_option("[data-testid=filter-tag]", label=tag)
    expect(page.locator("#scripts-body tr")).to_have_count(1)
    expect(row(page, backup)).to_be_visible()
    assert "tag=" in page.url
    page.select_option("[data-testid=filter-tag]", value="")
    expect(row(page, report)).to_be_visible()
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#scripts-body tr")).to_have_count(1)
    expect(row(page, report)).to_have_count(0)
    page.evaluate("window.scrollTo(0, 0)")  # (the chip scrolled to the list)
    screenshot(page, "library-tag-filter")
    no_page_errors(page)


def test_the_content_viewer_highlights_the_code_server_side(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    body = ROTATE + "# <b>not bold</b> & <script>alert(1)</script>\n"
    root = indexed_root(api, stack, {"rotate.py": body})
    script = root["scripts"]["rotate.py"]
    page = login("ro")
    open_library(page, f"?root_id={root['id']}")

    row(page, script).locator("[data-action=open]").click()
    expect(page).to_have_url(re.compile(f"#script={script['id']}$"))
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("#sheet-title")).to_have_text("rotate.py")
    # Parameters read from argparse, with the positional one marked required.
    expect(sheet.locator(".params-table tbody tr")).to_have_count(4)
    expect(sheet.locator(".params-table")).to_contain_text("required")

    sheet.locator("[data-testid=tab-content]").click()
    viewer = sheet.locator("[data-testid=content-viewer]")
    expect(viewer).to_contain_text("parser.add_argument")
    # Pygments' markup with its (scoped) stylesheet: keywords are coloured.
    expect(viewer.locator(".highlight .kn").first).to_have_text("import")
    expect(viewer.locator("td.linenos")).to_contain_text("12")
    color = viewer.locator(".highlight .kn").first.evaluate("n => getComputedStyle(n).color")
    assert color != "rgb(23, 32, 46)", "the Pygments stylesheet was not applied"
    # The file's text is text: nothing in it became markup.
    expect(viewer).to_contain_text("<b>not bold</b> & <script>alert(1)</script>")
    expect(viewer.locator("b, script")).to_have_count(0)
    sheet_shot(page, "library-content")

    # The sheet is keyboard-usable: arrows move between tabs, Escape closes it.
    page.keyboard.press("ArrowRight")
    expect(sheet.locator("[data-testid=tab-history]")).to_be_focused()
    expect(sheet.locator("#panel-history")).to_contain_text("No changes yet")
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    expect(row(page, script).locator("[data-action=open]")).to_be_focused()
    # Playwright learns of the replaceState through an event: wait for it, do not race it.
    expect(page).not_to_have_url(re.compile("#script"))
    no_page_errors(page)


def test_the_content_viewer_explains_why_a_binary_file_is_not_shown(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"blob.py": bytes(range(256)) * 8})
    script = root["scripts"]["blob.py"]
    page = login("ro")
    page.goto(f"/library/?root_id={root['id']}#script={script['id']}")

    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("#sheet-title")).to_have_text("blob.py")
    sheet.locator("[data-testid=tab-content]").click()
    error = sheet.locator("[data-testid=content-error]")
    expect(error).to_have_attribute("data-status", "415")
    expect(error).to_contain_text("Not a text file")
    expect(error).to_contain_text("blob.py is a binary file")
    expect(sheet.locator("[data-testid=content-viewer]")).to_have_count(0)
    sheet_shot(page, "library-content-binary")
    no_page_errors(page)


def test_a_script_that_does_not_parse_is_flagged_in_the_list_and_its_sheet(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"broken.py": 'print "hello"\n', "fine.py": 'print("hello")\n'})
    broken, fine = root["scripts"]["broken.py"], root["scripts"]["fine.py"]
    assert broken["parse_error"] and not fine["parse_error"]
    page = login("ro")
    page.goto(f"/library/?root_id={root['id']}")
    expect(row(page, broken).locator("[data-badge=parse-error]")).to_have_text("parse error")
    expect(row(page, fine).locator("[data-badge=parse-error]")).to_have_count(0)

    row(page, broken).locator("a").first.click()
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator("[data-alert=parse-error]")).to_contain_text("It does not parse: SyntaxError")
    no_page_errors(page)


def test_editing_the_status_and_owner_is_saved_and_audited(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"tool.sh": "# A tool.\necho tool\n"})
    script = root["scripts"]["tool.sh"]
    page = login("usr")
    open_library(page, f"?root_id={root['id']}")

    row(page, script).locator("[data-action=open-name]").click()
    form = page.locator("[data-testid=meta-form]")
    form.locator("[data-testid=meta-status]").select_option("deprecated")
    form.locator("[data-testid=meta-owner]").fill("ops-team")
    form.locator("input[name=max_concurrent]").fill("0")
    form.locator("[data-testid=meta-save]").click()
    # The API's validation error is shown next to its field.
    expect(form.locator('[data-error-for="max_concurrent"]')).to_contain_text("greater than or equal to 1")
    form.locator("input[name=max_concurrent]").fill("2")
    form.locator("[data-testid=meta-save]").click()
    expect(form.locator(".save-state")).to_contain_text("Saved")
    expect(page.locator("#sheet-badges [data-badge=lib-status]")).to_have_text("deprecated")
    saved = api.get(f"/api/library/scripts/{script['id']}").json()
    assert (saved["status"], saved["owner"], saved["max_concurrent"]) == ("deprecated", "ops-team", 2)

    page.locator("[data-testid=tab-history]").click()
    history = page.locator("[data-testid=history]")
    expect(history.locator("[data-action=update]")).to_have_count(1)
    expect(history).to_contain_text("active → deprecated")
    expect(history).to_contain_text("by usr")
    sheet_shot(page, "library-history")
    page.keyboard.press("Escape")
    expect(row(page, script).locator("[data-badge=lib-status]")).to_have_text("deprecated")

    page.select_option("[data-testid=filter-status]", "active")
    expect(row(page, script)).to_have_count(0)
    page.select_option("[data-testid=filter-status]", "deprecated")
    expect(row(page, script)).to_be_visible()
    no_page_errors(page)


def test_run_a_script_from_the_library_with_its_parameters_as_fields(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"rotate.py": ROTATE})
    script = root["scripts"]["rotate.py"]
    page = login("exe")
    open_library(page, f"?root_id={root['id']}")

    row(page, script).locator("[data-action=run]").click()
    expect(page).to_have_url(re.compile(rf"/\?script_id={script['id']}$"))
    launch = page.locator("[data-testid=library-launch]")
    expect(launch.locator("[data-testid=library-relpath]")).to_have_text("rotate.py")
    expect(page.locator("[data-testid=script-path]")).to_have_value(script["path"])
    params = page.locator("#library-params")
    expect(params.get_by_label("folder")).to_be_focused()
    expect(params.get_by_label("--days")).to_have_attribute("placeholder", "default: 7")
    expect(params.locator("select")).to_contain_text("default (gzip)")
    expect(page.locator("[data-testid=library-archived]")).to_be_hidden()
    screenshot(page, "library-run-form")

    # A required positional parameter left empty is caught before anything is sent.
    page.click("[data-testid=launch]")
    expect(params.locator('[data-error-for="param:0"]')).to_contain_text("folder is required")

    params.get_by_label("folder").fill("/var/log/my app")
    params.get_by_label("--days").fill("3")
    params.locator("select").select_option("zstd")
    params.get_by_label("--dry-run").check()
    page.click("[data-testid=dry-run]")
    plan = page.locator("[data-testid=plan]")
    expect(plan).to_contain_text("rotate.py --days 3 --mode zstd --dry-run '/var/log/my app'")

    page.click("[data-testid=launch]")
    # As a typed path: the form stays, a toast links to the run.
    page.get_by_role("link", name="Watch it live →").click()
    expect(page).to_have_url(RUN_PAGE)
    expect(page.locator("[data-testid=terminal]")).to_contain_text(
        "rotating /var/log/my app for 3 days with zstd dry=True", timeout=RUN_TIMEOUT
    )
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert api.get(f"/api/runs/{run_id}").json()["script"] == script["id"]

    # The script's detail lists the run, linked to its page.
    page.goto(f"/library/?root_id={root['id']}#script={script['id']}")
    page.locator("[data-testid=tab-runs]").click()
    runs = page.locator("[data-testid=script-runs]")
    expect(runs.locator(f"tr[data-id='{run_id}'] a")).to_have_attribute("href", f"/runs/{run_id}/")
    expect(runs.locator(f"tr[data-id='{run_id}'] [data-badge=status]")).to_have_text("completed")
    no_page_errors(page)


def test_an_archived_script_warns_and_only_an_admin_may_force_it(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"old.sh": "echo still works\n"})
    script = root["scripts"]["old.sh"]
    assert api.patch(f"/api/library/scripts/{script['id']}", json={"status": "archived"}).status_code == 200

    executor = login("exe")
    executor.goto(f"/?script_id={script['id']}")
    warning = executor.locator("[data-testid=library-archived]")
    expect(warning).to_be_visible()
    expect(executor.locator("[data-testid=library-force]")).to_have_count(0)
    executor.click("[data-testid=launch]")
    expect(executor.locator('#launch-form [data-error-for="non_field_errors"]')).to_contain_text("archived")

    admin = login("adm")
    admin.goto(f"/?script_id={script['id']}")
    admin.check("[data-testid=library-force]")
    screenshot(admin, "library-run-archived")
    admin.click("[data-testid=launch]")
    admin.get_by_role("link", name="Watch it live →").click()
    expect(admin).to_have_url(RUN_PAGE)
    expect(admin.locator("[data-testid=terminal]")).to_contain_text("still works", timeout=RUN_TIMEOUT)
    no_page_errors(admin)


def test_a_readonly_user_sees_no_write_controls(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"a.py": ROTATE, "copy/a.py": ROTATE})
    script = root["scripts"]["a.py"]
    tag = api.post("/api/library/tags", json={"name": f"ro-{token()}", "color": "#12805c"}).json()
    api.post(f"/api/library/scripts/{script['id']}/tags/{tag['id']}")
    page = login("ro")
    open_library(page, f"?root_id={root['id']}")

    expect(row(page, script)).to_be_visible()
    for control in ("root-new", "root-form", "tag-form", "folder-picker"):
        expect(page.locator(f"#{control}, [data-testid={control}]")).to_have_count(0)
    for action in ("scan", "delete-root", "edit-tag", "delete-tag", "run"):
        expect(page.locator(f"[data-action={action}]")).to_have_count(0)
    # Duplicates are for everyone: the two copies of a.py.
    expect(page.locator("[data-testid=dup-group]", has_text="a.py")).to_be_visible()

    row(page, script).locator("[data-action=open-name]").click()
    sheet = page.locator("[data-testid=script-sheet]")
    expect(sheet.locator(".curation-readonly")).to_contain_text("active")
    expect(sheet.locator("form, select, textarea, input")).to_have_count(0)
    expect(sheet.locator(".tag-remove, [data-testid=tag-attach]")).to_have_count(0)
    expect(sheet.locator("[data-action=run]")).to_have_count(0)
    expect(sheet.locator(f"[data-testid=sheet-tags] .tag-chip[data-tag='{tag['name']}']")).to_be_visible()
    sheet_shot(page, "library-sheet-readonly")
    page.keyboard.press("Escape")
    screenshot(page, "library-readonly")

    # Narrow screens: the page's content fits the width (the top bar is base.html's).
    page.set_viewport_size({"width": 420, "height": 900})
    expect(row(page, script)).to_be_visible()
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('#main *')]
            .filter((n) => !n.closest('dialog') && n.getBoundingClientRect().right > window.innerWidth + 1)
            .map((n) => n.tagName + '.' + n.className)"""
    )
    assert not overflow, f"wider than a narrow screen: {overflow[:5]}"
    screenshot(page, "library-narrow")
    no_page_errors(page)


def test_parameter_values_are_checked_in_the_browser_and_by_the_server_before_a_run_is_queued(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"rotate.py": ROTATE})
    script = root["scripts"]["rotate.py"]
    before = api.get("/api/runs", params={"script": script["id"]}).json()["count"]
    page = login("exe")
    page.goto(f"/?script_id={script['id']}")
    params = page.locator("#library-params")
    params.get_by_label("folder").fill("/var/log")

    # The browser: an int parameter given 1.5 never reaches the server.
    params.get_by_label("--days").fill("1.5")
    page.click("[data-testid=launch]")
    expect(params.locator('[data-error-for="param:1"]')).to_contain_text("invalid int value: '1.5'")
    expect(params.get_by_label("--days")).to_have_attribute("aria-invalid", "true")

    # The server: the same mistake typed as a free argument is refused by argparse's own
    # rules before a run is queued, and shown on the parameter's field.
    params.get_by_label("--days").fill("")
    page.locator("#launch-form [name=args]").fill("--days 1.5")
    page.click("[data-testid=launch]")
    expect(params.locator('[data-error-for="param:1"]')).to_contain_text(
        "argument --days: invalid int value: '1.5'"
    )
    expect(page.locator('#launch-form [data-error-for="args"]')).to_contain_text(
        "would refuse these arguments"
    )
    expect(page).to_have_url(re.compile(rf"/\?script_id={script['id']}$"))  # still on the form
    assert api.get("/api/runs", params={"script": script["id"]}).json()["count"] == before

    page.locator("#launch-form [name=args]").fill("")
    params.get_by_label("--days").fill("2")
    page.click("[data-testid=launch]")
    page.get_by_role("link", name="Watch it live →").click()
    expect(page).to_have_url(RUN_PAGE)
    no_page_errors(page)
