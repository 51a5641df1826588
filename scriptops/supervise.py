"""The process supervisor ``manage.py serve`` becomes (it ``exec``s this module).

Plain Python and psutil, no Django: a loaded Django process costs ~80 MB of memory that
a supervisor never uses. It starts its children (daphne; the runner, which also does
the housekeeping; the django-q2 cluster), restarts one that dies (with a back-off), and
on SIGINT/SIGTERM stops them all: SIGTERM, SIGKILL after a grace period, then the
processes left below them are killed and the runs left ``running`` on this host are
reaped (``manage.py reap_runs``), so nothing stays "running" forever.

SIGUSR1 drains the host first (a deploy's gentle stop): the runner alone is told
(SIGUSR1: it takes no more runs and exits once its running ones have ended) and is not
restarted; once it is gone, the others are stopped as above. A SIGTERM while draining
stops everything at once.

Usage: ``python -m scriptops.supervise '<json>'`` with ``{"children": [[name, argv],
...], "reap": argv or null}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

STOP_GRACE = 10.0


def say(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def wait_gone(procs: list[psutil.Process], *, timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` have exited (zombies count as exited), at most ``timeout`` s.

    Grandchildren (the cluster's workers, the scripts) are re-parented when their parent
    stops, so they cannot be waited for like children."""
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
        if not self.alive():
            return []
        assert self.proc is not None
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
            return children
        except psutil.Error:
            return []

    def tell(self, sig: int) -> None:
        """``sig`` to the child itself (not its group: the runner's scripts are not told)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


DRAINED = "runner"  # the child a drain waits for


def supervise(children: list[Child], *, reap: list[str] | None) -> None:
    stopping = False
    draining = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    def on_drain(signum: int, frame: Any) -> None:
        nonlocal draining
        draining = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_drain)
    for child in children:
        child.start()
    told = False
    while not stopping:
        if draining:
            runner = next((c for c in children if c.name == DRAINED), None)
            if runner is None or not runner.alive():
                say("Drained." if told else "Nothing to drain.")
                break
            if not told:
                say("Draining: the runner takes no more runs and ends when its runs have ended…")
                runner.tell(signal.SIGUSR1)
                told = True
            time.sleep(0.2)
            continue
        now = time.monotonic()
        for child in children:
            if not child.alive() and now >= child.next_start:
                if child.proc is not None:
                    code = child.proc.returncode
                    child.restarts += 1
                    delay = min(30.0, 2.0 ** min(child.restarts, 5))
                    say(f"{child.name} exited with {code}; restarting in {delay:g}s", err=True)
                    child.next_start = now + delay
                    child.proc = None
                    continue
                child.start()
        time.sleep(0.2)
    say("Stopping…")
    # Noted before the stop: once their parents are gone, grandchildren are no longer
    # found under them, and they must be gone before the runs they held are reaped.
    below = [proc for child in children for proc in child.descendants()]
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while any(c.alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for child in children:
        child.signal(signal.SIGKILL)
        if child.proc is not None:
            child.proc.wait()
    # A grandchild outlives its group's SIGKILL only if its parent exited first (then
    # the group was not signalled): it has had its grace period, end it.
    for proc in wait_gone(below, timeout=1.0):
        try:
            proc.kill()
        except psutil.Error:
            pass
    wait_gone(below, timeout=STOP_GRACE)
    if reap:
        # Runs the runner could not record (it was killed): failed as worker_lost now.
        subprocess.run(reap, check=False)
    say("Stopped.")


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    children = [Child(name, list(child_argv)) for name, child_argv in config["children"]]
    supervise(children, reap=config.get("reap"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
