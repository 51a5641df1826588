"""Small helpers for the benchmark: statistics, machine facts, stacks, direct spawns."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.stack import BASE_DIR, Stack

TERMINAL = ("completed", "failed", "cancelled")

# Production defaults for the knobs tests/stack.py shortens for the test suite, so the
# benchmark measures the configuration a fresh install runs with.
PRODUCTION_ENV = {
    "SCRIPTOPS_STOP_GRACE": "5",
    "SCRIPTOPS_HEARTBEAT_INTERVAL": "5",
    "SCRIPTOPS_HEARTBEAT_TIMEOUT": "30",
}


# -- statistics ---------------------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary_ms(values_s: Sequence[float]) -> dict[str, Any]:
    """p50/p95/min/max in milliseconds of a list of seconds."""
    ms = [v * 1000.0 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "min_ms": round(min(ms), 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
        "samples_ms": [round(v, 2) for v in ms],
    }


def parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- machine and repository -----------------------------------------------------------
def machine_info() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "mem_total_mb": round(vm.total / 1e6),
        "mem_available_mb": round(vm.available / 1e6),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "hostname": platform.node(),
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=BASE_DIR, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain")
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(status),
        "changed": [line[3:] for line in status.splitlines()][:50],
    }


def redis_reachable(url: str) -> tuple[bool, str]:
    try:
        import redis
    except ImportError:
        return False, "the redis client is not installed"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


# -- stacks ---------------------------------------------------------------------------
@contextlib.contextmanager
def running_stack(
    label: str,
    *,
    workers: int,
    redis_url: str = "",
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[Stack]:
    """A fresh stack in a fresh temp dir, always stopped (and the dir removed) afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"scriptops-bench-{label}-"))
    # redis_url="" (not None) keeps a SCRIPTOPS_REDIS_URL from the caller's environment out.
    # database_url None: the caller's DATABASE_URL if set; "": a SQLite file in the stack's
    # dir; a PostgreSQL URL: a fresh database on that server.
    stack = Stack(
        tmp,
        workers=workers,
        redis_url=redis_url,
        database_url=database_url,
        extra_env={**PRODUCTION_ENV, **(extra_env or {})},
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def post_run(client: httpx.Client, script: Path, args: Sequence[str] = ()) -> str:
    resp = client.post("/api/run", json={"script_path": str(script), "args": list(args)})
    if resp.status_code != 202:
        raise RuntimeError(f"POST /api/run answered {resp.status_code}: {resp.text[:500]}")
    return str(resp.json()["id"])


def wait_terminal(client: httpx.Client, run_id: str, *, timeout: float = 120.0, every: float = 0.01) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run.get("status") in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} still {run.get('status')} after {timeout}s")
        time.sleep(every)


def warm_up(stack: Stack, client: httpx.Client, script: Path, *, count: int) -> None:
    """Touch every worker (each imports the runner on its first task), then a few in a row."""
    ids = [post_run(client, script) for _ in range(max(count, stack.workers * 2))]
    for run_id in ids:
        wait_terminal(client, run_id, timeout=120)
    for _ in range(count):
        wait_terminal(client, post_run(client, script), timeout=60)


def first_output_ts(stack: Stack, run_id: str) -> float | None:
    """When the engine read the run's first output from the pipe (the log index's ts)."""
    idx = stack.data_dir / "runs" / run_id / "seg-000000.idx"
    try:
        first = idx.read_text().splitlines()[0].split()
        return float(first[3])
    except (OSError, IndexError, ValueError):
        return None


def worker_pid_of(stack: Stack, run: dict[str, Any]) -> int | None:
    """The django-q2 worker running ``run``: its ``worker_pid`` column, else the script's parent."""
    db = stack.data_dir / "scriptops.sqlite3"
    if db.exists():
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            row = conn.execute(
                "SELECT worker_pid FROM runs_run WHERE id = ?", (uuid.UUID(run["id"]).hex,)
            ).fetchone()
            if row and row[0]:
                return int(row[0])
    if run.get("pid"):
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(int(run["pid"])).ppid()
            return parent or None
    return None


class RssSampler:
    """Samples one process's RSS every ``interval`` seconds in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append(proc.memory_info().rss)
            self._stop.wait(self.interval)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


def vm_hwm(pid: int) -> int | None:
    """Peak resident set size (bytes) of ``pid`` over its lifetime, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- direct spawns (the baselines) ------------------------------------------------------
def direct_env() -> dict[str, str]:
    """Roughly what the runner gives a script (runs.plan.base_environment)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def command_for(script: Path, args: Sequence[str] = ()) -> list[str]:
    """The same command the runner builds (runs.plan.interpreter_for)."""
    if script.suffix == ".py":
        return [sys.executable, "-u", str(script), *args]
    return [shutil.which("bash") or "/bin/bash", str(script), *args]


def spawn_first_line(cmd: Sequence[str]) -> float:
    """Seconds from Popen to the first stdout line read."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=direct_env(), start_new_session=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return elapsed


def spawn_to_exit(cmd: Sequence[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, env=direct_env(), check=True)
    return time.perf_counter() - t0


def drain_pipe(cmd: Sequence[str], chunk: int = 1 << 20, *, into: Path | None = None) -> tuple[float, int]:
    """Run ``cmd`` with stdout into a pipe read in ``chunk`` reads: (seconds, bytes).

    The data is discarded, or appended to the file ``into`` (the cost of storing it).
    """
    out = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600) if into else -1
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=direct_env())
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        total = 0
        while True:
            data = os.read(fd, chunk)
            if not data:
                break
            total += len(data)
            if out >= 0:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
        proc.wait()
        return time.perf_counter() - t0, total
    finally:
        if out >= 0:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(into)  # type: ignore[arg-type]


def browser_login(page: Any, stack: Any, username: str = "bench", password: str = "bench-pass-1") -> None:
    """Sign a Playwright page in through the login form (the user made by the caller)."""
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}/")
