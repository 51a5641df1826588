"""The Analytics page and the analytics on the pages people already look at (a run's
page, the runs table, a library script's sheet), in a real Chromium against a real stack.

History is seeded straight into the stack's database (``manage.py shell``), as runs would
have recorded it; the run page's comparison and gate come from a real run."""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import no_page_errors, screenshot, start_run, write_script
from tests.browser.test_library_page import indexed_root
from tests.stack import Stack

pytestmark = pytest.mark.browser

# A duration series with a rising trend and two spikes (anomalies) every 2 hours over ~4
# days, plus a flat peak_rss_mb series of the same script: 50 points each.
DURATIONS = [1.0 + i * 0.02 for i in range(50)]
DURATIONS[20] = 9.0
DURATIONS[35] = 12.0
RSS = [64.0 + (i % 3) for i in range(50)]


def seed(
    stack: Stack,
    script_path: str,
    metric: str,
    values: list[float],
    *,
    statuses: list[str] | None = None,
    step_hours: float = 2.0,
) -> None:
    """One point per value, ``step_hours`` apart, the last one just before now."""
    code = textwrap.dedent(
        f"""
        import json, uuid
        from datetime import timedelta
        from django.utils import timezone
        from analytics.models import Point, Series, path_key
        path, metric = {script_path!r}, {metric!r}
        values, statuses = json.loads({json.dumps(values)!r}), json.loads({json.dumps(statuses)!r})
        series, _ = Series.objects.get_or_create(
            path_key=path_key(path), metric=metric, defaults={{"script_path": path}}
        )
        step = timedelta(hours={step_hours})
        start = timezone.now() - step * len(values)
        Point.objects.bulk_create(
            Point(series=series, run_id=uuid.uuid4(), recorded_at=start + step * i, value=v,
                  status=statuses[i] if statuses else "completed", source="api")
            for i, v in enumerate(values)
        )
        """
    )
    stack.manage("shell", "-c", code)


def unique_path(name: str) -> str:
    return f"/srv/analytics-{uuid.uuid4().hex[:8]}/{name}"


def chart(page: Page) -> object:
    return page.locator("[data-testid=an-chart]")


def test_the_chart_draws_a_script_with_its_trend_anomalies_and_band(
    login: Callable[[str], Page], stack: Stack
) -> None:
    path = unique_path("nightly.py")
    seed(stack, path, "duration_seconds", DURATIONS)
    seed(stack, path, "peak_rss_mb", RSS)
    page = login("ro")
    page.click("nav.mainnav >> text=Analytics")
    expect(page).to_have_url(re.compile(r"/analytics/"))
    page.select_option("[data-testid=an-script]", path)
    box = page.locator("[data-testid=an-chart]")
    expect(box).to_have_attribute("data-chart-ready", "1")
    expect(box).to_have_attribute("data-points", "50")
    expect(box).to_have_attribute("data-metric", "duration_seconds")
    # uPlot drew a canvas, and its legend names the trend line, the anomalies and the band.
    expect(box.locator("canvas")).to_have_count(1)
    legend = box.locator(".u-legend")
    for label in ("duration_seconds", "Trend", "Anomalies", "p50", "p95"):
        expect(legend).to_contain_text(label)
    expect(box).to_have_attribute("data-trend", "increasing")
    expect(box).to_have_attribute("data-anomalies", "2")
    expect(page.locator("[data-testid=an-anomaly]")).to_have_count(2)
    expect(page.locator("[data-testid=an-caption]")).to_contain_text("50 points of duration_seconds")
    summary = page.locator("[data-testid=an-summary]")
    expect(summary).to_contain_text("Success rate")
    expect(summary).to_contain_text("100.0 %")
    expect(summary).to_contain_text("p95")
    screenshot(page, "analytics-chart")
    no_page_errors(page)


def test_changing_the_metric_redraws_and_the_export_links_follow(
    login: Callable[[str], Page], stack: Stack
) -> None:
    path = unique_path("report.py")
    seed(stack, path, "duration_seconds", DURATIONS)
    seed(stack, path, "peak_rss_mb", RSS[:30])
    page = login("ro")
    page.goto(f"/analytics/?script_path={path}&days=7")
    box = page.locator("[data-testid=an-chart]")
    expect(box).to_have_attribute("data-points", "50")

    page.select_option("[data-testid=an-metric]", "peak_rss_mb")
    expect(box).to_have_attribute("data-metric", "peak_rss_mb")
    expect(box).to_have_attribute("data-points", "30")
    expect(box).to_have_attribute("data-trend", "stable")
    expect(page.locator("[data-testid=an-caption]")).to_contain_text("30 points of peak_rss_mb")
    assert "metric=peak_rss_mb" in page.url  # a reload or a shared link shows the same

    for fmt, testid in (("csv", "an-export-csv"), ("json", "an-export-json")):
        href = page.locator(f"[data-testid={testid}]").get_attribute("href")
        assert href is not None
        query = parse_qs(urlsplit(href).query)
        assert query == {"format": [fmt], "script_path": [path], "metric": ["peak_rss_mb"], "days": ["7"]}
    # The link downloads exactly the filtered history.
    with page.expect_download() as download:
        page.click("[data-testid=an-export-csv]")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 31 and all(",peak_rss_mb," in line for line in lines[1:])
    no_page_errors(page)


def test_zooming_to_a_time_window_shows_only_its_points(login: Callable[[str], Page], stack: Stack) -> None:
    path = unique_path("zoom.py")
    seed(stack, path, "duration_seconds", DURATIONS)
    page = login("ro")
    page.goto(f"/analytics/?script_path={path}")
    box = page.locator("[data-testid=an-chart]")
    expect(box).to_have_attribute("data-points", "50")
    # The window of the 10 points before the 5 newest (points are 2 h apart, the last 2 h ago).
    since, until = page.evaluate(
        """() => {
          const pad = (n) => String(n).padStart(2, "0");
          const local = (d) =>
            `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
            `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
          const now = Date.now();
          return [local(new Date(now - 31 * 3600e3)), local(new Date(now - 11 * 3600e3))];
        }"""
    )
    page.fill("[data-testid=an-since]", since)
    page.fill("[data-testid=an-until]", until)
    page.click("[data-testid=an-zoom-apply]")
    expect(box).to_have_attribute("data-points", "10")
    expect(page.locator("[data-testid=an-caption]")).to_contain_text("zoomed")
    page.click("[data-testid=an-zoom-reset]")
    expect(box).to_have_attribute("data-points", "50")

    # Dragging across the chart zooms too.
    canvas = box.locator(".u-over")
    area = canvas.bounding_box()
    assert area is not None
    y = area["y"] + area["height"] / 2
    page.mouse.move(area["x"] + area["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.5, y, steps=8)
    page.mouse.up()
    expect(page.locator("[data-testid=an-zoom-reset]")).to_be_visible()
    expect(box).not_to_have_attribute("data-points", "50")
    shown = int(box.get_attribute("data-points") or 0)
    assert 5 <= shown <= 20, shown  # a quarter of the width: about a quarter of the 50 points
    no_page_errors(page)


def test_a_bad_window_and_a_script_without_runs_are_explained(
    login: Callable[[str], Page], stack: Stack
) -> None:
    path = unique_path("x.py")
    seed(stack, path, "duration_seconds", DURATIONS[:5])
    page = login("ro")
    page.goto(f"/analytics/?script_path={path}")
    expect(page.locator("[data-testid=an-chart]")).to_have_attribute("data-points", "5")
    page.fill("[data-testid=an-since]", "2030-01-02T00:00:00")
    page.fill("[data-testid=an-until]", "2030-01-01T00:00:00")
    page.click("[data-testid=an-zoom-apply]")
    expect(page.locator("[data-testid=an-error]")).to_have_text("The window's start must be before its end.")

    page.goto("/analytics/?script_path=/srv/never/ran.py")
    expect(page.locator("[data-testid=an-empty]")).to_contain_text("No runs of this script yet")
    expect(page.locator("[data-testid=an-chart]")).to_have_attribute("data-chart-ready", "1")
    no_page_errors(page)


def test_the_overview_and_benchmarks_list_what_to_look_at(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    slow = unique_path("slowest-of-all.py")
    seed(
        stack,
        slow,
        "duration_seconds",
        [500.0 + i for i in range(6)],
        statuses=["failed"] * 5 + ["completed"],
    )
    name = f"bench-{uuid.uuid4().hex[:6]}"
    first = api.post("/api/analytics/benchmarks", json={"name": name, "script_path": slow, "days": 30})
    assert first.status_code == 201, first.text
    seed(stack, slow, "duration_seconds", [5000.0] * 6, step_hours=0.1)
    second = api.post("/api/analytics/benchmarks", json={"name": name, "script_path": slow, "days": 30})
    assert second.status_code == 201, second.text

    page = login("ro")
    page.goto("/analytics/")
    slowest = page.locator("[data-testid=an-slowest-row]").first
    expect(slowest).to_contain_text("slowest-of-all.py")
    expect(page.locator("[data-testid=an-failing]")).to_contain_text("slowest-of-all.py")
    bench = page.locator(f"[data-testid=an-benchmark][data-name='{name}']")
    expect(bench).to_contain_text("v2")
    expect(bench).to_contain_text("duration_seconds +")
    no_page_errors(page)


def test_a_run_page_compares_with_usual_and_shows_the_failed_gate(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    script = write_script(
        stack, f"gated-{uuid.uuid4().hex[:6]}.py", "import time\ntime.sleep(0.3)\nprint('::metric rows=5')\n"
    )
    seed(stack, str(script), "duration_seconds", [0.01] * 12)
    run = start_run(api, str(script), performance_gates=[{"metric": "rows", "max_value": 1}])
    assert stack.wait_for_run(api, run["id"])["status"] == "failed"

    page = login("ro")
    page.goto(f"/runs/{run['id']}/")
    usual = page.locator("[data-testid=run-usual]")
    expect(usual).to_contain_text(
        re.compile(r"\d+(\.\d)?\u00d7 slower than the p50 of the last 12 successful runs \(10 ms\)")
    )
    gate = page.locator("[data-testid=run-gates] tr[data-gate=rows]")
    expect(gate).to_have_attribute("data-passed", "0")
    expect(gate).to_contain_text("failed")
    expect(gate).to_contain_text("rows 5 > max 1")
    event = page.locator(".tl-event[data-kind=gate_failed]")
    expect(event).to_contain_text("rows 5 > max 1")  # the violation's message
    expect(event).not_to_contain_text("[object Object]")
    screenshot(page, "run-analytics")
    no_page_errors(page)


def test_the_runs_table_shows_a_duration_sparkline_per_script(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    script = write_script(stack, f"spark-{uuid.uuid4().hex[:6]}.py", "print('hi')\n")
    seed(stack, str(script), "duration_seconds", [0.5, 0.7, 0.6, 0.9, 0.8])
    run = start_run(api, str(script))
    stack.wait_for_run(api, run["id"])
    page = login("ro")
    row = page.locator(f"#runs-body tr[data-id='{run['id']}']")
    spark = row.locator("[data-testid=duration-sparkline]")
    expect(spark).to_have_count(1)
    expect(spark).to_have_attribute("data-points", "6")  # the 5 seeded and the run's own
    points = spark.locator("polyline").get_attribute("points") or ""
    assert len(points.split()) == 6
    screenshot(page, "runs-sparkline")
    no_page_errors(page)


def test_a_library_script_shows_its_last_runs_as_a_strip_and_a_trend(
    login: Callable[[str], Page], stack: Stack, api: httpx.Client
) -> None:
    root = indexed_root(api, stack, {"job.py": "print('job')\n", "idle.py": "print('idle')\n"})
    script = root["scripts"]["job.py"]
    statuses = ["completed"] * 33 + ["failed", "completed", "failed"]
    seed(stack, script["path"], "duration_seconds", [1.0 + i % 4 for i in range(36)], statuses=statuses)

    page = login("ro")
    page.goto(f"/library/?root_id={root['id']}#script={script['id']}")
    sheet = page.locator("[data-testid=script-sheet]")
    strip = sheet.locator("[data-testid=status-strip]")
    expect(strip.locator(".cell")).to_have_count(30)  # the last 30 runs
    expect(strip.locator(".cell-failed")).to_have_count(2)
    expect(strip.locator(".cell").last).to_have_attribute("data-status", "failed")
    expect(sheet.locator("[data-testid=script-trend-chart] svg")).to_have_count(1)
    expect(sheet.locator("[data-testid=script-trend]")).to_contain_text("successful")
    screenshot(page, "library-script-trend")

    idle = root["scripts"]["idle.py"]
    page.goto(f"/library/?root_id={root['id']}#script={idle['id']}")
    expect(page.locator("[data-testid=script-trend-empty]")).to_have_text(
        "No run of this script recorded yet."
    )
    no_page_errors(page)
