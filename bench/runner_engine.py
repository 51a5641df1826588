"""Micro-bench of the run engine's many-runs loop (``runs.runner.Runner``), no Django.

N bash scripts at once, each printing a line a second for S seconds, supervised by
one Runner in this process with a trivial in-memory hub and reporters. Reports this
process's CPU (% of one core) and memory while they run, how long until every run was
reported started, each line's delay from its ``echo`` to the reporter, the loop's
scans of ``/proc``, and whether every byte of output arrived, in order.

    .venv/bin/python bench/runner_engine.py [--n 200] [--seconds 20] [--json]

A direct-spawn baseline (``subprocess.Popen`` N times, no supervision) is measured
first, for the start-up figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from runs.engine import Limits, Outcome, Sample, Stats  # noqa: E402
from runs.runner import Runner, RunSpec  # noqa: E402

SCRIPT = """
for i in $(seq 1 "$2"); do
    echo "$1 line $i $EPOCHREALTIME"
    if [ "$i" -lt "$2" ]; then sleep 1; fi
done
"""


class MemoryHub:
    def __init__(self) -> None:
        self.control_calls = 0
        self.heartbeat_calls = 0

    def controls(self, keys: Sequence[str]) -> Mapping[str, str]:
        self.control_calls += 1
        return {}

    def heartbeats(self, stats: Mapping[str, Stats]) -> None:
        self.heartbeat_calls += 1


class MemoryReporter:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.started_at: float | None = None
        self.delays: list[float] = []
        self.samples = 0

    def started(self, pid: int, create_time: float) -> None:
        self.started_at = time.monotonic()

    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        chunk = bytes(data)
        (self.out if stream == "stdout" else self.err).append(chunk)
        for line in chunk.splitlines():
            self.delays.append(ts - float(line.rsplit(b" ", 1)[1]))

    def sample(self, sample: Sample) -> None:
        self.samples += 1

    def event(self, kind: str, data: dict[str, object]) -> None:
        pass

    def paused(self, *, paused: bool) -> None:
        pass


def percentile(values: list[float], pct: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def direct_spawn(n: int) -> float:
    """Seconds to start n trivial processes directly (the machine's fork/exec speed)."""
    started = time.monotonic()
    procs = [
        subprocess.Popen(["bash", "-c", "exit 0"], stdout=subprocess.PIPE, start_new_session=True)
        for _ in range(n)
    ]
    elapsed = time.monotonic() - started
    for proc in procs:
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    return elapsed


def bench(n: int, seconds: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    script = folder / "lines.sh"
    script.write_text(SCRIPT)
    baseline = direct_spawn(n)

    hub = MemoryHub()
    runner = Runner(hub)
    me = psutil.Process()
    reporters = {f"run{i:04d}": MemoryReporter() for i in range(n)}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    serving = threading.Thread(target=runner.serve, name="runner")
    serving.start()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    futures = {
        key: runner.submit(
            key,
            RunSpec(
                ["bash", str(script), key, str(seconds)],
                str(folder),
                {**env, "SCRIPTOPS_RUN_ID": key},
                Limits(),
            ),
            reporter,
        )
        for key, reporter in reporters.items()
    }
    while any(r.started_at is None for r in reporters.values()) and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    all_running = max((r.started_at or 0.0) for r in reporters.values()) - t0
    cpu_start = cpu_seconds() - cpu0

    # The steady state: every run started, none ended yet.
    time.sleep(1.0)
    steady_cpu, steady_t = cpu_seconds(), time.monotonic()
    scans0, passes0 = runner.scans, runner.sample_passes
    rss_peak = 0
    while time.monotonic() - steady_t < max(1.0, seconds - all_running - 3.0):
        rss_peak = max(rss_peak, me.memory_info().rss)
        time.sleep(0.5)
    steady_elapsed = time.monotonic() - steady_t
    steady_cpu = cpu_seconds() - steady_cpu
    steady_scans, steady_passes = runner.scans - scans0, runner.sample_passes - passes0
    pss = me.memory_full_info().pss
    sample_interval = runner.sample_interval

    outcomes: dict[str, Outcome] = {
        key: future.result(timeout=seconds + 120) for key, future in futures.items()
    }
    total_elapsed = time.monotonic() - t0
    total_cpu = cpu_seconds() - cpu0
    runner.shutdown()
    serving.join(timeout=30)

    intact = 0
    for key, reporter in reporters.items():
        lines = b"".join(reporter.out).decode().splitlines()
        expected = [f"{key} line {i}" for i in range(1, seconds + 1)]
        if [line.rsplit(" ", 1)[0] for line in lines] == expected and not reporter.err:
            intact += 1
    delays = [d for r in reporters.values() for d in r.delays]
    return {
        "n": n,
        "seconds": seconds,
        "all_running_s": round(all_running, 3),
        "direct_spawn_s": round(baseline, 3),
        "start_cpu_s": round(cpu_start, 3),
        "steady_cpu_pct_of_one_core": round(100.0 * steady_cpu / steady_elapsed, 1),
        "whole_run_cpu_pct_of_one_core": round(100.0 * total_cpu / total_elapsed, 1),
        "rss_peak_mib": round(rss_peak / 2**20, 1),
        "pss_mib": round(pss / 2**20, 1),
        "line_to_reporter_ms_p50": round(1000 * percentile(delays, 50), 2),
        "line_to_reporter_ms_p99": round(1000 * percentile(delays, 99), 2),
        "lines": len(delays),
        "runs_successful": sum(o.run_status == "success" for o in outcomes.values()),
        "runs_output_intact": intact,
        "steady_scans_per_s": round(steady_scans / steady_elapsed, 2),
        "steady_sample_passes_per_s": round(steady_passes / steady_elapsed, 2),
        "sample_interval_s": round(sample_interval, 3),
        "scans_total": runner.scans,
        "control_calls_per_s": round(hub.control_calls / total_elapsed, 1),
        "heartbeat_calls": hub.heartbeat_calls,
        "samples_per_run": round(sum(r.samples for r in reporters.values()) / n, 1),
        "host_processes": len(psutil.pids()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="runs at once (repeatable; default 200)")
    parser.add_argument("--seconds", type=int, default=20, help="lines per script, one a second")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    results = [bench(n, args.seconds) for n in (args.n or [200])]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        print(f"\nN = {result['n']} scripts, a line a second for {result['seconds']} s, one Runner")
        for key, value in result.items():
            if key not in ("n", "seconds"):
                print(f"  {key:34} {value}")


if __name__ == "__main__":
    main()
