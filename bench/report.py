"""The report of ``bench/run.py``: figures with their baseline, target and reference, and the table."""

from __future__ import annotations

from typing import Any

# The closest existing tool, as measured on its own (quoted, not re-measured here).
REFERENCE = {
    "tool": "closest existing tool",
    "launch_ms": 106,
    "capture_mb_s": 1.3,
    "capture_note": "holds the whole output in memory",
    "burst_ms": 275,
}

TARGETS = {
    "launch_default_p50_ms": 80,
    "launch_redis_p50_ms": 30,
    "capture_mb_s": 100,
    "capture_vs_pipe_ratio": 3,
    "worker_peak_rss_mb": 150,
    "control_p95_ms": 250,
}


def figure(
    key: str,
    label: str,
    value: float | None,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_label: str = "",
    baseline_unit: str | None = None,
    target: float | None = None,
    op: str = "<",
    reference: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    passed: bool | None = None
    if target is not None and value is not None:
        passed = value < target if op == "<" else value >= target
    return {
        "key": key,
        "label": label,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_label": baseline_label,
        "baseline_unit": unit if baseline_unit is None else baseline_unit,
        "target": None if target is None else f"{op} {target:g} {unit}",
        "pass": passed,
        "reference": reference,
        "note": note,
    }


def figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def ok(key: str) -> dict[str, Any] | None:
        value = res.get(key)
        return value if isinstance(value, dict) and "error" not in value and "skipped" not in value else None

    direct = ok("launch_direct") or {}
    for key, label, target in (
        ("launch_default", "launch p50, default (SQLite + ORM broker)", TARGETS["launch_default_p50_ms"]),
        ("launch_redis", "launch p50, Redis broker", TARGETS["launch_redis_p50_ms"]),
    ):
        if key not in res:
            continue
        r = ok(key)
        out.append(
            figure(
                f"{key}_p50",
                label,
                r and r["p50_ms"],
                "ms",
                baseline=direct.get("p50_ms"),
                baseline_label="direct spawn p50",
                target=target,
                reference=REFERENCE["launch_ms"],
                note=(res[key].get("skipped") or res[key].get("error") or "") if not r else "",
            )
        )
        out.append(
            figure(
                f"{key}_p95",
                label.replace("p50", "p95"),
                r and r["p95_ms"],
                "ms",
                baseline=direct.get("p95_ms"),
                baseline_label="direct spawn p95",
            )
        )
        if r:
            out.append(
                figure(
                    f"{key}_engine_p50",
                    label.replace("launch p50", "POST -> engine reads output, p50"),
                    r["first_output_read_by_engine"]["p50_ms"],
                    "ms",
                    baseline=direct.get("p50_ms"),
                    baseline_label="direct spawn p50",
                    note="server-side timestamp: launch without the cost of polling the logs",
                )
            )
    if "capture_stack" in res or "capture_pipe" in res:
        r, pipe = ok("capture_stack"), ok("capture_pipe") or {}
        pipe_mb_s = pipe.get("throughput_mb_s")
        out.append(
            figure(
                "capture_mb_s",
                "capture throughput (stored / run duration)",
                r and r["throughput_mb_s"],
                "MB/s",
                baseline=pipe_mb_s,
                baseline_label="drained pipe",
                target=TARGETS["capture_mb_s"],
                op=">=",
                reference=REFERENCE["capture_mb_s"],
                note=("" if r and r["fully_stored"] else "NOT fully stored") if r else "",
            )
        )
        out.append(
            figure(
                "capture_end_to_end_mb_s",
                "capture, POST -> completed",
                r and r["end_to_end_mb_s"],
                "MB/s",
                baseline=pipe_mb_s,
                baseline_label="drained pipe",
            )
        )
        ratio = None
        if r and pipe.get("duration_s"):
            ratio = round(r["duration_s"] / pipe["duration_s"], 2)
        out.append(
            figure(
                "capture_vs_pipe_ratio",
                "capture time / drained-pipe time",
                ratio,
                "x",
                baseline=1.0,
                baseline_label="drained pipe",
                target=TARGETS["capture_vs_pipe_ratio"],
            )
        )
        into_file = pipe.get("into_file") or {}
        if r and into_file.get("duration_s"):
            out.append(
                figure(
                    "capture_vs_pipe_into_file_ratio",
                    "capture time / pipe-into-a-file time",
                    round(r["duration_s"] / into_file["duration_s"], 2),
                    "x",
                    baseline=into_file.get("throughput_mb_s"),
                    baseline_label="pipe drained into a file",
                    baseline_unit="MB/s",
                    note="the floor for storing the output: same disk, no index, no supervision",
                )
            )
        out.append(
            figure(
                "worker_peak_rss_mb",
                "worker peak RSS during capture",
                r and r["worker_peak_rss_mb"],
                "MB",
                baseline=r and r["median_run"]["worker_rss_first_mb"],
                baseline_label="worker RSS at claim",
                target=TARGETS["worker_peak_rss_mb"],
                note="max of 50 ms psutil samples and /proc VmHWM",
            )
        )
    if "burst_stack" in res or "burst_direct" in res:
        r, d = ok("burst_stack"), ok("burst_direct") or {}
        out.append(
            figure(
                "burst_wall_ms",
                "burst of 20: POST all -> all finished",
                r and r["wall_ms"],
                "ms",
                baseline=d.get("wall_ms"),
                baseline_label=f"20 direct spawns, {d.get('parallel', '?')} at a time",
                target=REFERENCE["burst_ms"],
                reference=REFERENCE["burst_ms"],
                note="no target was set: judged against the reference tool",
            )
        )
    if "control_stack" in res or "control_direct" in res:
        r, d = ok("control_stack"), ok("control_direct") or {}
        out.append(
            figure(
                "control_p95_ms",
                "control: POST stop -> SIGTERM handled, p95",
                r and r["p95_ms"],
                "ms",
                baseline=d.get("p95_ms"),
                baseline_label="direct os.kill p95",
                target=TARGETS["control_p95_ms"],
            )
        )
        out.append(
            figure(
                "control_p50_ms",
                "control: POST stop -> SIGTERM handled, p50",
                r and r["p50_ms"],
                "ms",
                baseline=d.get("p50_ms"),
                baseline_label="direct os.kill p50",
            )
        )
    live = ok("live")
    if live:
        for cfg_name, label in (("default", "default"), ("redis", "Redis")):
            part = live.get(cfg_name) or {}
            for channel in ("websocket", "sse"):
                summary = part.get(channel) or {}
                for stat in ("p50_ms", "p99_ms"):
                    target = (part.get("targets") or {}).get(stat)
                    if stat == "p99_ms" and target is None:
                        continue
                    out.append(
                        figure(
                            f"live_{cfg_name}_{channel}_{stat}",
                            f"live output -> {channel} client, {stat[:3]}, {label}",
                            summary.get(stat),
                            "ms",
                            target=target,
                            note=part.get("skipped") or part.get("error") or "",
                        )
                    )
    viewer = ok("viewer")
    if viewer and "tail_shown" in viewer:
        shown, api = viewer["tail_shown"], viewer.get("first_page_api") or {}
        out.append(
            figure(
                "viewer_tail_shown_max_ms",
                f"run page, {viewer['lines']:,}-line log: tail shown in Chromium (worst)",
                shown.get("max_ms"),
                "ms",
                baseline=api.get("max_ms"),
                baseline_label="its first /logs page via the API",
                target=viewer.get("target_ms"),
            )
        )
        out.append(
            figure(
                "viewer_tail_shown_p50_ms",
                "run page: tail shown in Chromium, p50",
                shown.get("p50_ms"),
                "ms",
                baseline=api.get("p50_ms"),
                baseline_label="its first /logs page via the API",
            )
        )
    library = ok("library")
    if library and "cold_scan" in library:
        targets = library.get("targets") or {}
        files = library.get("files", 0)
        out.append(
            figure(
                "library_cold_scan_files_per_s",
                f"library: cold scan of {files:,} scripts",
                library["cold_scan"].get("files_per_s"),
                "files/s",
                target=targets.get("cold_files_per_s"),
                op=">=",
                note=f"wall {library['cold_scan'].get('wall_s')} s from request to completed",
            )
        )
        out.append(
            figure(
                "library_rescan_files_per_s",
                f"library: rescan of the unchanged {files:,}-script tree",
                library["rescan"].get("files_per_s"),
                "files/s",
                target=targets.get("rescan_files_per_s"),
                op=">=",
            )
        )
        search = library.get("search") or {}
        for stat in ("p50_ms", "p95_ms"):
            out.append(
                figure(
                    f"library_search_{stat}",
                    f"library: list/search API with {files:,} scripts, {stat[:3]}",
                    search.get(stat),
                    "ms",
                    target=targets.get("search_p95_ms") if stat == "p95_ms" else None,
                )
            )
    scheduler = ok("scheduler")
    if scheduler and "due_at_same_instant" in scheduler:
        burst = scheduler["due_at_same_instant"].get("process_start") or {}
        floor = (scheduler.get("baseline_before") or {}).get("process_start") or {}
        target = (scheduler.get("target") or {}).get("process_start_p99_ms")
        for stat in ("p50_ms", "p99_ms"):
            out.append(
                figure(
                    f"scheduler_fire_delay_{stat}",
                    f"scheduler: {scheduler.get('tasks', 200)} interval tasks due at once, "
                    f"due -> process start, {stat[:3]}",
                    burst.get(stat),
                    "ms",
                    baseline=floor.get(stat),
                    baseline_label="same runs queued directly (no scheduler)",
                    target=target if stat == "p99_ms" else None,
                )
            )
        staggered = (scheduler.get("staggered") or {}).get("process_start") or {}
        out.append(
            figure(
                "scheduler_fire_delay_staggered_p99_ms",
                "scheduler: tasks due one at a time, due -> process start, p99",
                staggered.get("p99_ms"),
                "ms",
                target=target,
            )
        )
    analytics = ok("analytics")
    if analytics:
        targets = analytics.get("targets") or {}
        for db in ("sqlite", "postgres"):
            part = analytics.get(db) or {}
            if "fill" not in part:
                continue
            points = (part.get("fill") or {}).get("points", 0)
            analyses = part.get("analyses") or {}
            for name, stats in analyses.items():
                if not isinstance(stats, dict) or "p95_ms" not in stats:
                    continue
                out.append(
                    figure(
                        f"analytics_{db}_{name}_p95_ms",
                        f"analytics ({db}, {points:,} points): {name.replace('_', ' ')}"
                        " of one script, 90 days, p95",
                        stats.get("p95_ms"),
                        "ms",
                        target=targets.get("analysis_p95_ms"),
                        note=f"p50 {stats.get('p50_ms')} ms",
                    )
                )
            chart = part.get("chart") or {}
            out.append(
                figure(
                    f"analytics_{db}_first_chart_p50_ms",
                    f"analytics ({db}): Analytics page's first chart in Chromium, p50",
                    chart.get("p50_ms"),
                    "ms",
                    note=chart.get("skipped") or chart.get("error", "")[:80],
                )
            )
            export = part.get("export") or {}
            out.append(
                figure(
                    f"analytics_{db}_export_rows_per_s",
                    f"analytics ({db}): CSV export of {export.get('rows') or 0:,} rows",
                    export.get("rows_per_s"),
                    "rows/s",
                    target=targets.get("export_rows_per_s"),
                    op=">=",
                    note=f"{export.get('seconds')} s",
                )
            )
            out.append(
                figure(
                    f"analytics_{db}_export_pss_growth_mb",
                    f"analytics ({db}): export, PSS of the server's processes above idle",
                    export.get("pss_growth_mb"),
                    "MB",
                    target=targets.get("export_pss_growth_mb"),
                    note=f"idle {export.get('pss_idle_mb')} MB",
                )
            )
            record = part.get("record") or {}
            out.append(
                figure(
                    f"analytics_{db}_record_p50_ms",
                    f"analytics ({db}): recording a finished run's metrics, p50",
                    record.get("p50_ms"),
                    "ms",
                    target=targets.get("record_ms"),
                    note=f"p95 {record.get('p95_ms')} ms; with the commit p50 "
                    f"{(record.get('with_commit') or {}).get('p50_ms')} ms",
                )
            )
    prechecks = ok("prechecks")
    if prechecks:
        out.extend(prechecks.get("figures") or [])  # built by bench/prechecks.py with figure()
    scale = ok("scale")
    if scale:
        out.extend(scale.get("figures") or [])  # built by bench/scale.py with figure()
    return out


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def print_table(figs: list[dict[str, Any]]) -> None:
    rows = [("figure", "measured", "baseline (same run)", "reference", "target", "result")]
    for f in figs:
        baseline = "-"
        if f["baseline"] is not None:
            baseline = f"{fmt(f['baseline'], f['baseline_unit'])} {f['baseline_label']}"
        result = {True: "PASS", False: "FAIL", None: "-"}[f["pass"]]
        if f["value"] is None:
            result = "n/a"
        rows.append(
            (
                f["label"],
                fmt(f["value"], f["unit"]),
                baseline,
                fmt(f["reference"], f["unit"]),
                f["target"] or "-",
                result,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for f in figs:
        if f["note"] and f["value"] is None:
            print(f"  note: {f['label']}: {f['note']}")
