"""Runs at scale, end to end: what a client sees with 20, 200 and 1,000 scripts at once.

A real stack (``manage.py serve`` with its workers, as ``make run`` starts it, on a
fresh data dir) in the default configuration (SQLite + the database broker) and with
Redis (``SCRIPTOPS_REDIS_URL``), driven by one asyncio client in this process (aiohttp;
its own CPU is reported beside the figures: it shares the machine):

1. **Scale**: N scripts (N = 20, 200, 1,000; ``--quick``: 20 and 200), each printing one
   line a second (``line <i> <its own time>``) for 60 s (``--quick``: 15 s), all POSTed
   at once (``POST /api/run``); the client follows every run's websocket
   (``/ws/runs/<id>/``) until ``execution_completed``. Figures: first POST -> all N
   ``running`` as the client sees it (a ``status`` message, or the run's first line),
   PSS of ScriptOps's processes (serve and its descendants, minus the scripts and their
   children: a process whose environment holds ``SCRIPTOPS_RUN_ID``, and its subtree)
   sampled over the steady phase (all running -> the first run's last line), their CPU
   over that phase in % of one core, line printed -> websocket client p50/p99 (of all
   lines, and of those printed once all N were running: without the launch storm), and
   whether every line of every run arrived exactly once and in order. Beside it, in the
   same run: the same N scripts spawned by a bare Python process (``subprocess`` +
   ``selectors``), its PSS, CPU and print -> read delay.
2. **Trivial run**: POST -> ``execution_completed`` on the websocket, one at a time
   (p50/p95 of 30), and 20 POSTed at once -> all completed (median of 3).
3. **Throughput**: 50 MiB of 64-byte lines reaching a websocket client: MiB/s from the
   POST to ``execution_completed``, and ScriptOps's CPU seconds per MiB (the sum of its
   processes' CPU time deltas, from /proc).

The scripts are bash (``$EPOCHREALTIME`` is the printed time; the wait is a builtin
``read -t``): at 1,000 at once a Python interpreter per script would measure
CPython's start-up and 1,000 x 8 MB of private memory rather than ScriptOps.
The 50 MiB writer is Python. ``SCRIPTOPS_MAX_RUNS`` is set to the largest N (the
per-host run capacity); ``SCRIPTOPS_MAX_OUTPUT_BYTES`` to 128 MiB (the default cap is
exactly 50 MiB, which is not what the throughput figure is about). Every phase has a
deadline: runs that never start fail the phase with a message, they do not hang it.

    .venv/bin/python bench/scale.py [--quick] [--n 4 --seconds 10] [--config default,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from bench.report import figure  # noqa: E402
from bench.util import percentile, redis_reachable, running_stack, warm_up  # noqa: E402
from tests.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKERS = 2  # SCRIPTOPS_WORKERS' default (scriptops/settings.py): the product as configured
MAX_OUTPUT_BYTES = 128 * 1024 * 1024
MIB = 1024 * 1024
THROUGHPUT_BYTES = 50 * MIB
LINE_BYTES = 64
TRIVIAL_SAMPLES = 30
BURST_RUNS = 20
BURST_REPEATS = 3
POST_CONNECTIONS = 32  # HTTP connections the client POSTs over (a burst of 1,000 shares them)

TARGETS = {
    "n200_all_running_s": 1.0,
    "n200_pss_mb": 400.0,
    "n200_cpu_pct": 30.0,
    "n200_line_p50_ms": 10.0,
    "n200_line_p99_ms": 50.0,
    "trivial_default_p50_ms": 40.0,
    "burst20_ms": 150.0,
    "throughput_mib_s": 50.0,
}

# One line a second: "line <i> <epoch seconds>"; the wait is a builtin (no fork a second):
# a read with a timeout on a pipe this shell holds both ends of, so nothing ever arrives.
TICKER_SH = """\
#!/bin/bash
n=$1
exec 3<> <(:)
for ((i = 1; i <= n; i++)); do
  printf 'line %d %s\\n' "$i" "$EPOCHREALTIME"
  if ((i < n)); then read -r -t 1 -u 3; fi
done
"""

TRIVIAL_SH = "echo ok\n"

# 64-byte lines "<15-digit line number> xxx...\\n", written in blocks of 16,384 lines.
FLOOD_PY = """\
import sys

total = int(sys.argv[1])
lines = total // 64
out = sys.stdout.buffer
pad = b" " + b"x" * 47 + b"\\n"
i = 0
while i < lines:
    end = min(lines, i + 16384)
    out.write(b"".join(b"%015d" % k + pad for k in range(i, end)))
    i = end
out.flush()
"""

# The baseline: the same N scripts spawned by a bare Python process, read with selectors.
# It samples its own PSS and CPU (not its children's) over the same steady phase.
DIRECT_PY = """\
import json, os, selectors, subprocess, sys, time

script, n, seconds, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/")}


def pss():
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu():
    t = os.times()
    return t.user + t.system


sel = selectors.DefaultSelector()
t0 = time.monotonic()
procs, bufs, seen, delays, first = [], {}, {}, [], {}
for k in range(n):
    p = subprocess.Popen(["/bin/bash", script, str(seconds)], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    procs.append(p)
    os.set_blocking(p.stdout.fileno(), False)
    sel.register(p.stdout.fileno(), selectors.EVENT_READ, k)
    bufs[k], seen[k] = b"", []
open_fds, all_running, steady_end, samples, cpu0 = n, None, None, [], None
all_running_wall, steady_delays = None, []
next_sample = 0.0
while open_fds:
    now_m = time.monotonic()
    if now_m - t0 > deadline:
        print(json.dumps({"error": f"direct spawn of {n} not done in {deadline:.0f}s"}))
        for p in procs:
            p.kill()
        sys.exit(1)
    for key, _ in sel.select(timeout=0.2):
        k = key.data
        data = os.read(key.fd, 65536)
        now = time.time()
        if not data:
            sel.unregister(key.fd)
            open_fds -= 1
            continue
        bufs[k] += data
        *done, bufs[k] = bufs[k].split(b"\\n")
        for raw in done:
            parts = raw.split()
            i = int(parts[1])
            seen[k].append(i)
            delays.append(now - float(parts[2]))
            if all_running_wall is not None and float(parts[2]) >= all_running_wall:
                steady_delays.append(now - float(parts[2]))
            first.setdefault(k, time.monotonic())
            if i == seconds and steady_end is None and all_running is not None:
                steady_end = time.monotonic()
    if all_running is None and len(first) == n:
        all_running = time.monotonic()
        all_running_wall = time.time()
        cpu0 = (all_running, cpu())
    now_m = time.monotonic()
    if all_running is not None and steady_end is None and now_m >= next_sample:
        samples.append(pss())
        next_sample = now_m + 1.0
        cpu1 = (now_m, cpu())
for p in procs:
    p.wait()
intact = sum(seen[k] == list(range(1, seconds + 1)) for k in range(n))
window = (cpu1[0] - cpu0[0]) if samples and cpu0 else 0.0
print(json.dumps({
    "n": n,
    "all_running_s": round(all_running - t0, 3) if all_running else None,
    "delays": delays,
    "steady_delays": steady_delays,
    "intact_runs": intact,
    "pss_samples": samples,
    "cpu_window_s": window,
    "cpu_s": (cpu1[1] - cpu0[1]) if samples and cpu0 else None,
    "wall_s": round(time.monotonic() - t0, 3),
}))
"""


# -- ScriptOps's processes, from /proc ---------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, int, str] | None:
    """(ppid, user+system CPU seconds, start time in ticks, state) of ``pid``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2 :].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK, int(rest[19]), rest[0].decode()


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _is_script(pid: int) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return b"\0SCRIPTOPS_RUN_ID=" in b"\0" + env


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    return " ".join(Path(parts[0]).name if i == 0 else p for i, p in enumerate(parts[:4]))[:80]


class ScriptOpsProcesses:
    """Serve and its descendants, minus the scripts (``SCRIPTOPS_RUN_ID`` in their
    environment) and everything below them. A process is keyed by (pid, start time) so a
    reused pid is a new process; a script, once recognised, stays one (a fork not yet
    exec'd still carries its worker's environment, so non-scripts are re-checked)."""

    def __init__(self, root: int):
        self.root = root
        self.scripts: set[tuple[int, int]] = set()
        self.current: list[tuple[int, int]] = []
        self.first_cpu: dict[tuple[int, int], float] = {}
        self.last_cpu: dict[tuple[int, int], float] = {}
        self.window_open = False

    def scan(self) -> None:
        children: dict[int, list[tuple[int, int]]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = _stat(int(name))
            if st is None or st[3] == "Z":
                continue
            children.setdefault(st[0], []).append((int(name), st[2]))
        found: list[tuple[int, int]] = []
        root_stat = _stat(self.root)
        todo = deque([(self.root, root_stat[2])] if root_stat else [])
        while todo:
            key = todo.popleft()
            if key in self.scripts:
                continue
            if key[0] != self.root and _is_script(key[0]):
                self.scripts.add(key)
                continue
            found.append(key)
            todo.extend(children.get(key[0], []))
        self.current = found

    def sample(self) -> tuple[int, int]:
        """(total PSS in bytes, processes) now; notes each process's CPU time."""
        total = 0
        for key in self.current:
            st = _stat(key[0])
            if st is None or st[2] != key[1]:
                continue
            # A process first seen after the window opened was born in it: all its CPU counts.
            self.first_cpu.setdefault(key, st[1] if not self.window_open else 0.0)
            self.last_cpu[key] = st[1]
            total += _pss(key[0])
        return total, len(self.current)

    def open_window(self) -> None:
        self.scan()
        self.first_cpu.clear()
        self.last_cpu.clear()
        self.window_open = False
        self.sample()
        self.window_open = True

    def cpu_seconds(self) -> float:
        return sum(self.last_cpu[k] - self.first_cpu[k] for k in self.last_cpu)

    def describe(self) -> list[str]:
        return [f"{pid} {_cmdline(pid)}" for pid, _ in self.current]


class SteadySampler:
    """PSS every ``interval`` s in a thread (a full /proc scan every ``rescan`` samples),
    and CPU seconds between :meth:`start` and :meth:`stop`."""

    def __init__(self, root: int, *, interval: float, rescan: int = 5):
        self.procs = ScriptOpsProcesses(root)
        self.interval = interval
        self.rescan = rescan
        self.pss: list[int] = []
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = self.t1 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.procs.open_window()
        self._thread.start()

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            if n % self.rescan == 0:
                self.procs.scan()
            pss, count = self.procs.sample()
            self.pss.append(pss)
            self.counts.append(count)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.procs.sample()
        self.t1 = time.monotonic()
        window = self.t1 - self.t0
        cpu = self.procs.cpu_seconds()
        return {
            "window_s": round(window, 2),
            "pss_samples": len(self.pss),
            "pss_max_mb": round(max(self.pss) / 1e6, 1) if self.pss else None,
            "pss_mean_mb": round(statistics.fmean(self.pss) / 1e6, 1) if self.pss else None,
            "cpu_s": round(cpu, 2),
            "cpu_pct_one_core": round(100.0 * cpu / window, 1) if window > 0 else None,
            "processes": max(self.counts, default=0),
            "process_list": self.procs.describe(),
        }


# -- the client ---------------------------------------------------------------------------
class PhaseFailed(RuntimeError):
    pass


@dataclass
class Followed:
    """One run as the client saw it (monotonic times; ``delays`` in seconds)."""

    posted_at: float = 0.0
    run_id: str = ""
    running_at: float | None = None
    completed_at: float | None = None
    last_line_at: float | None = None
    status: str | None = None
    lines: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    printed: list[float] = field(default_factory=list)  # when each line was printed (epoch s)


def _ticker_line(rec: Followed, content: str, wall: float) -> None:
    parts = content.split()
    if len(parts) == 3 and parts[0] == "line":
        rec.lines.append(int(parts[1]))
        rec.delays.append(wall - float(parts[2]))
        rec.printed.append(float(parts[2]))


def _no_line(rec: Followed, content: str, wall: float) -> None:
    rec.lines.append(0)


class Client:
    """POSTs runs and follows their websockets, in this process's event loop.

    aiohttp (its HTTP parser and websocket reader are compiled): the client shares this
    2-core machine with ScriptOps, and its CPU is taken from the server's. Against httpx
    + websockets it spends ~a third of the CPU a run (20 trivial runs at once: 33 against
    94 ms), which the bench reports beside every figure (``client_cpu``)."""

    def __init__(self, stack: Stack):  # made inside the running loop (its session is bound to it)
        self.stack = stack
        self.ws_base = f"ws://127.0.0.1:{stack.port}/ws/runs"
        self.http = aiohttp.ClientSession(
            base_url=stack.url,
            headers={"Authorization": f"Bearer {stack.key}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=120),
            # No cap on connections: one per websocket; the POSTs' are capped by _posts.
            connector=aiohttp.TCPConnector(limit=0),
        )
        # At most POST_CONNECTIONS POSTs at once, their keep-alive connections reused.
        self._posts = asyncio.Semaphore(POST_CONNECTIONS)

    async def close(self) -> None:
        await self.http.close()

    async def run(
        self, script: Path, args: list[str], rec: Followed, on_line: Callable[[Followed, str, float], None]
    ) -> None:
        http = self.http
        rec.posted_at = time.monotonic()
        async with (
            self._posts,
            http.post("/api/run", json={"script_path": str(script), "args": args}) as resp,
        ):
            body = await resp.read()
            if resp.status != 202:
                raise PhaseFailed(f"POST /api/run answered {resp.status}: {body[:300]!r}")
        rec.run_id = str(json.loads(body)["id"])
        url = f"{self.ws_base}/{rec.run_id}/?api_key={self.stack.key}"
        # No compression (the server does not negotiate it) and no client pings (daphne pings).
        async with http.ws_connect(url, autoping=True, heartbeat=None, max_msg_size=0, compress=0) as ws:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                wall, now = time.time(), time.monotonic()
                msg = json.loads(frame.data)
                kind = msg["type"]
                if kind == "log_entry":
                    data = msg["data"]
                    if data["stream"] == "stdout":
                        if rec.running_at is None:
                            rec.running_at = now
                        rec.last_line_at = now
                        on_line(rec, data["content"], wall)
                elif kind == "status":
                    status = msg["data"]["status"]
                    if rec.running_at is None and status not in ("queued", "pending"):
                        rec.running_at = now
                elif kind == "execution_completed":
                    rec.completed_at = now
                    rec.status = msg["data"]["status"]
                    return
                elif kind == "error":
                    raise PhaseFailed(f"run {rec.run_id}: websocket error {msg['data']}")
        raise PhaseFailed(f"run {rec.run_id}: the websocket closed before execution_completed")


async def _gather(
    label: str,
    coros: list[Any],
    recs: list[Followed],
    *,
    running_within: float,
    done_within: float,
    on_all_running: Callable[[], None] | None = None,
    steady_over: Callable[[], bool] | None = None,
    on_steady_over: Callable[[], None] | None = None,
) -> tuple[float, float | None]:
    """Run ``coros`` (one per run) with deadlines; returns (t0, all running at)."""
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(c) for c in coros]
    all_running: float | None = None
    steady_done = False
    try:
        while True:
            done = [t for t in tasks if t.done()]
            for t in done:
                if t.exception() is not None:
                    raise PhaseFailed(f"{label}: {t.exception()}") from t.exception()
            if len(done) == len(tasks):
                break
            now = time.monotonic()
            running = sum(r.running_at is not None for r in recs)
            if all_running is None and running == len(recs):
                all_running = now
                if on_all_running:
                    on_all_running()
            if all_running is None and now - t0 > running_within:
                posted = sum(bool(r.run_id) for r in recs)
                raise PhaseFailed(
                    f"{label}: only {running} of {len(recs)} runs were running {running_within:.0f}s after "
                    f"the first POST ({posted} posted). Does the host run that many at once "
                    f"(SCRIPTOPS_MAX_RUNS; before the runner, at most SCRIPTOPS_WORKERS)?"
                )
            if all_running is not None and not steady_done and steady_over and steady_over():
                steady_done = True
                if on_steady_over:
                    on_steady_over()
            if now - t0 > done_within:
                completed = sum(r.completed_at is not None for r in recs)
                raise PhaseFailed(
                    f"{label}: only {completed} of {len(recs)} runs completed "
                    f"{done_within:.0f}s after the first POST"
                )
            await asyncio.wait(tasks, timeout=0.05, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if not steady_done and on_steady_over:
        on_steady_over()
    return t0, all_running


def _ms_summary(delays_s: list[float], *pcts: int) -> dict[str, Any]:
    ms = [d * 1000.0 for d in delays_s]
    if not ms:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(ms)}
    for p in pcts:
        out[f"p{p}_ms"] = round(percentile(ms, p), 2)
    out["max_ms"] = round(max(ms), 2)
    return out


def _first_difference(got: list[int], expected: list[int]) -> int:
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return i
    return min(len(got), len(expected))


# -- a lean websocket reader for the 50 MiB phase ---------------------------------------------
# One log_entry message per line: 819,200 messages. The websockets library costs ~8 µs of
# this process's CPU per message (6.5 s for 50 MiB), which would cap the figure at ~7 MiB/s.
# This reader parses frames in a tight loop and checks the lines with one regex per 1 MiB
# read: ~1 µs per message.
# A stdout line of the flood in either form: log_entry ("stream": "stdout", "content": "…")
# or an item of a log_batch ([offset, "stdout", "…", ts]).
FLOOD_LINE = re.compile(rb"^(\d{15}) x{47}$", re.M)  # in a log_batch chunk's text
BATCH = b'{"type": "log_batch"'
FLOOD_CONTENT = re.compile(rb'"stdout", (?:"content": )?"(\d{15}) x{47}"')
COMPLETED = b'{"type": "execution_completed"'


@dataclass
class RawFollow:
    lines: int = 0
    intact: bool = True
    completed_at: float | None = None
    first_at: float | None = None
    last_at: float | None = None
    status: str | None = None


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body  # control frames: < 126 bytes


def follow_flood_raw(port: int, path: str, *, timeout: float) -> RawFollow:
    """Follow ``path`` on a plain socket until ``execution_completed``; check the flood lines."""
    out = RawFollow()
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Origin: http://127.0.0.1\r\n\r\n"
            ).encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise PhaseFailed(f"websocket handshake: connection closed ({buf[:200]!r})")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise PhaseFailed(f"websocket handshake refused: {head[:300]!r}")
        expected = 0
        batch_lines: list[bytes] = []
        while out.completed_at is None:
            if time.monotonic() > deadline:
                raise PhaseFailed(f"50 MiB: no execution_completed within {timeout:.0f}s ({out.lines} lines)")
            chunk = sock.recv(1 << 20)
            now = time.monotonic()
            if not chunk:
                raise PhaseFailed(
                    f"50 MiB: the websocket closed before execution_completed ({out.lines} lines)"
                )
            buf += chunk
            texts: list[bytes] = []
            pos, size = 0, len(buf)
            while size - pos >= 2:
                length, hdr = buf[pos + 1] & 0x7F, 2
                if length == 126:
                    if size - pos < 4:
                        break
                    length, hdr = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
                elif length == 127:
                    if size - pos < 10:
                        break
                    length, hdr = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if size - pos < hdr + length:
                    break
                opcode = buf[pos] & 0x0F
                payload = buf[pos + hdr : pos + hdr + length]
                pos += hdr + length
                if opcode == 1:
                    if payload.startswith(BATCH):
                        # [first offset, stream, ts, text]: the lines joined by newlines.
                        for _first, stream, _ts, text in json.loads(payload)["data"]["chunks"]:
                            if stream == "stdout":
                                batch_lines.extend(FLOOD_LINE.findall(text.encode()))
                    elif payload.startswith(COMPLETED):
                        out.completed_at = now
                        out.status = json.loads(payload)["data"]["status"]
                    else:
                        texts.append(payload)
                elif opcode == 9:  # daphne's keep-alive ping
                    sock.sendall(_masked(0xA, payload))
                elif opcode == 8:
                    raise PhaseFailed(f"50 MiB: the server closed the websocket ({payload[:100]!r})")
            buf = buf[pos:]
            got = FLOOD_CONTENT.findall(b"\n".join(texts)) + batch_lines
            batch_lines.clear()
            if got:
                out.first_at = out.first_at or now
                out.last_at = now
                if got != [b"%015d" % k for k in range(expected, expected + len(got))]:
                    out.intact = False
                expected += len(got)
                out.lines += len(got)
        with contextlib.suppress(OSError):
            sock.sendall(_masked(0x8, (1000).to_bytes(2, "big")))
    return out


# -- the phases ---------------------------------------------------------------------------
async def scale_phase(stack: Stack, script: Path, *, n: int, seconds: int, interval: float) -> dict[str, Any]:
    client = Client(stack)
    recs = [Followed() for _ in range(n)]
    assert stack.proc is not None
    sampler = SteadySampler(stack.proc.pid, interval=interval)
    steady: dict[str, Any] = {}

    def over() -> bool:
        return any((r.lines and r.lines[-1] >= seconds) or r.completed_at is not None for r in recs)

    def end_steady() -> None:
        if sampler.t0 and not steady:
            steady.update(sampler.stop())

    running_wall: list[float] = []
    # CPU from the first POST until all are running: ScriptOps's processes and this client
    # (on a 2-core machine their sum over 2 is the least the ramp can take).
    ramp = ScriptOpsProcesses(stack.proc.pid)
    ramp.open_window()
    ramp_cpu: dict[str, float] = {}

    def when_all_running() -> None:
        running_wall.append(time.time())
        ramp.sample()
        ramp_cpu["server"] = ramp.cpu_seconds()
        ramp_cpu["client"] = _own_cpu() - client0
        sampler.start()

    client0 = _own_cpu()
    try:
        t0, all_running = await _gather(
            f"N={n}",
            [client.run(script, [str(seconds)], r, _ticker_line) for r in recs],
            recs,
            running_within=30.0 + n * 0.05,
            done_within=seconds + 90.0 + n * 0.1,
            on_all_running=when_all_running,
            steady_over=over,
            on_steady_over=end_steady,
        )
    finally:
        end_steady()
        await client.close()
    client_cpu = _own_cpu() - client0
    expected = list(range(1, seconds + 1))
    intact = [r.lines == expected for r in recs]
    problems = [
        f"{r.run_id}: {len(r.lines)} lines, first wrong at index {_first_difference(r.lines, expected)}"
        for r, ok in zip(recs, intact, strict=True)
        if not ok
    ][:10]
    statuses: dict[str, int] = {}
    for r in recs:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    done = [r.completed_at for r in recs if r.completed_at is not None]
    return {
        "n": n,
        "seconds": seconds,
        "all_running_s": round(all_running - t0, 3) if all_running else None,
        "ramp_server_cpu_s": round(ramp_cpu["server"], 2) if ramp_cpu else None,
        "ramp_client_cpu_s": round(ramp_cpu["client"], 2) if ramp_cpu else None,
        "all_completed_s": round(max(done) - t0, 2) if len(done) == n else None,
        "steady": steady,
        "line_to_ws": _ms_summary([d for r in recs for d in r.delays], 50, 99),
        # Lines printed once all N were running: without the launch storm.
        "line_to_ws_steady": _ms_summary(
            [
                d
                for r in recs
                for d, at in zip(r.delays, r.printed, strict=True)
                if running_wall and at >= running_wall[0]
            ],
            50,
            99,
        ),
        "intact_runs": sum(intact),
        "intact": all(intact),
        "problems": problems,
        "statuses": statuses,
        # This process (client and sampler): if it nears 100 % of a core, it is the bottleneck.
        "client_cpu_s": round(client_cpu, 2),
    }


def _own_cpu() -> float:
    """CPU seconds of this process (the client, its threads included) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def direct_phase(script: Path, *, n: int, seconds: int) -> dict[str, Any]:
    deadline = seconds + 60.0 + n * 0.05
    done = subprocess.run(
        [sys.executable, "-c", DIRECT_PY, str(script), str(n), str(seconds), str(deadline)],
        capture_output=True,
        text=True,
        timeout=deadline + 30,
    )
    try:
        raw: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise PhaseFailed(f"direct spawn of {n} failed ({done.returncode}): {done.stderr[-500:]}") from exc
    if "error" in raw:
        raise PhaseFailed(raw["error"])
    pss = raw.pop("pss_samples")
    window, cpu = raw.pop("cpu_window_s"), raw.pop("cpu_s")
    raw["line_to_read"] = _ms_summary(raw.pop("delays"), 50, 99)
    raw["line_to_read_steady"] = _ms_summary(raw.pop("steady_delays"), 50, 99)
    raw["intact"] = raw["intact_runs"] == n
    raw["steady"] = {
        "window_s": round(window, 2),
        "pss_samples": len(pss),
        "pss_max_mb": round(max(pss) / 1e6, 1) if pss else None,
        "pss_mean_mb": round(statistics.fmean(pss) / 1e6, 1) if pss else None,
        "cpu_s": round(cpu, 2) if cpu is not None else None,
        "cpu_pct_one_core": round(100.0 * cpu / window, 1) if cpu is not None and window > 0 else None,
    }
    return raw


async def trivial_phase(stack: Stack, script: Path, *, samples: int) -> dict[str, Any]:
    client = Client(stack)
    try:
        one: list[float] = []
        for i in range(samples):
            rec = Followed()
            await _gather(
                f"trivial {i}",
                [client.run(script, [], rec, _no_line)],
                [rec],
                running_within=30,
                done_within=60,
            )
            assert rec.completed_at is not None
            one.append(rec.completed_at - rec.posted_at)
        bursts: list[float] = []
        server_cpu: list[float] = []
        client_cpu: list[float] = []
        assert stack.proc is not None
        procs = ScriptOpsProcesses(stack.proc.pid)
        for i in range(BURST_REPEATS):
            recs = [Followed() for _ in range(BURST_RUNS)]
            procs.open_window()
            before = _own_cpu()
            t0, _ = await _gather(
                f"{BURST_RUNS} at once ({i})",
                [client.run(script, [], r, _no_line) for r in recs],
                recs,
                running_within=60,
                done_within=120,
            )
            bursts.append(max(r.completed_at or 0.0 for r in recs) - t0)
            client_cpu.append(_own_cpu() - before)
            procs.sample()
            server_cpu.append(procs.cpu_seconds())
            if any(r.status != "completed" for r in recs):
                raise PhaseFailed(f"{BURST_RUNS} at once: statuses {[r.status for r in recs]}")
    finally:
        await client.close()
    return {
        "one_at_a_time": _ms_summary(one, 50, 95),
        "burst": {
            "runs": BURST_RUNS,
            "median_ms": round(statistics.median(bursts) * 1000, 1),
            "samples_ms": [round(b * 1000, 1) for b in bursts],
            # CPU a burst took (median): ScriptOps's processes, and this client's.
            "server_cpu_ms": round(statistics.median(server_cpu) * 1000, 1),
            "client_cpu_ms": round(statistics.median(client_cpu) * 1000, 1),
        },
    }


async def throughput_phase(stack: Stack, script: Path, *, total: int, batch: bool = False) -> dict[str, Any]:
    assert stack.proc is not None
    procs = ScriptOpsProcesses(stack.proc.pid)
    procs.open_window()
    stop = threading.Event()

    def watch() -> None:  # catch processes born and gone during the run
        while not stop.wait(0.25):
            procs.scan()
            procs.sample()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    client0 = _own_cpu()
    try:
        async with httpx.AsyncClient(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.key}"}, timeout=60
        ) as http:
            posted_at = time.monotonic()
            resp = await http.post("/api/run", json={"script_path": str(script), "args": [str(total)]})
            if resp.status_code != 202:
                raise PhaseFailed(f"POST /api/run answered {resp.status_code}: {resp.text[:300]}")
            run_id = str(resp.json()["id"])
        path = f"/ws/runs/{run_id}/?api_key={stack.key}" + ("&format=batch" if batch else "")
        rec = await asyncio.to_thread(follow_flood_raw, stack.port, path, timeout=600)
    finally:
        stop.set()
        watcher.join()
    procs.scan()
    procs.sample()
    client_cpu = _own_cpu() - client0
    assert rec.completed_at is not None
    wall = rec.completed_at - posted_at
    lines = total // LINE_BYTES
    cpu = procs.cpu_seconds()
    return {
        "bytes": total,
        "lines": lines,
        "received_lines": rec.lines,
        "intact": rec.intact and rec.lines == lines,
        "status": rec.status,
        "post_to_completed_s": round(wall, 3),
        "mib_s": round(total / MIB / wall, 1),
        "first_to_last_line_s": round((rec.last_at or 0.0) - (rec.first_at or 0.0), 3),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_s_per_mib": round(cpu / (total / MIB), 3),
        # This process: if it nears the wall time, the client was the bottleneck.
        "client_cpu_s": round(client_cpu, 2),
        "process_list": procs.describe(),
    }


# -- orchestration --------------------------------------------------------------------------
def free_redis_url() -> tuple[str | None, str]:
    """``SCRIPTOPS_BENCH_REDIS_URL``, else the highest empty database of the local Redis."""
    explicit = os.environ.get("SCRIPTOPS_BENCH_REDIS_URL")
    if explicit:
        ok, why = redis_reachable(explicit)
        return (explicit, "") if ok else (None, f"Redis at {explicit} unreachable: {why}")
    ok, why = redis_reachable("redis://127.0.0.1:6379/0")
    if not ok:
        return None, f"Redis at 127.0.0.1:6379 unreachable: {why}"
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}", socket_timeout=1)
        try:
            if client.dbsize() == 0:
                return f"redis://127.0.0.1:6379/{db}", ""
        finally:
            client.close()
    return None, "no empty Redis database on 127.0.0.1:6379"


def raise_fd_limit() -> None:
    """1,000 websockets here and as many pipes in the stack (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _step(out: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    print(f"    {key} ...", flush=True)
    t0 = time.monotonic()
    try:
        out[key] = fn()
    except Exception as exc:  # one failed phase must not lose the others
        out[key] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"    {key} FAILED: {exc}", flush=True)
    print(f"    {key} done in {time.monotonic() - t0:.1f}s", flush=True)


def measure_config(label: str, *, redis_url: str, ns: list[int], seconds: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"redis_url": redis_url or None}
    env = {"SCRIPTOPS_MAX_RUNS": str(max(ns)), "SCRIPTOPS_MAX_OUTPUT_BYTES": str(MAX_OUTPUT_BYTES)}
    with running_stack(f"scale-{label}", workers=WORKERS, redis_url=redis_url, extra_env=env) as stack:
        ticker = stack.script("ticker.sh", TICKER_SH)
        trivial = stack.script("ok.sh", TRIVIAL_SH)
        flood = stack.script("flood.py", FLOOD_PY)
        with stack.client() as client:
            warm_up(stack, client, trivial, count=2)
        samples = 10 if quick else TRIVIAL_SAMPLES
        _step(out, "trivial", lambda: asyncio.run(trivial_phase(stack, trivial, samples=samples)))
        _step(out, "throughput", lambda: asyncio.run(throughput_phase(stack, flood, total=THROUGHPUT_BYTES)))
        # The compact form the dashboard uses (?format=batch: one log_batch per read).
        _step(
            out,
            "throughput_batch",
            lambda: asyncio.run(throughput_phase(stack, flood, total=THROUGHPUT_BYTES, batch=True)),
        )
        for n in ns:
            failed = [k for k in out if k.startswith("n") and "error" in out[k]]
            if failed:
                # Runs of the failed phase may still be queued: a larger N would only queue more.
                out[f"n{n}"] = {"error": f"skipped: {failed[0]} failed ({out[failed[0]]['error'][:200]})"}
                continue
            os.sync()
            time.sleep(1.0)
            phase = scale_phase(stack, ticker, n=n, seconds=seconds, interval=0.5 if seconds < 30 else 1.0)
            _step(out, f"n{n}", functools.partial(asyncio.run, phase))
    return out


def measure_scale(
    quick: bool = False,
    *,
    ns: list[int] | None = None,
    seconds: int | None = None,
    configs: tuple[str, ...] = ("default", "redis"),
) -> dict[str, Any]:
    """Every figure of the module docstring; ``figures`` holds the report rows."""
    raise_fd_limit()
    ns = ns or ([20, 200] if quick else [20, 200, 1000])
    seconds = seconds or (15 if quick else 60)
    out: dict[str, Any] = {
        "ns": ns,
        "seconds": seconds,
        "workers": WORKERS,
        "max_runs": max(ns),
        "scripts": "bash: one line a second with $EPOCHREALTIME; 50 MiB: Python, 64-byte lines",
        "targets": TARGETS,
        "direct": {},
    }
    print("  scale: direct spawns (the baseline)", flush=True)
    with tempfile.TemporaryDirectory(prefix="scriptops-bench-scale-direct-") as scratch:
        ticker = Path(scratch) / "ticker.sh"
        ticker.write_text(TICKER_SH)
        for n in ns:
            _step(out["direct"], f"n{n}", functools.partial(direct_phase, ticker, n=n, seconds=seconds))
    for label in configs:
        redis_url = ""
        if label == "redis":
            url, why = free_redis_url()
            if url is None:
                out[label] = {"skipped": why}
                print(f"  scale: Redis skipped: {why}", flush=True)
                continue
            redis_url = url
        print(f"  scale: stack {label}{f' ({redis_url})' if redis_url else ''}", flush=True)
        try:
            out[label] = measure_config(label, redis_url=redis_url, ns=ns, seconds=seconds, quick=quick)
        except Exception as exc:  # a stack that does not start is a result
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
    out["figures"] = scale_figures(out)
    out["markdown"] = markdown(out["figures"])
    return out


# -- the report -------------------------------------------------------------------------------
def _ok(part: Any) -> dict[str, Any] | None:
    return part if isinstance(part, dict) and "error" not in part and "skipped" not in part else None


def scale_figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Report rows (bench.report.figure) for every config; targets as in the issue."""
    out: list[dict[str, Any]] = []
    for cfg, name in (("default", "default"), ("redis", "Redis")):
        if cfg not in res:
            continue
        part = _ok(res[cfg])
        if part is None:
            why = str(res[cfg].get("skipped") or res[cfg].get("error"))
            out.append(figure(f"scale_{cfg}", f"scale, {name}", None, "", note=why))
            continue
        for n in res["ns"]:
            r = _ok(part.get(f"n{n}"))
            d = _ok(res["direct"].get(f"n{n}")) or {}
            t = TARGETS if n == 200 else {}
            key, label = f"scale_{cfg}_n{n}", f"scale {name}, N={n}"
            note = "" if r else str((part.get(f"n{n}") or {}).get("error", "not measured"))
            steady, dsteady = (r or {}).get("steady") or {}, d.get("steady") or {}
            lat, dlat = (r or {}).get("line_to_ws") or {}, d.get("line_to_read") or {}
            slat, sdlat = (r or {}).get("line_to_ws_steady") or {}, d.get("line_to_read_steady") or {}
            rows = [
                ("all_running_s", "first POST -> all running", (r or {}).get("all_running_s"), "s",
                 d.get("all_running_s"), "direct spawn", t.get("n200_all_running_s"), "<"),
                ("ramp_server_cpu_s", "ScriptOps CPU from first POST to all running",
                 (r or {}).get("ramp_server_cpu_s"), "s", None, "", None, "<"),
                ("ramp_client_cpu_s", "the bench client's CPU from first POST to all running",
                 (r or {}).get("ramp_client_cpu_s"), "s", None, "", None, "<"),
                ("pss_max_mb", "PSS max, steady", steady.get("pss_max_mb"), "MB",
                 dsteady.get("pss_max_mb"), "direct spawner", t.get("n200_pss_mb"), "<"),
                ("pss_mean_mb", "PSS mean, steady", steady.get("pss_mean_mb"), "MB",
                 dsteady.get("pss_mean_mb"), "direct spawner", None, "<"),
                ("cpu_pct", "CPU, steady (% of one core)", steady.get("cpu_pct_one_core"), "%",
                 dsteady.get("cpu_pct_one_core"), "direct spawner", t.get("n200_cpu_pct"), "<"),
                ("line_p50_ms", "line -> ws client p50", lat.get("p50_ms"), "ms",
                 dlat.get("p50_ms"), "direct read", t.get("n200_line_p50_ms"), "<"),
                ("line_p99_ms", "line -> ws client p99", lat.get("p99_ms"), "ms",
                 dlat.get("p99_ms"), "direct read", t.get("n200_line_p99_ms"), "<"),
                ("line_steady_p50_ms", "line -> ws client p50, lines printed once all were running",
                 slat.get("p50_ms"), "ms", sdlat.get("p50_ms"), "direct read", None, "<"),
                ("line_steady_p99_ms", "line -> ws client p99, lines printed once all were running",
                 slat.get("p99_ms"), "ms", sdlat.get("p99_ms"), "direct read", None, "<"),
            ]  # fmt: skip
            for suffix, text, value, unit, base, base_label, target, op in rows:
                out.append(
                    figure(
                        f"{key}_{suffix}",
                        f"{label}: {text}",
                        value,
                        unit,
                        baseline=base,
                        baseline_label=base_label,
                        target=target,
                        op=op,
                        note=note,
                    )
                )
            out.append(
                figure(
                    f"{key}_intact_runs",
                    f"{label}: runs with every line once, in order",
                    (r or {}).get("intact_runs"),
                    "runs",
                    baseline=d.get("intact_runs"),
                    baseline_label="direct spawn",
                    target=float(n),
                    op=">=",
                    note=note,
                )
            )
        trivial = _ok(part.get("trivial")) or {}
        one, burst = trivial.get("one_at_a_time") or {}, trivial.get("burst") or {}
        tnote = "" if trivial else str((part.get("trivial") or {}).get("error", ""))
        for stat in ("p50_ms", "p95_ms"):
            target = TARGETS["trivial_default_p50_ms"] if cfg == "default" and stat == "p50_ms" else None
            out.append(
                figure(
                    f"scale_{cfg}_trivial_{stat}",
                    f"trivial run {name}: POST -> execution_completed on ws, {stat[:3]}",
                    one.get(stat),
                    "ms",
                    target=target,
                    note=tnote,
                )
            )
        out.append(
            figure(
                f"scale_{cfg}_burst20_ms",
                f"trivial run {name}: 20 at once -> all completed (median)",
                burst.get("median_ms"),
                "ms",
                target=TARGETS["burst20_ms"],
                note=tnote,
            )
        )
        for who, text in (("server", "ScriptOps CPU"), ("client", "the bench client's CPU")):
            out.append(
                figure(
                    f"scale_{cfg}_burst20_{who}_cpu_ms",
                    f"trivial run {name}: 20 at once, {text} per burst (median)",
                    burst.get(f"{who}_cpu_ms"),
                    "ms",
                    note=tnote,
                )
            )
        for key, form in (("throughput", "log_entry per line"), ("throughput_batch", "log_batch")):
            tp = _ok(part.get(key)) or {}
            tpnote = "" if tp else str((part.get(key) or {}).get("error", ""))
            if tp and not tp.get("intact"):
                tpnote = f"NOT intact: {tp.get('received_lines')} of {tp.get('lines')} lines"
            suffix = "" if key == "throughput" else "_batch"
            out.append(
                figure(
                    f"scale_{cfg}_throughput{suffix}_mib_s",
                    f"50 MiB to a ws client {name} ({form}): POST -> completed",
                    tp.get("mib_s"),
                    "MiB/s",
                    target=TARGETS["throughput_mib_s"] if suffix else None,
                    op=">=",
                    note=tpnote,
                )
            )
            out.append(
                figure(
                    f"scale_{cfg}_cpu_s_per_mib{suffix}",
                    f"50 MiB to a ws client {name} ({form}): ScriptOps CPU per MiB",
                    tp.get("server_cpu_s_per_mib"),
                    "s/MiB",
                    note=tpnote,
                )
            )
    return out


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 10:
        return f"{value:.2f} {unit}"
    if isinstance(value, float):
        return f"{value:.1f} {unit}"
    return f"{value} {unit}"


def markdown(figs: list[dict[str, Any]]) -> list[str]:
    """The figures as markdown table lines, ✔/✘ where a target applies."""
    lines = ["| figure | measured | same run, direct | target | |", "|---|---|---|---|---|"]
    for f in figs:
        mark = {True: "✔", False: "✘", None: ""}[f["pass"]]
        if f["value"] is None and f["target"]:
            mark = "✘"
        base = (
            "-"
            if f["baseline"] is None
            else f"{_fmt(f['baseline'], f['baseline_unit'])} ({f['baseline_label']})"
        )
        value = _fmt(f["value"], f["unit"]) if f["value"] is not None else f"n/a {f['note']}".strip()
        lines.append(f"| {f['label']} | {value} | {base} | {f['target'] or '-'} | {mark} |")
    return lines


def save_markdown(result: dict[str, Any], stamp: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = "\n".join([f"# Runs at scale ({stamp})", "", *result.get("markdown", [])]) + "\n"
    path = RESULTS / f"scale-{stamp}.md"
    path.write_text(text)
    (RESULTS / "scale-latest.md").write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=textwrap.dedent(__doc__ or ""), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", help="comma-separated N (default 20,200,1000; --quick 20,200)")
    parser.add_argument("--seconds", type=int, help="seconds each script prints (default 60; --quick 15)")
    parser.add_argument("--config", default="default,redis", help="default,redis")
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.n.split(",")] if args.n else None
    configs = tuple(c for c in args.config.split(",") if c in ("default", "redis"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = measure_scale(args.quick, ns=ns, seconds=args.seconds, configs=configs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("\n".join(result["markdown"]))
    print(f"\nreport: {save_markdown(result, stamp)}")
    failed = [k for k in configs if isinstance(result.get(k), dict) and "error" in result[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
