"""Live output latency: how long a printed line takes to reach a websocket / SSE client.

A script prints a line holding its own ``time.time()`` every 10 ms for 5 s; a client
on the same machine (same clock) notes when each line arrives and keeps the
difference. Measured on a real stack (``manage.py serve``: daphne and the django-q2
workers as separate processes) in the default configuration, where the live views
poll the persisted output store, and with ``SCRIPTOPS_REDIS_URL``, where the runner's
Redis wake-ups reach them at once. ``bench/run.py`` calls :func:`measure_live`.

    .venv/bin/python bench/live.py [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from bench.util import percentile, post_run, redis_reachable, running_stack, warm_up  # noqa: E402
from tests.stack import Stack  # noqa: E402

REDIS_URL = os.environ.get("SCRIPTOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGETS = {
    "default": {"p50_ms": 25.0, "p99_ms": 100.0},
    "redis": {"p50_ms": 5.0},
}
INTERVAL = 0.01
# The script waits this long before ticking so the client is connected and caught up:
# only lines printed while it is watching count.
LEAD_IN = 1.5

TICKER = """
import sys, time
interval, seconds, lead_in = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
time.sleep(lead_in)
start = time.monotonic()
i = 0
while time.monotonic() - start < seconds:
    i += 1
    print(f"tick {i} {time.time():.6f}", flush=True)
    time.sleep(interval)
print("end", flush=True)
"""

NOOP = "pass\n"


def summary(delays_s: list[float]) -> dict[str, Any]:
    ms = [d * 1000.0 for d in delays_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
    }


def tick_delay(content: str, received: float) -> float | None:
    parts = content.split()
    if len(parts) != 3 or parts[0] != "tick":
        return None
    return received - float(parts[2])


def websocket_delays(stack: Stack, run_id: str, *, deadline: float) -> list[float]:
    url = f"ws://127.0.0.1:{stack.port}/ws/runs/{run_id}/?api_key={stack.key}"
    delays: list[float] = []
    with connect(url, open_timeout=30, max_size=None, max_queue=None) as ws:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            raw = ws.recv(timeout=max(0.1, end - time.monotonic()))
            received = time.time()
            message = json.loads(raw)
            if message["type"] == "log_entry":
                delay = tick_delay(message["data"]["content"], received)
                if delay is not None:
                    delays.append(delay)
            elif message["type"] == "execution_completed":
                return delays
    raise RuntimeError(f"websocket: run {run_id} did not complete within {deadline}s")


def sse_delays(stack: Stack, run_id: str, *, deadline: float) -> list[float]:
    delays: list[float] = []
    headers = {"Authorization": f"Bearer {stack.key}"}
    with (
        httpx.Client(base_url=stack.url, headers=headers, timeout=deadline) as client,
        client.stream("GET", f"/api/runs/{run_id}/stream") as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"SSE answered {response.status_code}")
        for line in response.iter_lines():
            received = time.time()
            if not line.startswith("data: "):
                continue
            frame = json.loads(line[6:])
            if frame["type"] == "log_entry":
                delay = tick_delay(frame["content"], received)
                if delay is not None:
                    delays.append(delay)
            elif frame["type"] == "exit":
                return delays
    raise RuntimeError(f"SSE: run {run_id} ended without an exit frame")


def measure_one(
    stack: Stack, client: httpx.Client, script: Path, reader: Callable[..., list[float]], seconds: float
) -> dict[str, Any]:
    run_id = post_run(client, script, [str(INTERVAL), str(seconds), str(LEAD_IN)])
    delays = reader(stack, run_id, deadline=seconds + LEAD_IN + 60)
    return summary(delays)


def measure_config(label: str, *, redis_url: str, seconds: float) -> dict[str, Any]:
    with running_stack(f"live-{label}", workers=2, redis_url=redis_url) as stack:
        script = stack.script("ticker.py", textwrap.dedent(TICKER).lstrip("\n"))
        noop = stack.script("noop.py", NOOP)
        with stack.client() as client:
            warm_up(stack, client, noop, count=2)
            websocket = measure_one(stack, client, script, websocket_delays, seconds)
            sse = measure_one(stack, client, script, sse_delays, seconds)
    result: dict[str, Any] = {"websocket": websocket, "sse": sse}
    targets = TARGETS[label]
    result["targets"] = targets
    result["met"] = {
        channel: all(
            result[channel].get(name) is not None and result[channel][name] < limit
            for name, limit in targets.items()
        )
        for channel in ("websocket", "sse")
    }
    return result


class LoadSampler:
    """The 1-minute load average before and after (the machine may be shared)."""

    def __init__(self) -> None:
        self.start = os.getloadavg()[0]
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=2)
        return {"start": round(self.start, 2), "peak": round(self.peak, 2), "cpus": os.cpu_count() or 0}


def measure_live(quick: bool = False) -> dict[str, Any]:
    """Print-to-client delay of live output, websocket and SSE, default and with Redis.

    Returns ``{"default": {...}, "redis": {...} or {"skipped": reason}, ...}``; each
    config holds ``websocket`` and ``sse`` summaries (n, p50/p90/p99/min/max in ms),
    its ``targets`` and whether each channel ``met`` them.
    """
    seconds = 2.0 if quick else 5.0
    load = LoadSampler()
    out: dict[str, Any] = {
        "script": f"one line with its time.time() every {INTERVAL * 1000:g} ms for {seconds:g} s",
        "clients": "websocket /ws/runs/<id>/ and SSE /api/runs/<id>/stream, same machine",
    }
    try:
        out["default"] = measure_config("default", redis_url="", seconds=seconds)
    except Exception as exc:
        out["default"] = {"error": f"{type(exc).__name__}: {exc}"}
    ok, reason = redis_reachable(REDIS_URL)
    if not ok:
        out["redis"] = {"skipped": f"Redis at {REDIS_URL} unreachable: {reason}"}
    else:
        try:
            out["redis"] = measure_config("redis", redis_url=REDIS_URL, seconds=seconds)
        except Exception as exc:
            out["redis"] = {"error": f"{type(exc).__name__}: {exc}"}
    out["load_avg_1m"] = load.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(measure_live(quick="--quick" in sys.argv[1:]), indent=2))
