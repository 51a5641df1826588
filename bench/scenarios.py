"""The four measurements. Each returns a plain dict for the JSON report.

Every stack figure is measured beside a baseline taken in the same run: the same
script spawned directly with ``subprocess`` from this process.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.util import (
    TERMINAL,
    RssSampler,
    command_for,
    direct_env,
    drain_pipe,
    first_output_ts,
    parse_ts,
    percentile,
    post_run,
    spawn_first_line,
    spawn_to_exit,
    summary_ms,
    vm_hwm,
    wait_terminal,
    worker_pid_of,
)
from tests.stack import Stack

ONE_LINE_SH = "echo ok\n"

# ~100-byte lines written in 1 MB blocks: the cost is in the capture, not the script.
FLOOD_PY = """\
import sys

total = int(sys.argv[1])
line = b"x" * 99 + b"\\n"
block = line * 10_000
out = sys.stdout.buffer
written = 0
while written + len(block) <= total:
    out.write(block)
    written += len(block)
out.write(line * ((total - written) // len(line)))
out.flush()
"""

# Writes the time SIGTERM arrived (to a file and to stdout), then exits.
TRAP_PY = """\
import signal, sys, time

mark = sys.argv[1]


def on_term(signum, frame):
    now = time.time()
    with open(mark, "w") as fh:
        fh.write(repr(now))
    print(f"signalled {now!r}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def _median(values: list[float]) -> float | None:
    return percentile(values, 50) if values else None


# -- 1. launch latency ----------------------------------------------------------------
def launch_stack(stack: Stack, *, samples: int) -> dict[str, Any]:
    """POST /api/run of ``echo ok`` until its line is readable through GET .../logs."""
    script = stack.script("ok.sh", ONE_LINE_SH)
    latencies: list[float] = []
    server_side: list[float] = []
    phases: dict[str, list[float]] = {"post": [], "queue": [], "spawn": [], "visible": []}
    polls: list[int] = []
    with stack.client() as client:
        for _ in range(samples):
            wall0 = time.time()
            t0 = time.perf_counter()
            run_id = post_run(client, script)
            t_post = time.perf_counter()
            n = 0
            while True:
                n += 1
                resp = client.get(f"/api/runs/{run_id}/logs", params={"stream": "stdout"})
                if resp.status_code != 200:
                    raise RuntimeError(f"GET logs answered {resp.status_code}: {resp.text[:300]}")
                if resp.content:
                    break
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            polls.append(n)
            # Not timed: let the run finish so the next sample starts from an idle stack.
            run = wait_terminal(client, run_id)
            created, started = parse_ts(run["created_at"]), parse_ts(run["started_at"])
            out_ts = first_output_ts(stack, run_id)
            phases["post"].append(t_post - t0)
            if created is not None and started is not None:
                phases["queue"].append(started - created)
            if started is not None and out_ts is not None:
                phases["spawn"].append(out_ts - started)
            if out_ts is not None:
                phases["visible"].append(wall0 + (t1 - t0) - out_ts)
                server_side.append(out_ts - wall0)
    return {
        **summary_ms(latencies),
        "first_output_read_by_engine": {
            k: v for k, v in summary_ms(server_side).items() if k != "samples_ms"
        },
        "phases_p50_ms": {name: _ms(_median(vals)) for name, vals in phases.items()},
        "phases_samples_ms": {name: [_ms(v) for v in vals] for name, vals in phases.items()},
        "phases_note": (
            "post: POST round trip; queue: created_at -> started_at (broker + claim); "
            "spawn: started_at -> first output read from the pipe by the engine; "
            "visible: that read -> first non-empty GET .../logs (store + polling)"
        ),
        "polls_per_sample_p50": _median([float(p) for p in polls]),
    }


def launch_direct(*, samples: int, script: Path) -> dict[str, Any]:
    cmd = command_for(script)
    for _ in range(3):
        spawn_first_line(cmd)
    return summary_ms([spawn_first_line(cmd) for _ in range(samples)])


# -- 2. output capture ----------------------------------------------------------------------
def capture_stack(stack: Stack, *, total_bytes: int, repeats: int) -> dict[str, Any]:
    script = stack.script("flood.py", FLOOD_PY)
    runs: list[dict[str, Any]] = []
    with stack.client(timeout=120) as client:
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_id = post_run(client, script, [str(total_bytes)])
            deadline = time.monotonic() + 60
            while True:
                run = client.get(f"/api/runs/{run_id}").json()
                if run.get("pid") or run.get("status") in TERMINAL or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            worker = worker_pid_of(stack, run)
            if worker is None:
                raise RuntimeError(f"could not find the worker of run {run_id}: {run}")
            with RssSampler(worker, interval=0.05) as sampler:
                run = wait_terminal(client, run_id, timeout=600, every=0.02)
            t_done = time.perf_counter() - t0
            stored = sum(p.stat().st_size for p in (stack.data_dir / "runs" / run_id).glob("seg-*.out"))
            duration = float(run["duration"] or 0.0)
            out_bytes = int(run["output_bytes"] or 0)
            runs.append(
                {
                    "run_id": run_id,
                    "status": run["status"],
                    "output_bytes": out_bytes,
                    "stored_bytes_on_disk": stored,
                    "output_truncated": run["output_truncated"],
                    "fully_stored": out_bytes == total_bytes == stored and not run["output_truncated"],
                    "duration_s": round(duration, 4),
                    "post_to_completed_s": round(t_done, 4),
                    "throughput_mb_s": round(out_bytes / duration / 1e6, 1) if duration else None,
                    "end_to_end_mb_s": round(out_bytes / t_done / 1e6, 1),
                    "worker_pid": worker,
                    "worker_rss_first_mb": round(sampler.samples[0] / 1e6, 1) if sampler.samples else None,
                    "worker_rss_peak_sampled_mb": round(sampler.peak / 1e6, 1),
                    "worker_rss_samples": len(sampler.samples),
                    "worker_vmhwm_mb": round((vm_hwm(worker) or 0) / 1e6, 1),
                    "script_peak_rss_mb": round((run.get("peak_rss") or 0) / 1e6, 1),
                }
            )
    durations = [r["duration_s"] for r in runs]
    mid = runs[durations.index(sorted(durations)[(len(durations) - 1) // 2])]  # the median run
    return {
        "bytes": total_bytes,
        "repeats": repeats,
        "median_run": mid,
        "throughput_mb_s": mid["throughput_mb_s"],
        "end_to_end_mb_s": mid["end_to_end_mb_s"],
        "duration_s": mid["duration_s"],
        "fully_stored": all(r["fully_stored"] for r in runs),
        "worker_peak_rss_mb": max(max(r["worker_rss_peak_sampled_mb"], r["worker_vmhwm_mb"]) for r in runs),
        "runs": runs,
    }


def capture_direct(*, script: Path, total_bytes: int, repeats: int, scratch: Path) -> dict[str, Any]:
    """The same script into a pipe drained in 1 MiB reads: discarded, and (for scale) into a file."""
    cmd = command_for(script, [str(total_bytes)])

    def summarise(samples: list[tuple[float, int]]) -> dict[str, Any]:
        mid = sorted(s for s, _ in samples)[(len(samples) - 1) // 2]
        return {
            "bytes": samples[0][1],
            "duration_s": round(mid, 4),
            "throughput_mb_s": round(samples[0][1] / mid / 1e6, 1),
            "samples_s": [round(s, 4) for s, _ in samples],
        }

    discarded = summarise([drain_pipe(cmd) for _ in range(repeats)])
    stored = summarise([drain_pipe(cmd, into=scratch / "drained.out") for _ in range(repeats)])
    return {**discarded, "into_file": stored}


# -- 3. burst ---------------------------------------------------------------------------------
def burst_stack(stack: Stack, *, runs: int, repeats: int) -> dict[str, Any]:
    """``runs`` POSTs released at once from as many threads; wall time until all are finished."""
    script = stack.script("burst.sh", ONE_LINE_SH)
    walls: list[float] = []
    posted: list[float] = []
    server: list[float] = []
    statuses: dict[str, int] = {}
    clients = [stack.client() for _ in range(runs)]
    try:
        for c in clients:
            c.get("/api/runs", params={"page_size": 1})  # open the connection beforehand
        with stack.client() as poller:
            for _ in range(repeats):
                barrier = threading.Barrier(runs + 1)

                def fire(i: int, barrier: threading.Barrier = barrier) -> str:
                    barrier.wait()
                    return post_run(clients[i], script)

                with ThreadPoolExecutor(runs) as pool:
                    futures = [pool.submit(fire, i) for i in range(runs)]
                    barrier.wait()
                    wall0 = time.time()
                    t0 = time.perf_counter()
                    ids = {f.result() for f in futures}
                    posted.append(time.perf_counter() - t0)
                # A cheap poll (a count of the burst's active runs, one row at most) so the
                # poller does not take CPU from the stack it measures.
                active = {"script_path": "burst.sh", "status": ["queued", "running"], "page_size": 1}
                deadline = time.monotonic() + 120
                while poller.get("/api/runs", params=active).json()["count"]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("burst runs did not finish in 120 s")
                    time.sleep(0.01)
                walls.append(time.perf_counter() - t0)
                rows = poller.get("/api/runs", params={"script_path": "burst.sh", "page_size": 1000}).json()
                mine = [r for r in rows["results"] if r["id"] in ids]
                if len(mine) != runs:
                    raise RuntimeError(f"found {len(mine)} of the {runs} burst runs")
                finished = [parse_ts(r["finished_at"]) for r in mine]
                server.append(max(f for f in finished if f is not None) - wall0)
                for r in mine:
                    statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    finally:
        for c in clients:
            c.close()
    return {
        "runs": runs,
        "repeats": repeats,
        "workers": stack.workers,
        "wall_ms": _ms(_median(walls)),
        "wall_samples_ms": [_ms(w) for w in walls],
        "all_posted_ms": _ms(_median(posted)),
        "last_finished_at_ms": _ms(_median(server)),
        "statuses": statuses,
    }


def burst_direct(*, script: Path, runs: int, parallel: int, repeats: int) -> dict[str, Any]:
    cmd = command_for(script)
    walls: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda _: spawn_to_exit(cmd), range(runs)))
        walls.append(time.perf_counter() - t0)
    return {
        "runs": runs,
        "parallel": parallel,
        "wall_ms": _ms(_median(walls)),
        "wall_samples_ms": [_ms(w) for w in walls],
    }


# -- 4. control latency -------------------------------------------------------------------------
def control_stack(stack: Stack, *, samples: int) -> dict[str, Any]:
    """POST /api/runs/{id}/stop until the script's SIGTERM handler runs."""
    script = stack.script("trap.py", TRAP_PY)
    marks = stack.base_dir / "marks"
    marks.mkdir(exist_ok=True)
    latencies: list[float] = []
    post_rtt: list[float] = []
    statuses: dict[str, int] = {}
    rng = random.Random(1)
    with stack.client() as client:
        for i in range(samples):
            mark = marks / f"stack-{i}.txt"
            run_id = post_run(client, script, [str(mark)])
            deadline = time.monotonic() + 30
            while b"ready" not in client.get(f"/api/runs/{run_id}/logs").content:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"control script {run_id} never became ready")
                time.sleep(0.005)
            # A random phase against the runner's control poll, so samples do not alias with it.
            time.sleep(rng.uniform(0.0, 0.1))
            before = time.time()
            resp = client.post(f"/api/runs/{run_id}/stop")
            post_rtt.append(time.time() - before)
            if resp.status_code != 200:
                raise RuntimeError(f"stop answered {resp.status_code}: {resp.text[:300]}")
            run = wait_terminal(client, run_id, timeout=30)
            statuses[run["status"]] = statuses.get(run["status"], 0) + 1
            latencies.append(float(mark.read_text()) - before)
    return {
        **summary_ms(latencies),
        "post_stop_round_trip_p50_ms": _ms(_median(post_rtt)),
        "statuses": statuses,
    }


def control_direct(*, script: Path, samples: int, marks: Path) -> dict[str, Any]:
    """os.kill(SIGTERM) to the same script spawned directly, until its handler runs."""
    marks.mkdir(parents=True, exist_ok=True)
    latencies: list[float] = []
    for i in range(samples):
        mark = marks / f"direct-{i}.txt"
        proc = subprocess.Popen(
            command_for(script, [str(mark)]),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=direct_env(),
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
        before = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        proc.wait()
        latencies.append(float(mark.read_text()) - before)
    return summary_ms(latencies)
