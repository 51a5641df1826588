"""``manage.py serve``: daphne + the runner + the django-q2 cluster + the reaper, supervised.

What ``make run`` starts. Each child is restarted if it dies (with a back-off); on
SIGINT/SIGTERM both get SIGTERM, then SIGKILL after a grace period, and runs left
behind on this host are reaped at once (their scripts killed, their records failed),
so nothing stays "running" forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from runs.services import run_reap_orphans
from runs.services.concurrency import runs_start_all_waiting
from scheduler.services import fallback_schedule_ensure, tasks_fire_due

STOP_GRACE = 10.0


def _wait_gone(procs: list[psutil.Process], *, timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` have exited (zombies count as exited), at most ``timeout`` s.

    The scripts' supervisors (django-q2 workers) are grandchildren: when the cluster
    stops they are re-parented to init, so they cannot be waited for like children.
    A run is only reaped once its worker is seen gone.
    """
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        still: list[psutil.Process] = []
        for proc in alive:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
            except psutil.Error:
                continue
        alive = still
        if alive:
            time.sleep(0.05)
    return alive


class Child:
    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.next_start = 0.0

    def start(self) -> None:
        # Own process group: a stop reaches the child's own children (qcluster workers).
        self.proc = subprocess.Popen(self.argv, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """The child's own children (qcluster workers, which run the scripts' supervisors)."""
        if not self.alive():
            return []
        assert self.proc is not None
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
            return children
        except psutil.Error:
            return []

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Command(BaseCommand):
    help = "Serve ScriptOps: daphne (HTTP + websockets) and the django-q2 workers, supervised."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-web", action="store_true", help="Only the workers (scale-out).")
        parser.add_argument("--no-worker", action="store_true", help="Only the web server.")
        parser.add_argument("--reap-interval", type=float, default=5.0)
        parser.add_argument(
            "--tick-interval",
            type=float,
            default=0.1,
            help="Seconds between scheduler ticks (due tasks, dependents of finished runs).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children: list[Child] = []
        if not options["no_web"]:
            children.append(
                Child(
                    "web",
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        options["host"],
                        "-p",
                        str(options["port"]),
                        "--proxy-headers",
                        "scriptops.asgi:application",
                    ],
                )
            )
        if not options["no_worker"]:
            # The runs: one runner process for all of this host's runs (runs.host).
            children.append(Child("runner", [sys.executable, manage, "runner"]))
            # Library scans and other background tasks.
            children.append(Child("workers", [sys.executable, manage, "qcluster"]))
        stopping = False

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        for child in children:
            child.start()
        self.stdout.write(
            f"ScriptOps on http://{options['host']}:{options['port']}/ "
            f"(up to {settings.MAX_RUNS} runs at once, {settings.WORKERS} task workers, "
            f"broker: {'redis' if settings.REDIS_URL else 'database'}). "
            "Ctrl-C stops."
        )
        next_reap = 0.0
        next_tick = 0.0
        if not options["no_worker"]:
            try:
                fallback_schedule_ensure()
            except Exception as exc:  # noqa: BLE001 - never keep the server from starting
                self.stderr.write(f"scheduler: {exc}")
        while not stopping:
            now = time.monotonic()
            for child in children:
                if not child.alive() and now >= child.next_start:
                    if child.proc is not None:
                        code = child.proc.returncode
                        child.restarts += 1
                        delay = min(30.0, 2.0 ** min(child.restarts, 5))
                        self.stderr.write(f"{child.name} exited with {code}; restarting")
                        child.next_start = now + delay
                        child.proc = None
                        continue
                    child.start()
            if not options["no_worker"] and now >= next_reap:
                next_reap = now + options["reap_interval"]
                try:
                    run_reap_orphans()
                    runs_start_all_waiting()  # safety net for runs waiting on a concurrency slot
                except Exception as exc:  # noqa: BLE001 - the reaper must never kill the server
                    self.stderr.write(f"reaper: {exc}")
            # The scheduler's tick (django-q2's own scheduler is per minute, too coarse).
            if not options["no_worker"] and now >= next_tick:
                next_tick = now + options["tick_interval"]
                try:
                    tasks_fire_due()
                except Exception as exc:  # noqa: BLE001 - the scheduler must never kill the server
                    self.stderr.write(f"scheduler: {exc}")
                    close_old_connections()  # a broken connection is replaced on the next tick
            wake = 0.2 if options["no_worker"] else min(0.2, next_tick - time.monotonic())
            time.sleep(max(0.01, wake))
        self.stdout.write("Stopping…")
        # Noted before the stop: once their parents are gone, the workers are no longer
        # found under them, and they must be gone before the runs they held are reaped.
        workers = [proc for child in children for proc in child.descendants()]
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while any(c.alive() for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        for child in children:
            child.signal(signal.SIGKILL)
            if child.proc is not None:
                child.proc.wait()
        # A worker outlives its group's SIGKILL only if its parent exited first (then
        # the group was not signalled): it has had its grace period, end it.
        for proc in _wait_gone(workers, timeout=1.0):
            try:
                proc.kill()
            except psutil.Error:
                pass
        _wait_gone(workers, timeout=STOP_GRACE)
        if not options["no_worker"]:
            for run_id in run_reap_orphans():
                self.stdout.write(f"Run {run_id} was still running; its script was stopped.")
        self.stdout.write("Stopped.")
