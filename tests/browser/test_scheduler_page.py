"""The Scheduler page in a real Chromium against a real stack."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import RUN_TIMEOUT, no_page_errors, screenshot, write_script

pytestmark = pytest.mark.browser

RUN_PAGE = re.compile(r"/runs/[0-9a-f-]{36}/$")


def create_task(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/scheduler/tasks", json=fields)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def task_row(page: Page, name: str) -> Any:
    return page.locator(f"#tasks-body tr[data-name='{name}']")


def open_new_task_form(page: Page) -> Any:
    page.click("[data-testid=new-task]")
    dialog = page.locator("[data-testid=task-dialog]")
    expect(dialog).to_be_visible()
    return dialog


def choose_schedule(dialog: Any, label: str) -> None:
    # The radios are drawn as a segmented control: the visible part is the label.
    dialog.locator("label.seg-opt", has_text=label).click()


def test_create_a_cron_and_an_interval_task_then_run_one_now(login: Callable[[str], Page]) -> None:
    page = login("usr")
    page.get_by_role("link", name="Scheduler").click()
    expect(page).to_have_url(re.compile(r"/scheduler/$"))
    expect(page.locator("#tasks-body")).to_contain_text("No scheduled tasks yet")
    expect(page.locator("[data-testid=graph-empty]")).to_be_visible()
    screenshot(page, "scheduler-empty")

    # A cron task: the preview shows the next fire times in the chosen zone as one types.
    dialog = open_new_task_form(page)
    dialog.locator("[data-testid=task-name]").fill("nightly-report")
    dialog.locator("input[name=description]").fill("Greets the night shift")
    dialog.locator("[data-testid=task-script-path]").fill("examples/greet.py")
    dialog.locator("[data-testid=task-args]").fill("'Night shift'")
    choose_schedule(dialog, "Cron")
    dialog.locator("[data-testid=task-timezone]").fill("Europe/Paris")
    dialog.locator("[data-testid=task-cron]").press_sequentially("30 2 * * *")
    preview = dialog.locator("[data-testid=cron-preview]")
    expect(preview.locator("[data-testid=cron-next] li")).to_have_count(5)
    expect(preview.locator("[data-testid=cron-next] li").first).to_contain_text("02:30")
    expect(preview).to_contain_text("Europe/Paris")
    screenshot(page, "scheduler-form-cron")
    dialog.locator("[data-testid=task-save]").click()
    expect(dialog).to_be_hidden()

    cron_row = task_row(page, "nightly-report")
    expect(cron_row.locator("[data-testid=schedule-text]")).to_contain_text("02:30")
    expect(cron_row.locator("[data-testid=schedule-text]")).to_contain_text("Europe/Paris")
    expect(cron_row.locator("[data-testid=next-run]")).to_have_text(re.compile(r"^in \d+"))

    # An interval task, with a webhook: its URL is shown once, with a copy button.
    dialog = open_new_task_form(page)
    dialog.locator("[data-testid=task-name]").fill("heartbeat")
    dialog.locator("[data-testid=task-script-path]").fill("examples/hello.py")
    choose_schedule(dialog, "Interval")
    dialog.locator("[data-testid=interval-value]").fill("15")
    dialog.locator("[data-testid=interval-unit]").select_option(label="minutes")
    dialog.locator("[data-testid=task-webhook]").check()
    dialog.locator("[data-testid=task-save]").click()
    expect(dialog).to_be_hidden()

    drawer = page.locator("[data-testid=task-drawer]")
    expect(drawer).to_be_visible()
    expect(drawer.locator("#drawer-title")).to_have_text("heartbeat")
    expect(drawer.locator("[data-testid=webhook-url]")).to_have_value(re.compile(r"^http://.+whk_"))
    expect(drawer.locator("[data-testid=copy-webhook]")).to_be_visible()
    screenshot(page, "scheduler-webhook-once")
    drawer.get_by_role("button", name="Done").click()
    expect(drawer.locator("[data-testid=webhook-once]")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    interval_row = task_row(page, "heartbeat")
    expect(interval_row.locator("[data-testid=schedule-text]")).to_contain_text("15 minutes")
    expect(interval_row.locator("[data-testid=next-run]")).to_have_text(re.compile(r"^in 1[45]m \d\ds$"))
    expect(page.locator('[data-stat="tasks"]')).to_have_text("2")
    screenshot(page, "scheduler")

    # Run now, then follow the run to its page.
    interval_row.locator("[data-action=run]").click()
    page.get_by_role("link", name="Watch it live →").click()
    expect(page).to_have_url(RUN_PAGE)
    expect(page.locator("#run-badges [data-badge=status]")).to_have_text("completed", timeout=RUN_TIMEOUT)

    # Back on the Scheduler page the run is the task's last run and is in its history.
    page.goto("/scheduler/")
    expect(task_row(page, "heartbeat").locator("[data-testid=last-run] [data-badge=status]")).to_have_text(
        "completed", timeout=RUN_TIMEOUT
    )
    task_row(page, "heartbeat").locator("[data-action=history]").click()
    history = page.locator("[data-testid=history]")
    expect(history.locator("tbody tr")).to_have_count(1)
    expect(history.locator("[data-testid=outcome]")).to_have_text("fired")
    expect(history).to_contain_text("manual")
    history.scroll_into_view_if_needed()
    screenshot(page, "scheduler-task")
    no_page_errors(page)


def test_a_bad_cron_shows_the_preview_error_and_the_field_error(login: Callable[[str], Page]) -> None:
    page = login("adm")
    page.goto("/scheduler/")
    dialog = open_new_task_form(page)
    dialog.locator("[data-testid=task-name]").fill("bad-cron")
    dialog.locator("[data-testid=task-script-path]").fill("examples/hello.py")
    choose_schedule(dialog, "Cron")
    dialog.locator("[data-testid=task-cron]").fill("61 * * * *")
    expect(dialog.locator("[data-testid=cron-error]")).to_be_visible()
    expect(dialog.locator("[data-testid=cron-next]")).to_have_count(0)

    dialog.locator("[data-testid=task-save]").click()
    expect(dialog.locator('[data-error-for="cron"]')).not_to_be_empty()
    expect(dialog.locator("[data-testid=task-cron]")).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_be_visible()
    screenshot(page, "scheduler-form-error")

    # Fixing it clears the preview error.
    dialog.locator("[data-testid=task-cron]").fill("*/5 * * * *")
    expect(dialog.locator("[data-testid=cron-next] li")).to_have_count(5)
    expect(dialog.locator("[data-testid=cron-error]")).to_have_count(0)
    dialog.locator("[data-testid=task-save]").click()
    expect(dialog).to_be_hidden()
    row = task_row(page, "bad-cron")
    expect(row.locator("[data-testid=schedule-text]")).to_have_text("every 5 minutes")

    # Edit: the form comes back filled in; the change shows in the row.
    row.locator("[data-action=edit]").click()
    expect(dialog.locator("[data-testid=task-cron]")).to_have_value("*/5 * * * *")
    expect(dialog.locator("[data-testid=cron-next] li")).to_have_count(5)
    dialog.locator("[data-testid=task-cron]").fill("0 6 * * 1-5")
    dialog.locator("[data-testid=task-save]").click()
    expect(dialog).to_be_hidden()
    expect(row.locator("[data-testid=schedule-text]")).to_contain_text("06:00")

    # Pause and enable from the row's switch.
    switch = row.locator("[data-action=toggle]")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(row.locator("[data-testid=next-run]")).to_have_count(0)
    expect(row).to_contain_text("paused")
    row.locator("[data-action=toggle]").click()
    expect(row.locator("[data-testid=next-run]")).to_have_text(re.compile(r"^in "))
    no_page_errors(page)


def test_the_enabled_switch_updates_the_row_the_summary_and_the_drawer_without_an_error(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    task = create_task(
        api, name="flip-me", script_path="examples/hello.py", schedule_type="interval", interval_seconds=3600
    )

    def summary() -> str:
        """The "Tasks" card's foot as the API's graph says it should read now."""
        nodes = api.get("/api/scheduler/graph").json()["nodes"]
        enabled = sum(1 for node in nodes if node["enabled"])
        return f"{enabled} enabled · {len(nodes) - enabled} paused"

    page = login("usr")
    page.goto("/scheduler/")
    errors = page.locator("#toasts .toast-error")
    foot = page.locator('[data-stat="tasks-foot"]')
    row = task_row(page, "flip-me")
    switch = row.locator("[data-action=toggle]")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(foot).to_have_text(summary())

    # Pause from the row's switch: saved, the row and the summary card follow, no error.
    switch.click()
    expect(page.locator("#toasts .toast-success", has_text="“flip-me” paused")).to_be_visible()
    assert api.get(f"/api/scheduler/tasks/{task['id']}").json()["enabled"] is False
    expect(errors).to_have_count(0)
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(row).to_contain_text("paused")
    expect(foot).to_have_text(summary())
    assert "0 paused" not in summary()

    # The drawer opens on the paused task; enabling it from there updates the drawer itself.
    row.locator("[data-action=history]").click()
    drawer = page.locator("[data-testid=task-drawer]")
    expect(drawer.locator("#drawer-title")).to_have_text("flip-me")
    expect(drawer.locator("#drawer-badges")).to_contain_text("paused")
    expect(drawer.locator("[data-testid=drawer-next]")).to_have_text("paused")
    drawer_toggle = drawer.locator("#drawer-actions [data-action=toggle]")
    expect(drawer_toggle).to_have_text("Enable")
    drawer_toggle.click()
    expect(page.locator("#toasts .toast-success", has_text="“flip-me” enabled")).to_be_visible()
    assert api.get(f"/api/scheduler/tasks/{task['id']}").json()["enabled"] is True
    expect(errors).to_have_count(0)
    expect(drawer.locator("#drawer-badges")).to_contain_text("enabled")
    expect(drawer.locator("#drawer-badges")).not_to_contain_text("paused")
    expect(drawer.locator("[data-testid=drawer-next]")).to_have_text(re.compile(r"^in "))
    expect(drawer_toggle).to_have_text("Pause")
    expect(foot).to_have_text(summary())
    screenshot(page, "scheduler-drawer-enabled")

    # Behind the drawer, the row followed too.
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(row.locator("[data-testid=next-run]")).to_have_text(re.compile(r"^in "))
    expect(errors).to_have_count(0)
    no_page_errors(page)


def test_the_dependency_graph_draws_an_edge_and_opens_a_task(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    extract = create_task(
        api, name="extract", script_path="examples/hello.py", schedule_type="cron", cron="0 1 * * *"
    )
    load = create_task(api, name="load", script_path="examples/hello.py", depends_on=[extract["id"]])
    report = create_task(
        api, name="report", script_path="examples/hello.py", depends_on=[extract["id"], load["id"]]
    )
    create_task(
        api,
        name="standalone",
        script_path="examples/hello.py",
        schedule_type="interval",
        interval_seconds=600,
    )
    assert api.post(f"/api/scheduler/tasks/{report['id']}/pause").status_code == 200
    assert api.post(f"/api/scheduler/tasks/{extract['id']}/run").status_code == 202

    page = login("usr")
    page.goto("/scheduler/")
    graph = page.locator("[data-testid=graph]")
    for upstream, dependent in ((extract, load), (load, report), (extract, report)):
        expect(graph.locator(f"[data-edge='{upstream['id']}->{dependent['id']}']")).to_have_count(1)
    expect(graph.locator("[data-node]")).to_have_count(3)
    expect(graph).to_contain_text(re.compile(r"\d+ tasks? without dependencies (is|are) not drawn"))
    # Coloured by the last run's status (refreshed live); paused tasks are dimmed.
    node = {t["name"]: graph.locator(f"[data-node='{t['id']}']") for t in (extract, load, report)}
    expect(node["extract"]).to_have_class(re.compile(r"node-completed"), timeout=RUN_TIMEOUT)
    expect(node["report"]).to_have_class(re.compile(r"node-disabled"))
    # Layered by dependency depth, left to right.
    xs = [(node[name].bounding_box() or {"x": -1})["x"] for name in ("extract", "load", "report")]
    assert xs[0] < xs[1] < xs[2], xs
    screenshot(page, "scheduler-graph")

    # Keyboard first: a node is a link, reached with Tab and opened with Enter.
    node["load"].focus()
    page.keyboard.press("Enter")
    drawer = page.locator("[data-testid=task-drawer]")
    expect(drawer.locator("#drawer-title")).to_have_text("load")
    expect(drawer).to_contain_text("Runs after")
    expect(page).to_have_url(re.compile(rf"task={load['id']}"))

    # The task it depends on cannot be deleted: the API's message names the dependent.
    drawer.get_by_role("link", name="extract").click()
    expect(drawer.locator("#drawer-title")).to_have_text("extract")
    delete = drawer.locator("[data-testid=delete-task]")
    delete.click()
    expect(delete).to_have_text("Really delete?")
    delete.click()
    expect(drawer.locator("#drawer-error")).to_contain_text("load")
    no_page_errors(page)


def test_firing_an_event_runs_a_listening_task_and_a_second_fire_is_skipped(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    long_run = ["--ticks", "900", "--interval", "0.2"]
    task = create_task(
        api, name="on-deploy", script_path="examples/ticker.py", args=long_run, events=["deploy"]
    )
    page = login("exe")
    page.goto("/scheduler/")
    row = task_row(page, "on-deploy")
    expect(row).to_contain_text("on event deploy")
    # An executor runs tasks and fires events, but does not edit them.
    expect(page.locator("[data-testid=new-task]")).to_have_count(0)
    expect(row.locator("[data-action=edit]")).to_have_count(0)
    expect(row.locator("[data-action=toggle]")).to_have_count(0)
    expect(row.locator("[data-action=run]")).to_be_visible()

    page.fill("[data-testid=fire-name]", "deploy")
    page.click("[data-testid=fire-event]")
    result = page.locator("[data-testid=fire-result]")
    expect(result).to_contain_text("started 1 task")
    expect(result.get_by_role("link", name="on-deploy")).to_have_attribute("href", RUN_PAGE)
    expect(row.locator("[data-testid=last-run] [data-badge=status]")).to_have_text(
        re.compile("queued|running")
    )

    # While that run is active the overlap policy (skip) skips the next trigger, with its reason.
    page.click("[data-testid=fire-event]")
    expect(result).to_contain_text("Skipped 1")
    expect(result).to_contain_text("overlap policy skip")
    row.locator("[data-action=history]").click()
    history = page.locator("[data-testid=history]")
    expect(history.locator("tbody tr")).to_have_count(2)
    skipped = history.locator("tr.outcome-skipped")
    expect(skipped.locator("[data-testid=outcome]")).to_have_text("skipped")
    expect(skipped).to_contain_text("overlap policy skip")
    expect(history.locator("tr.outcome-queued [data-testid=outcome]")).to_have_text("fired")
    screenshot(page, "scheduler-history-skipped")

    run_id = api.get(f"/api/scheduler/tasks/{task['id']}").json()["last_run"]["run_id"]
    assert api.post(f"/api/runs/{run_id}/kill").status_code in (200, 202)
    expect(history.locator("tr.outcome-queued [data-badge=status]")).to_have_text(
        "cancelled", timeout=RUN_TIMEOUT
    )
    no_page_errors(page)


def test_a_readonly_user_sees_tasks_but_no_write_controls(
    login: Callable[[str], Page], api: httpx.Client
) -> None:
    create_task(
        api, name="read-me", script_path="examples/hello.py", schedule_type="interval", interval_seconds=3600
    )
    page = login("ro")
    page.goto("/scheduler/")
    row = task_row(page, "read-me")
    expect(row.locator("[data-testid=enabled-state]")).to_have_text("enabled")
    expect(row.locator("[data-testid=next-run]")).to_have_text(re.compile(r"^in "))
    for selector in ("[data-testid=new-task]", "[data-testid=fire-event]", "[data-testid=task-dialog]"):
        expect(page.locator(selector)).to_have_count(0)
    for action in ("run", "edit", "toggle"):
        expect(row.locator(f"[data-action={action}]")).to_have_count(0)
    screenshot(page, "scheduler-readonly")

    row.locator("[data-action=history]").click()
    drawer = page.locator("[data-testid=task-drawer]")
    expect(drawer.locator("#drawer-title")).to_have_text("read-me")
    expect(drawer.locator("#drawer-actions button")).to_have_count(0)
    expect(drawer.locator("#drawer-webhook button")).to_have_count(0)
    expect(drawer.locator("[data-testid=history]")).to_contain_text("No history yet")
    no_page_errors(page)


def test_the_page_works_at_a_narrow_width(login: Callable[[str], Page], api: httpx.Client) -> None:
    create_task(
        api, name="narrow", script_path="examples/hello.py", schedule_type="interval", interval_seconds=300
    )
    page = login("usr")
    page.set_viewport_size({"width": 420, "height": 860})
    page.goto("/scheduler/")
    row = task_row(page, "narrow")
    expect(row.locator("[data-action=run]")).to_be_visible()
    screenshot(page, "scheduler-narrow")
    # Nothing on the page but the table's own scroller is wider than the screen.
    assert page.evaluate(
        "(() => { const m = document.getElementById('main'); return m.scrollWidth <= m.clientWidth + 1; })()"
    )
    dialog = open_new_task_form(page)
    expect(dialog.locator("[data-testid=task-save]")).to_be_in_viewport()
    screenshot(page, "scheduler-narrow-form")
    no_page_errors(page)


def test_run_now_honours_the_overlap_policy_and_an_admin_may_run_it_anyway(
    login: Callable[[str], Page], api: httpx.Client, stack: Any
) -> None:
    write_script(stack, "slow_job.py", "import time\ntime.sleep(60)\n")
    task = create_task(
        api,
        name="one-at-a-time",
        script_path="slow_job.py",
        schedule_type="interval",
        interval_seconds=3600,
        overlap_policy="skip",
    )
    page = login("adm")
    page.goto("/scheduler/")
    run_button = task_row(page, "one-at-a-time").locator("[data-action=run]")
    run_button.click()
    expect(page.locator("#toasts .toast-success", has_text="Started “one-at-a-time”")).to_be_visible()

    # The first run is still going: the policy skips the second, and says so as a warning.
    run_button.click()
    skipped = page.locator("#toasts .toast-warn", has_text="Skipped “one-at-a-time”")
    expect(skipped).to_contain_text("overlap policy skip")
    expect(page.locator("#toasts .toast-error")).to_have_count(0)

    # An admin may run it anyway: recorded as forced, by whom.
    skipped.locator("[data-action=force]").click()
    expect(page.locator("#toasts .toast-success", has_text="Forced by adm")).to_be_visible()
    runs = api.get(f"/api/scheduler/tasks/{task['id']}/runs").json()
    entries = runs["results"] if isinstance(runs, dict) else runs
    assert any("Forced by adm" in (entry.get("reason") or "") for entry in entries)
    for run in api.get("/api/runs", params={"status": "running", "page_size": 50}).json()["results"]:
        api.post(f"/api/runs/{run['id']}/kill")
    no_page_errors(page)
