"""The Runs page, the run page and the System page in a real Chromium against a real stack."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import RUN_TIMEOUT, Held, no_page_errors, screenshot, start_run, write_script
from tests.integration.helpers import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.browser

RUN_PAGE = re.compile(r"/runs/[0-9a-f-]{36}/$")

# Prints, then waits for the test to create a flag file: the first lines can only be on
# the page *while* the run is still running, so seeing them proves live streaming.
GATED = r"""
import pathlib, sys, time

flag = pathlib.Path(__file__).with_name("go-" + sys.argv[1])
print("\x1b[32mready\x1b[0m for " + sys.argv[1], flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
deadline = time.monotonic() + 120
while not flag.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("<b>done</b> & finished", flush=True)
"""


def status_badge(page: Page, scope: str = "#run-badges") -> object:
    return page.locator(f"{scope} [data-badge=status]")


def test_launch_from_the_form_and_watch_the_output_live(login: Callable[[str], Page], stack: Stack) -> None:
    write_script(stack, "gated.py", GATED)
    token = uuid.uuid4().hex[:8]
    page = login("exe")

    page.fill("[data-testid=script-path]", "gated.py")
    page.fill("[data-testid=args]", token)
    page.click("[data-testid=launch]")
    page.get_by_role("link", name="Watch it live →").click()

    expect(page).to_have_url(RUN_PAGE)
    terminal = page.locator("[data-testid=terminal]")
    expect(terminal).to_contain_text(f"ready for {token}", timeout=RUN_TIMEOUT)
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("running")
    # ANSI colours become classes; stderr lines are marked.
    expect(terminal.locator(".ansi-fg-32")).to_have_text("ready")
    expect(terminal.locator(".s-stderr")).to_contain_text("a warning on stderr")
    screenshot(page, "run-live")

    (stack.scripts / f"go-{token}").touch()

    # Text from the script is shown as text, never parsed as HTML.
    expect(terminal).to_contain_text("<b>done</b> & finished", timeout=RUN_TIMEOUT)
    expect(terminal.locator("b")).to_have_count(0)
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed")
    expect(page.locator("#run-badges [data-badge=run]")).to_have_text("success")
    expect(page.locator("[data-testid=exit-code]")).to_have_text("0")
    expect(page.locator("[data-testid=timeline] [data-kind=success]")).to_be_visible()
    expect(page.locator("#attempts-body tr")).to_have_count(1)
    screenshot(page, "run-detail")
    no_page_errors(page)


def test_the_launch_form_shows_api_errors_next_to_fields_and_the_dry_run_plan(
    login: Callable[[str], Page],
) -> None:
    page = login("exe")

    page.fill("[data-testid=script-path]", "examples/missing.py")
    page.click("[data-testid=launch]")
    expect(page.locator('[data-error-for="script_path"]')).to_contain_text("does not exist")

    page.fill("[data-testid=script-path]", "examples/greet.py")
    page.fill("[data-testid=args]", "'Ada Lovelace' --shout")
    page.click("#advanced summary")
    page.fill("textarea[name=env_vars]", "LD_PRELOAD=/tmp/x.so")
    page.click("[data-testid=launch]")
    expect(page.locator('[data-error-for="env_vars"]')).to_contain_text("LD_PRELOAD")

    page.fill("textarea[name=env_vars]", "GREETING=hello there")
    page.check("#retry-toggle")
    page.click("[data-testid=dry-run]")
    plan = page.locator("[data-testid=plan]")
    expect(plan).to_be_visible()
    # args were split like a shell would, server-side.
    expect(plan).to_contain_text("greet.py 'Ada Lovelace' --shout")
    expect(plan).to_contain_text("GREETING")
    expect(plan).to_contain_text("up to 3 (exponential)")
    screenshot(page, "runs-launch-form")
    no_page_errors(page)


def test_enter_in_a_launch_form_field_launches_a_real_run_not_a_dry_run(
    login: Callable[[str], Page], api: httpx.Client, stack: Stack
) -> None:
    script = f"enter-{uuid.uuid4().hex[:8]}.py"
    write_script(stack, script, 'print("launched with Enter")\n')
    page = login("exe")

    page.fill("[data-testid=script-path]", script)
    page.locator("[data-testid=script-path]").press("Enter")

    # A run was queued (a dry run queues nothing and shows its plan instead).
    page.get_by_role("link", name="Watch it live →").wait_for()
    expect(page.locator("[data-testid=plan]")).to_be_hidden()
    runs = api.get("/api/runs", params={"search": script}).json()["results"]
    assert len(runs) == 1, runs
    assert runs[0]["script_path"].endswith(script)
    row = page.locator(f"#runs-body tr[data-id='{runs[0]['id']}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)

    # Enter in another field (the arguments) launches too; the Dry run button still only plans.
    def launched() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.get("/api/runs", params={"search": script}).json()["results"]
        return found

    page.fill("[data-testid=args]", "--again")
    page.locator("[data-testid=args]").press("Enter")
    second = wait_until(
        lambda: [run for run in launched() if run["id"] != runs[0]["id"]], what="a second run"
    )
    expect(page.locator(f"#runs-body tr[data-id='{second[0]['id']}']")).to_be_visible()
    page.click("[data-testid=dry-run]")
    expect(page.locator("[data-testid=plan]")).to_be_visible()
    assert len(launched()) == 2
    no_page_errors(page)


def test_runs_table_updates_live_and_a_ticker_is_paused_stopped_and_restarted(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    run = start_run(api, "examples/ticker.py", args=["--ticks", "900", "--interval", "0.2"])
    page = login("exe")

    row = page.locator(f"#runs-body tr[data-id='{run['id']}']")
    expect(row.locator("[data-badge=status]")).to_have_text("running", timeout=RUN_TIMEOUT)
    expect(page.locator('[data-stat="running"]')).not_to_have_text("0")

    # The row is redrawn as the run's counters move; its buttons are kept while the
    # actions that apply stay the same, so a click straddling a redraw is not lost.
    row.locator("[data-action=pause]").evaluate(
        "b => { b.dataset.seen = '1'; b.closest('tr').dataset.old = '1'; }"
    )
    expect(row).not_to_have_attribute("data-old", "1", timeout=RUN_TIMEOUT)
    expect(row.locator("[data-action=pause]")).to_have_attribute("data-seen", "1")
    # ... and so are they when the whole table is loaded again (another run was created).
    row.locator("[data-action=pause]").evaluate("b => { b.dataset.seen = '2'; }")
    other = start_run(api, "examples/hello.py")
    expect(page.locator(f"#runs-body tr[data-id='{other['id']}']")).to_have_count(1, timeout=RUN_TIMEOUT)
    expect(row.locator("[data-action=pause]")).to_have_attribute("data-seen", "2")

    # The pause's answer is the run as the request left it (not paused yet); the feed may
    # have said that the runner paused it before that answer arrives. Held back here until
    # it has, the answer must not undo it.
    pause_answered_late(
        page, run["id"], row.locator("[data-action=pause]"), row.locator("[data-value=paused]")
    )
    expect(row.locator("[data-action=resume]")).to_be_enabled()
    screenshot(page, "runs")
    row.locator("[data-action=resume]").click()
    expect(row.locator("[data-value=paused]")).to_have_count(0)

    row.locator("[data-action=details]").click()
    expect(page).to_have_url(re.compile(f"/runs/{run['id']}/$"))
    expect(page.locator("[data-testid=terminal]")).to_contain_text("tick", timeout=RUN_TIMEOUT)
    actions = page.locator("#run-actions")

    # Here too, a late answer to a pause does not undo what the run's socket said.
    pause_answered_late(
        page,
        run["id"],
        actions.locator("[data-action=pause]"),
        page.locator("#run-badges [data-value=paused]"),
    )
    actions.locator("[data-action=resume]").click()
    expect(page.locator("#run-badges [data-value=paused]")).to_have_count(0)

    actions.locator("[data-action=stop]").click()
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("cancelled", timeout=RUN_TIMEOUT)
    # A graceful stop reads "stopped" (the API's run_status stays "killed").
    expect(page.locator("#run-badges [data-badge=run]")).to_have_text("stopped")
    expect(actions.locator("[data-action=stop]")).to_be_disabled()
    expect(actions.locator("[data-action=kill]")).to_be_disabled()
    expect(page.locator("[data-testid=timeline] [data-kind=stop_requested]")).to_be_visible()
    screenshot(page, "run-stopped")

    actions.locator("[data-action=restart]").click()
    page.wait_for_url(lambda url: bool(RUN_PAGE.search(url)) and run["id"] not in url)
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert api.get(f"/api/runs/{new_id}").json()["restarted_from"] == run["id"]
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("running", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-testid=terminal]")).to_contain_text("tick", timeout=RUN_TIMEOUT)

    # A kill asks first: the first click only arms the button.
    kill = actions.locator("[data-action=kill]")
    kill.click()
    expect(kill).to_have_text("Really kill?")
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("running")
    kill.click()
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("cancelled", timeout=RUN_TIMEOUT)
    expect(page.locator("#run-badges [data-badge=run]")).to_have_text("killed")
    no_page_errors(page)


def pause_answered_late(page: Page, run_id: str, button: Locator, badge: Locator) -> None:
    """Click ``button`` (pause) and hold its answer back until the page's socket has shown
    the run paused (``badge``); then answer as the request left the run (not paused).
    The badge must stay."""
    with Held(page, f"**/api/runs/{run_id}/pause") as held:
        button.click()
        answer = held.route().fetch()
        assert answer.status == 200, answer.text()
        expect(badge).to_be_visible()  # through the socket
        held.route().fulfill(response=answer, json={**answer.json(), "paused": False})
    expect(page.locator("#toasts .toast-success", has_text="Paused: ticker.py")).to_be_visible()
    # (the answer is merged, or not, as the toast shows: look now, before any later update)
    assert badge.count() == 1


def test_a_failed_run_shows_its_error_summary(login: Callable[[str], Page], api: httpx.Client) -> None:
    run = start_run(api, "examples/fail.py")
    page = login("exe")
    page.goto(f"/runs/{run['id']}/")

    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("failed", timeout=RUN_TIMEOUT)
    box = page.locator("#error-box")
    expect(box).to_be_visible()
    expect(box).to_contain_text("3")
    expect(box.locator("#error-snippet")).to_contain_text("the input file is missing")
    expect(page.locator("[data-testid=exit-code]")).to_have_text("3")
    screenshot(page, "run-failed")
    no_page_errors(page)


def test_a_readonly_user_sees_no_launch_form_and_no_action_buttons(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    run = start_run(api, "examples/hello.py")
    page = login("ro")

    expect(page.locator("#launch-form")).to_have_count(0)
    row = page.locator(f"#runs-body tr[data-id='{run['id']}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-action=logs]")).to_be_visible()
    expect(row.locator("button")).to_have_count(0)
    screenshot(page, "runs-readonly")

    row.locator("[data-action=details]").click()
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-testid=terminal]")).to_contain_text("Hello from ScriptOps!")
    expect(page.locator("#run-actions button")).to_have_count(0)
    no_page_errors(page)


def test_the_system_page_shows_the_host_and_the_workers(login: Callable[[str], Page]) -> None:
    page = login("ro")
    page.get_by_role("link", name="System").click()

    expect(page).to_have_url(re.compile(r"/system/?$"))
    expect(page.locator('[data-sys="workers-configured"]')).to_have_text("2")
    expect(page.locator('[data-sys="cpu-count"]')).to_contain_text("core")
    expect(page.locator('[data-sys="mem-percent"]')).to_have_text(re.compile(r"^\d+$"))
    refreshed = page.locator("#refresh-state")
    expect(refreshed).to_contain_text("Updated")
    # It keeps refreshing (every 2 s): the "Updated hh:mm:ss" stamp moves on.
    first = refreshed.text_content()
    expect(refreshed).not_to_have_text(first or "")
    expect(refreshed).to_contain_text("Updated")
    screenshot(page, "system")
    no_page_errors(page)


def test_pages_need_a_session_and_unknown_runs_are_a_friendly_404(
    login: Callable[[str], Page], stack: Stack
) -> None:
    anonymous = httpx.get(f"{stack.url}/system/", follow_redirects=False)
    assert anonymous.status_code == 302
    assert anonymous.headers["location"].startswith("/login/?next=/system/")

    page = login("ro")
    response = page.goto(f"/runs/{uuid.uuid4()}/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Run not found")).to_be_visible()


def test_only_user_and_admin_roles_may_delete_a_finished_run(
    login: Callable[[str], Page], api: httpx.Client, stack: Stack
) -> None:
    run = start_run(api, "examples/hello.py")

    executor = login("exe")
    executor.goto(f"/runs/{run['id']}/")
    expect(executor.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)
    expect(executor.locator("#run-actions [data-action=restart]")).to_be_visible()
    expect(executor.locator("#run-actions [data-action=remove]")).to_have_count(0)

    page = login("usr")
    page.goto(f"/runs/{run['id']}/")
    delete = page.locator("#run-actions [data-action=remove]")
    expect(delete).to_be_enabled()
    delete.click()
    expect(delete).to_have_text("Really delete?")
    delete.click()
    expect(page).to_have_url(f"{stack.url}/")
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.locator(f"#runs-body tr[data-id='{run['id']}']")).to_have_count(0)
    assert api.get(f"/api/runs/{run['id']}").status_code == 404
    no_page_errors(page)


def test_runs_table_filters_selects_and_shows_progress_arguments_and_the_task(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    token = uuid.uuid4().hex[:8]
    name = f"eta-{token}.sh"
    write_script(stack, name, 'sleep "$1"\necho "slept $1"\n')
    # Three successful runs of about 2 s: what "usual" means for this script.
    done = [start_run(api, name, args=["2"]) for _ in range(3)]
    for run in done:
        wait_until(
            lambda run=run: api.get(f"/api/runs/{run['id']}").json()["status"] == "completed", timeout=60
        )
    live = start_run(api, name, args=["90"])
    task = api.post(
        "/api/scheduler/tasks",
        json={
            "name": f"eta-task-{token}",
            "script_path": name,
            "args": ["0"],
            "schedule_type": "interval",
            "interval_seconds": 3600,
        },
    )
    assert task.status_code == 201, task.text
    fired = api.post(f"/api/scheduler/tasks/{task.json()['id']}/run")
    assert fired.status_code in (200, 201, 202), fired.text

    page = login("adm")
    page.get_by_test_id("filter-script").fill(token)
    body = page.locator("#runs-body")
    expect(body.locator("tr[data-id]")).to_have_count(5)

    # A running row: its arguments, progress against the usual ~2 s, then "longer than usual".
    row = body.locator(f"tr[data-id='{live['id']}']")
    expect(row.get_by_test_id("run-args")).to_have_text("90")
    expect(row.get_by_test_id("run-progress")).to_be_visible(timeout=RUN_TIMEOUT)
    expect(row.get_by_test_id("run-progress")).to_contain_text(
        "running longer than usual", timeout=RUN_TIMEOUT
    )
    # Only the actions that apply: a running row can be stopped, a finished one only restarted.
    expect(row.locator("[data-action=stop]")).to_be_visible()
    # Restarting a live run ends it: the first click only asks.
    restart = row.locator("[data-action=restart]")
    restart.click()
    expect(restart).to_have_text("End it and restart?")
    assert api.get(f"/api/runs/{live['id']}").json()["status"] == "running"
    finished = body.locator(f"tr[data-id='{done[0]['id']}']")
    expect(finished.locator("[data-action=restart]")).to_be_visible()
    expect(finished.locator("[data-action=stop], [data-action=kill], [data-action=pause]")).to_have_count(0)
    # The scheduled task's run names its task.
    expect(body.get_by_test_id("run-task")).to_have_text(f"⏱ eta-task-{token}", timeout=RUN_TIMEOUT)

    # Source filter: only the scheduler's run.
    page.get_by_test_id("filter-source").select_option("scheduler")
    expect(body.locator("tr[data-id]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"source=scheduler"))
    page.get_by_test_id("filter-source").select_option("")
    # Group by script: one row, the newest.
    page.get_by_test_id("filter-latest").check()
    expect(body.locator("tr[data-id]")).to_have_count(1)
    page.get_by_test_id("filter-latest").uncheck()
    expect(body.locator("tr[data-id]")).to_have_count(5)

    # Bulk delete: the finished runs on the page; the running one cannot be selected.
    expect(row.locator("input[data-select]")).to_be_disabled()
    wait_until(
        lambda: all(
            r["status"] not in ("running", "queued") or r["id"] == live["id"]
            for r in api.get("/api/runs", params={"script_path": token}).json()["results"]
        ),
        timeout=60,
    )
    page.get_by_test_id("select-all").check()
    expect(page.get_by_test_id("bulk-bar")).to_contain_text("4 runs selected")
    page.get_by_test_id("bulk-delete").click()
    expect(page.get_by_test_id("bulk-delete")).to_have_text("Really delete them?")
    page.get_by_test_id("bulk-delete").click()
    expect(body.locator("tr[data-id]")).to_have_count(1)
    remaining = api.get("/api/runs", params={"script_path": token}).json()
    assert [r["id"] for r in remaining["results"]] == [live["id"]]
    api.post(f"/api/runs/{live['id']}/kill")
    no_page_errors(page)


def test_a_run_launched_from_the_form_says_it_came_from_the_dashboard(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    token = uuid.uuid4().hex[:8]
    write_script(stack, f"from-page-{token}.sh", "echo hi\n")
    page = login("exe")
    page.fill("[data-testid=script-path]", f"from-page-{token}.sh")
    page.click("[data-testid=launch]")
    page.get_by_test_id("filter-source").select_option("dashboard")
    page.get_by_test_id("filter-script").fill(token)
    expect(page.locator("#runs-body tr[data-id]")).to_have_count(1)
    run_id = page.locator("#runs-body tr[data-id]").get_attribute("data-id")
    assert api.get(f"/api/runs/{run_id}").json()["source"] == "dashboard"
    no_page_errors(page)


def test_the_script_path_field_searches_the_library_and_opens_the_chosen_scripts_form(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    token = uuid.uuid4().hex[:8]
    folder = f"picker-{token}"
    write_script(stack, f"{folder}/sync_{token}.py", PICKED)
    root = api.post("/api/library/folder-roots", json={"path": str(stack.scripts / folder), "name": folder})
    assert root.status_code == 201, root.text
    scan = api.post(f"/api/library/folder-roots/{root.json()['id']}/scan")
    assert scan.status_code in (200, 202), scan.text
    wait_until(lambda: api.get("/api/library/picker", params={"q": token}).json()["results"], timeout=60)

    page = login("exe")
    field = page.get_by_test_id("script-path")
    field.fill(token)
    picker = page.get_by_test_id("script-picker")
    expect(picker.get_by_role("option")).to_have_count(1)  # what was typed, not the recent list
    option = picker.get_by_role("option").first
    expect(option).to_contain_text(f"sync_{token}.py")
    expect(option).to_contain_text("python")
    expect(option).to_contain_text("Sync the mirrors.")
    expect(option).to_contain_text("never run")
    expect(field).to_have_attribute("aria-expanded", "true")

    # Keyboard: arrow down, Enter chooses (and does not launch).
    field.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    field.press("Enter")
    expect(page.get_by_test_id("library-relpath")).to_have_text(f"sync_{token}.py")
    expect(page).to_have_url(re.compile(r"script_id=\d+"))
    expect(page.locator("#library-params").get_by_label("--mirrors")).to_be_focused()
    expect(picker).to_be_hidden()

    page.locator("#library-params").get_by_label("--mirrors").fill("2")
    page.click("[data-testid=launch]")
    page.get_by_role("link", name="Watch it live →").click()
    expect(page.locator("[data-testid=terminal]")).to_contain_text("syncing 2 mirrors", timeout=RUN_TIMEOUT)

    # A typed path still works, and Escape closes the list.
    page.goto("/")
    field = page.get_by_test_id("script-path")
    field.fill("examples/hello")
    field.press("Escape")
    expect(page.get_by_test_id("script-picker")).to_be_hidden()

    # Typed before the page's script has run (a slow load): the picker searches what is there.
    with Held(page, re.compile(r"/js/runs[^/]*\.js")) as held:
        page.goto("/", wait_until="commit")
        field = page.get_by_test_id("script-path")
        field.fill(token)
        script = held.route()
        expect(page.get_by_test_id("script-picker")).to_be_hidden()
        script.continue_()
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option").first).to_contain_text(f"sync_{token}.py")
    no_page_errors(page)


PICKED = '''
"""Sync the mirrors."""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--mirrors", type=int, default=1)
print(f"syncing {parser.parse_args().mirrors} mirrors")
'''


PRESET_TOOL = '''
"""Print what it was given."""
import argparse, os

parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int, default=1)
print(f"count={parser.parse_args().count} token={os.environ.get('TOKEN')}")
'''


def test_presets_are_saved_from_the_form_and_launch_with_their_hidden_environment(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    token = uuid.uuid4().hex[:8]
    folder = f"presets-{token}"
    write_script(stack, f"{folder}/tool.py", PRESET_TOOL)
    root = api.post("/api/library/folder-roots", json={"path": str(stack.scripts / folder), "name": folder})
    assert root.status_code == 201, root.text
    api.post(f"/api/library/folder-roots/{root.json()['id']}/scan")

    def found() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api.get(
            "/api/library/scripts", params={"root_id": root.json()["id"]}
        ).json()["results"]
        return rows

    wait_until(found, timeout=60)
    script_id = found()[0]["id"]

    page = login("exe")
    page.goto(f"/?script_id={script_id}")
    params = page.locator("#library-params")
    params.get_by_label("--count").fill("3")
    page.locator("#advanced summary").click()
    page.locator("#launch-form [name=env_vars]").fill(f"TOKEN=secret-{token}")
    page.get_by_test_id("preset-save-open").click()
    page.get_by_test_id("preset-name").fill("nightly")
    page.get_by_test_id("preset-save").click()
    expect(page.get_by_test_id("preset-select")).to_have_value(re.compile(r"\d+"))
    expect(page.get_by_test_id("preset-env")).to_contain_text("TOKEN")
    assert f"secret-{token}" not in api.get(f"/api/library/scripts/{script_id}/presets").text

    # A fresh form: choosing the preset fills it; the launch adds the hidden environment.
    page.goto(f"/?script_id={script_id}")
    page.get_by_test_id("preset-select").select_option(label="nightly")
    expect(page.get_by_test_id("args")).to_have_value("--count 3")
    expect(page.locator("#launch-form [name=env_vars]")).to_have_value("")
    page.click("[data-testid=launch]")
    page.get_by_role("link", name="Watch it live →").click()
    expect(page.locator("[data-testid=terminal]")).to_contain_text(
        f"count=3 token=secret-{token}", timeout=RUN_TIMEOUT
    )

    # The script's sheet in the library lists it and launches the form filled with it.
    page.goto(f"/library/#script={script_id}")
    presets = page.get_by_test_id("sheet-presets")
    expect(presets).to_contain_text("nightly")
    expect(presets).to_contain_text("--count 3")
    presets.get_by_test_id("preset-launch").click()
    expect(page).to_have_url(re.compile(rf"script_id={script_id}&preset=\d+"))
    expect(page.get_by_test_id("args")).to_have_value("--count 3")
    expect(page.get_by_test_id("preset-env")).to_contain_text("TOKEN")

    # Deleting asks first.
    page.goto(f"/?script_id={script_id}")
    page.get_by_test_id("preset-select").select_option(label="nightly")
    page.get_by_test_id("preset-delete").click()
    page.get_by_test_id("preset-delete").click()
    expect(page.get_by_test_id("preset-select").locator("option")).to_have_count(1)
    assert api.get(f"/api/library/scripts/{script_id}/presets").json()["results"] == []
    no_page_errors(page)


def test_run_again_with_changes_prefills_the_form_and_keeps_hidden_values(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    token = uuid.uuid4().hex[:8]
    name = f"again-{token}.sh"
    write_script(stack, name, 'echo "args=$* token=$TOKEN"\n')
    first = start_run(api, name, args=["one"], timeout=45, env_vars={"TOKEN": f"t-{token}"})
    wait_until(lambda: api.get(f"/api/runs/{first['id']}").json()["status"] == "completed", timeout=60)

    page = login("exe")
    page.get_by_test_id("filter-script").fill(token)
    row = page.locator(f"#runs-body tr[data-id='{first['id']}']")
    row.locator("[data-action=rerun]").click()
    expect(page.get_by_test_id("rerun-note")).to_be_visible()
    expect(page.get_by_test_id("script-path")).to_have_value(re.compile(rf"{name}$"))
    expect(page.get_by_test_id("args")).to_have_value("one")
    expect(page.locator("#launch-form [name=timeout]")).to_have_value("45")
    expect(page.locator("#launch-form [name=env_vars]")).to_have_value("TOKEN=********")

    page.get_by_test_id("args").fill("two three")
    page.click("[data-testid=launch]")
    page.get_by_role("link", name="Watch it live →").click()
    expect(page.locator("[data-testid=terminal]")).to_contain_text(
        f"args=two three token=t-{token}", timeout=RUN_TIMEOUT
    )
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    fresh = api.get(f"/api/runs/{new_id}").json()
    assert (fresh["source"], fresh["restarted_from"], fresh["timeout"]) == ("rerun", first["id"], 45)
    no_page_errors(page)
