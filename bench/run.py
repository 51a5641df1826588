"""``make bench``: launch latency, output capture, burst and control latency of a real stack.

Starts real stacks (``manage.py serve``: daphne + django-q2 qcluster + reaper, see
tests/stack.py), each in a fresh temp dir, and measures every figure beside a
baseline taken in the same run: the same script spawned directly with ``subprocess``.
Writes ``bench/results/<UTC timestamp>.json`` and ``bench/results/latest.json`` and
prints a summary table. Not part of ``make test``.

    .venv/bin/python bench/run.py [--only launch,capture,burst,control,live,viewer,scale] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import scenarios  # noqa: E402
from bench.report import REFERENCE, TARGETS, figures, print_table  # noqa: E402
from bench.util import (  # noqa: E402
    git_info,
    machine_info,
    redis_reachable,
    running_stack,
    warm_up,
)

RESULTS = ROOT / "bench" / "results"
SECTIONS = (
    "launch",
    "capture",
    "burst",
    "control",
    "live",
    "viewer",
    "library",
    "scheduler",
    "analytics",
    "prechecks",
    "scale",
    "fuzz",
)


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


def busy_processes(window: float = 0.5, threshold: float = 5.0) -> list[str]:
    """Other processes using more than ``threshold`` % of a CPU right now."""
    procs = [p for p in psutil.process_iter(["name"]) if p.pid != os.getpid()]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(window)
    busy: list[str] = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            pct = p.cpu_percent(None)
            if pct > threshold:
                busy.append(f"{p.pid} {' '.join(p.cmdline())[:100] or p.info['name']} ({pct:.0f}%)")
    return busy


def own_cpu_seconds() -> float:
    """CPU of this process and its reaped descendants (the stacks, once stopped, and their scripts)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="fewer samples and a smaller output")
    parser.add_argument("--workers", type=int, default=4, help="SCRIPTOPS_WORKERS of the stacks (default 4)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SCRIPTOPS_REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="Redis for the second launch measurement (skipped if unreachable)",
    )
    parser.add_argument("--output-mb", type=int, help="capture size in MB (default 200, --quick 20)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.only = [s for s in SECTIONS if s in only]
    return args


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "launch_samples": 10 if quick else 50,
        "launch_warmup": 2 if quick else 5,
        "capture_bytes": (args.output_mb or (20 if quick else 200)) * 1_000_000,
        "capture_repeats": 1 if quick else 3,
        "capture_cap_bytes": 300_000_000,
        "burst_runs": 20,
        "burst_repeats": 1 if quick else 3,
        "control_samples": 5 if quick else 20,
    }


def guarded(results: dict[str, Any], key: str, errors: list[str], fn: Callable[[], Any]) -> Any:
    """Run one measurement; a failure is recorded and the benchmark goes on."""
    print(f"  - {key} ...", flush=True)
    # Each measurement starts on a quiet disk: the previous one's files (50,000 scripts,
    # 600 MB of captured output) are still being written back otherwise, and every run
    # creates files of its own.
    os.sync()
    time.sleep(1.0)
    t0 = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:
        errors.append(f"{key}: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        value = {"error": f"{type(exc).__name__}: {exc}"}
    results[key] = value
    print(f"    done in {time.perf_counter() - t0:.1f}s", flush=True)
    return value


def measure(args: argparse.Namespace, cfg: dict[str, Any], notes: list[str], errors: list[str]) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="scriptops-bench-direct-"))
    try:
        return _measure(args, cfg, notes, errors, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(
    args: argparse.Namespace, cfg: dict[str, Any], notes: list[str], errors: list[str], tmp: Path
) -> dict:
    res: dict[str, Any] = {}
    ok_sh = tmp / "ok.sh"
    ok_sh.write_text(scenarios.ONE_LINE_SH)
    flood = tmp / "flood.py"
    flood.write_text(scenarios.FLOOD_PY)
    trap = tmp / "trap.py"
    trap.write_text(scenarios.TRAP_PY)

    # Baselines first, with no stack running: the same scripts spawned directly.
    print("baselines (direct subprocess)", flush=True)
    if "launch" in args.only:
        guarded(
            res,
            "launch_direct",
            errors,
            lambda: scenarios.launch_direct(samples=cfg["launch_samples"], script=ok_sh),
        )
    if "capture" in args.only:
        guarded(
            res,
            "capture_pipe",
            errors,
            lambda: scenarios.capture_direct(
                script=flood, total_bytes=cfg["capture_bytes"], repeats=cfg["capture_repeats"], scratch=tmp
            ),
        )
    if "burst" in args.only:
        guarded(
            res,
            "burst_direct",
            errors,
            lambda: scenarios.burst_direct(
                script=ok_sh, runs=cfg["burst_runs"], parallel=args.workers, repeats=cfg["burst_repeats"]
            ),
        )
    if "control" in args.only:
        guarded(
            res,
            "control_direct",
            errors,
            lambda: scenarios.control_direct(
                script=trap, samples=cfg["control_samples"], marks=tmp / "marks"
            ),
        )

    if {"launch", "burst", "control"} & set(args.only):
        print("stack: default (SQLite + ORM broker)", flush=True)
        try:
            with running_stack("default", workers=args.workers) as stack:
                warm_up(
                    stack,
                    stack.client(),
                    stack.script("ok.sh", scenarios.ONE_LINE_SH),
                    count=cfg["launch_warmup"],
                )
                if "launch" in args.only:
                    guarded(
                        res,
                        "launch_default",
                        errors,
                        lambda: scenarios.launch_stack(stack, samples=cfg["launch_samples"]),
                    )
                if "burst" in args.only:
                    guarded(
                        res,
                        "burst_stack",
                        errors,
                        lambda: scenarios.burst_stack(
                            stack, runs=cfg["burst_runs"], repeats=cfg["burst_repeats"]
                        ),
                    )
                if "control" in args.only:
                    guarded(
                        res,
                        "control_stack",
                        errors,
                        lambda: scenarios.control_stack(stack, samples=cfg["control_samples"]),
                    )
        except Exception as exc:
            errors.append(f"default stack: {type(exc).__name__}: {exc}")
            traceback.print_exc()

    if "launch" in args.only:
        reachable, why = redis_reachable(args.redis_url)
        if not reachable:
            note = f"Redis at {args.redis_url} is unreachable ({why}): the Redis launch figure is skipped."
            notes.append(note)
            res["launch_redis"] = {"skipped": note}
            print(note, flush=True)
        else:
            print(f"stack: Redis broker ({args.redis_url})", flush=True)
            try:
                with running_stack("redis", workers=args.workers, redis_url=args.redis_url) as stack:
                    warm_up(
                        stack,
                        stack.client(),
                        stack.script("ok.sh", scenarios.ONE_LINE_SH),
                        count=cfg["launch_warmup"],
                    )
                    guarded(
                        res,
                        "launch_redis",
                        errors,
                        lambda: scenarios.launch_stack(stack, samples=cfg["launch_samples"]),
                    )
            except Exception as exc:
                errors.append(f"redis stack: {type(exc).__name__}: {exc}")
                traceback.print_exc()

    if "capture" in args.only:
        print(f"stack: capture (SCRIPTOPS_MAX_OUTPUT_BYTES={cfg['capture_cap_bytes']})", flush=True)
        try:
            with running_stack(
                "capture",
                workers=args.workers,
                extra_env={"SCRIPTOPS_MAX_OUTPUT_BYTES": str(cfg["capture_cap_bytes"])},
            ) as stack:
                warm_up(stack, stack.client(), stack.script("ok.sh", scenarios.ONE_LINE_SH), count=1)
                guarded(
                    res,
                    "capture_stack",
                    errors,
                    lambda: scenarios.capture_stack(
                        stack, total_bytes=cfg["capture_bytes"], repeats=cfg["capture_repeats"]
                    ),
                )
        except Exception as exc:
            errors.append(f"capture stack: {type(exc).__name__}: {exc}")
            traceback.print_exc()

    if "live" in args.only:
        # Live output delay to websocket and SSE clients: bench/live.py (its own stacks).
        print("live output (bench/live.py)", flush=True)

        def live() -> dict[str, Any]:
            from bench.live import measure_live

            result = measure_live(quick=args.quick)
            for cfg_name in ("default", "redis"):
                part = result.get(cfg_name) or {}
                if "error" in part:
                    errors.append(f"live {cfg_name}: {part['error']}")
            return result

        guarded(res, "live", errors, live)

    if "viewer" in args.only:
        # The run page opening a finished 1,000,000-line log at its tail: bench/viewer.py.
        print("log viewer (bench/viewer.py)", flush=True)

        def viewer() -> dict[str, Any]:
            from bench.viewer import measure_viewer

            return measure_viewer(quick=args.quick)

        guarded(res, "viewer", errors, viewer)

    if "library" in args.only:
        # 50,000 generated scripts: cold scan, unchanged rescan, list/search latency.
        print("library scan and search (bench/library.py)", flush=True)

        def library() -> dict[str, Any]:
            from bench.library import measure_library

            return measure_library(quick=args.quick)

        guarded(res, "library", errors, library)

    if "scheduler" in args.only:
        # 200 interval tasks due at once: delay from due time to process start.
        print("scheduler fire precision (bench/scheduler.py)", flush=True)

        def scheduler() -> dict[str, Any]:
            from bench.scheduler import measure_scheduler

            return measure_scheduler(quick=args.quick)

        guarded(res, "scheduler", errors, scheduler)

    if "analytics" in args.only:
        # 1,000,000 metric points over 1,000 scripts, SQLite and PostgreSQL: bench/analytics.py.
        print("analytics over a million points (bench/analytics.py)", flush=True)

        def analytics() -> dict[str, Any]:
            from bench.analytics import measure_analytics

            return measure_analytics(quick=args.quick)

        guarded(res, "analytics", errors, analytics)

    if "prechecks" in args.only:
        # A 2,000-line script cold and cached, a library-wide check: bench/prechecks.py.
        print("pre-run checks (bench/prechecks.py)", flush=True)

        def prechecks() -> dict[str, Any]:
            from bench.prechecks import measure_prechecks

            return measure_prechecks(quick=args.quick)

        guarded(res, "prechecks", errors, prechecks)

    if "fuzz" in args.only:
        # Schemathesis per role and the path-traversal corpus, at volume: bench/fuzz.py.
        print("hostile input (bench/fuzz.py)", flush=True)

        def fuzz() -> dict[str, Any]:
            from bench.fuzz import measure_fuzz

            result = measure_fuzz(quick=args.quick)
            if "error" in result:
                errors.append(f"fuzz: {result['error'][:500]}")
            for tool in ("schemathesis", "path_traversal"):
                if (result.get(tool) or {}).get("server_errors"):
                    errors.append(f"fuzz: {tool} got {result[tool]['server_errors']} 5xx answers")
            return result

        guarded(res, "fuzz", errors, fuzz)

    if "scale" in args.only:
        # 20/200/1,000 scripts at once followed over websockets, trivial runs, 50 MiB: bench/scale.py.
        print("runs at scale (bench/scale.py)", flush=True)

        def scale() -> dict[str, Any]:
            from bench.scale import measure_scale, save_markdown

            result = measure_scale(quick=args.quick)
            print("\n".join(result["markdown"]), flush=True)
            save_markdown(result, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
            for cfg_name in ("default", "redis"):
                part = result.get(cfg_name) or {}
                failed = [k for k, v in part.items() if isinstance(v, dict) and "error" in v]
                if "error" in part or failed:
                    errors.append(f"scale {cfg_name}: {part.get('error') or ', '.join(failed)} failed")
            return result

        guarded(res, "scale", errors, scale)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = sizes(args)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "started_at": started.isoformat(),
        "machine": machine_info(),
        "git": git_info(),
        "config": {
            "sections": args.only,
            "quick": args.quick,
            "workers": args.workers,
            "redis_url": args.redis_url,
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "SQLite (per stack)",
            **cfg,
            "stack_env": "tests/stack.py defaults with SCRIPTOPS_STOP_GRACE=5, HEARTBEAT_INTERVAL=5, "
            "HEARTBEAT_TIMEOUT=30 (production values); queue poll, control poll: settings defaults",
        },
        "reference": REFERENCE,
        "targets": TARGETS,
    }
    notes: list[str] = []
    errors: list[str] = []
    print(
        f"ScriptOps bench: {', '.join(args.only)}{' (quick)' if args.quick else ''}; "
        f"{report['machine']['cpu_count']} CPUs, load {report['machine']['load_avg_start']}",
        flush=True,
    )
    report["machine"]["busy_processes_at_start"] = busy_processes()
    load1 = report["machine"]["load_avg_start"][0]
    # The load average lags (a previous benchmark still shows in it): what is running now decides.
    if report["machine"]["busy_processes_at_start"]:
        notes.append(
            f"the machine was busy at the start (1-min load {load1}; busy now: "
            f"{'; '.join(report['machine']['busy_processes_at_start'])}): "
            "latencies may be inflated; re-run on a quiet machine for comparable figures"
        )
        print(f"warning: {notes[-1]}", flush=True)
    cpu0, own0 = machine_busy_seconds(), own_cpu_seconds()
    results = measure(args, cfg, notes, errors)
    wall = time.perf_counter() - t0
    busy, own = machine_busy_seconds() - cpu0, own_cpu_seconds() - own0
    ncpu = report["machine"]["cpu_count"] or 1
    foreign = max(0.0, busy - own)
    report["machine"]["cpu_seconds"] = {
        "machine_busy": round(busy, 2),
        "bench_and_stacks": round(own, 2),
        "other_processes": round(foreign, 2),  # includes Redis and kernel writeback caused by the bench
        "other_processes_share_of_capacity": round(foreign / (wall * ncpu), 3),
    }
    # Includes Redis and the kernel's writeback of the captured output, which the
    # benchmark itself causes: only a large share means someone else was busy.
    if foreign / (wall * ncpu) > 0.25:
        notes.append(
            f"other processes used {foreign:.1f} CPU-seconds during the benchmark "
            f"({100 * foreign / (wall * ncpu):.0f}% of the machine): figures are probably inflated"
        )
    report["results"] = results
    report["figures"] = figures(results)
    report["notes"] = notes
    report["errors"] = errors
    report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["duration_s"] = round(time.perf_counter() - t0, 1)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2, default=str) + "\n"
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)

    print()
    print_table(report["figures"])
    for note in notes:
        print(f"note: {note}")
    for error in errors:
        print(f"ERROR: {error}")
    print(f"\nreport: {RESULTS / f'{stamp}.json'} ({report['duration_s']}s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
