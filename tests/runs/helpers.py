"""Helpers shared by the run-engine tests: a recording reporter, a loop driver and
process checks (is that pid gone? kill what a test left behind)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

from runs.engine import Limits, Outcome, Sample, Stats, Supervisor

# Generous functional deadlines: the machine is small and shared.
DEADLINE = 30.0


@dataclass
class RecordingReporter:
    """An in-test :class:`runs.engine.Reporter`.

    The engine is designed to be tested on its own through this protocol: these tests
    need no database, they only record what the engine reports and feed it control
    commands from :attr:`commands`.
    """

    pid: int | None = None
    create_time: float | None = None
    chunks: list[tuple[str, bytes, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    heartbeats: list[Stats] = field(default_factory=list)
    pauses: list[bool] = field(default_factory=list)
    commands: deque[str] = field(default_factory=deque)

    # -- the protocol -------------------------------------------------------------
    def started(self, pid: int, create_time: float) -> None:
        self.pid = pid
        self.create_time = create_time

    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        data = bytes(data)  # a view is valid only during the call
        if lines is not None:
            assert lines == data.count(b"\n"), "the engine miscounted a chunk's lines"
        self.chunks.append((stream, data, ts))

    def sample(self, sample: Sample) -> None:
        self.samples.append(sample)

    def event(self, kind: str, data: dict[str, object]) -> None:
        self.events.append((kind, data))

    def control(self) -> str | None:
        return self.commands.popleft() if self.commands else None

    def heartbeat(self, stats: Stats) -> None:
        self.heartbeats.append(stats)

    def paused(self, *, paused: bool) -> None:
        self.pauses.append(paused)

    # -- views for assertions ---------------------------------------------------------
    def text(self, stream: str) -> str:
        return b"".join(d for s, d, _ in self.chunks if s == stream).decode()

    def event_kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def value_after(self, stream: str, prefix: str) -> int | None:
        """The integer printed after ``prefix`` on a line of ``stream`` (e.g. a pid)."""
        for line in self.text(stream).splitlines():
            if line.startswith(prefix):
                return int(line[len(prefix) :].strip())
        return None


def make_supervisor(
    cmd: list[str], *, cwd: str, reporter: RecordingReporter, **limits: float | None
) -> Supervisor:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    options: dict[str, float | None] = {"stop_grace": 1.0, "heartbeat_interval": 0.2, **limits}
    return Supervisor(cmd, cwd=cwd, env=env, reporter=reporter, limits=Limits(**options))


def drive(
    supervisor: Supervisor,
    *,
    until: Callable[[], bool] | None = None,
    deadline: float = DEADLINE,
) -> bool:
    """Step the loop until the run ends (returns False) or ``until()`` holds (returns True).

    Fails the test, after killing the run's processes, when ``deadline`` seconds pass:
    a hang shows up as a failure instead of blocking the suite.
    """
    if supervisor.proc is None:
        supervisor.start()
    end = time.monotonic() + deadline
    while True:
        if until is not None and until():
            return True
        if not supervisor.step():
            return False
        if time.monotonic() > end:
            supervisor._signal_all(signal.SIGKILL)
            pytest.fail(f"the run did not get there within {deadline:g}s")


def run_to_end(supervisor: Supervisor, *, deadline: float = DEADLINE) -> Outcome:
    drive(supervisor, deadline=deadline)
    return supervisor.outcome()


def is_gone(pid: int, create_time: float | None = None) -> bool:
    """True when ``pid`` no longer names the process: exited *and reaped*, or recycled.

    A zombie counts as still there: an engine that leaves zombies behind leaks them.
    """
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.5:
            return True
        proc.status()
    except psutil.NoSuchProcess:
        return True
    return False


def is_dead(pid: int, create_time: float | None = None) -> bool:
    """True when ``pid`` is gone or a zombie: for processes that are not our children
    and that nobody here is expected to reap."""
    if is_gone(pid, create_time):
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate: Callable[[], bool], *, timeout: float = DEADLINE, interval: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(interval)


def process_of(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@pytest.fixture
def strays() -> Iterator[list[psutil.Process]]:
    """Kill whatever a test leaves behind.

    New descendants of the test process are found on their own; a test adds processes
    that may have left the tree (a ``setsid`` grandchild re-parented to init) to the
    yielded list. Zombie children are reaped so none outlive the test.
    """
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    extra: list[psutil.Process] = []
    yield extra
    leftovers = [p for p in me.children(recursive=True) if p.pid not in before] + extra
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            if proc.is_running():
                proc.kill()
    for proc in leftovers:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(proc.pid, 0)


def batch_entries(data: dict[str, Any]) -> list[tuple[int, str, str, float]]:
    """The lines of a ``log_batch`` message's data, ``(offset, stream, content, ts)``
    each, checking its chunks are consecutive and end at ``last_offset``."""
    lines: list[tuple[int, str, str, float]] = []
    for first, stream, ts, text in data["chunks"]:
        assert not lines or first == lines[-1][0] + 1, (first, lines[-1][0])
        lines += [(first + i, stream, content, ts) for i, content in enumerate(text.split("\n"))]
    assert lines[0][0] == data["first_offset"] and lines[-1][0] == data["last_offset"]
    return lines
