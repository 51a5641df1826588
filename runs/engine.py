"""Process supervision: spawn, read pipes, sample, signal, time out.

Plain Python (psutil, no Django, DRF or Channels) so it can be tested alone. The
worker wires a :class:`Reporter` to the database and the output store.

One thread does everything with a ``selectors`` loop, so there is no pipe deadlock
whatever the volume: both pipes are drained as soon as either has data, in 64 KiB
reads that grow to 1 MiB while a pipe keeps filling them, and output is handed to the
reporter in whole-line chunks (a partial line waits ``PARTIAL_FLUSH`` seconds; longer
while its pipe holds unread bytes, and up to ``PARTIAL_FLUSH_MAX`` while a process of the
run is runnable: on a busy machine the reader or the writer may be held up mid-line).
Memory is bounded by the read size.

The child runs in its own session (and so its own process group). Descendants are
tracked while the run lives — including ones that call ``setsid`` and leave the
group — and the worker makes itself a *child subreaper* so that orphaned
descendants are re-parented to it rather than to init, where they could not be
found. Signals go to the group and to every tracked descendant.

A supervisor runs on its own (:meth:`Supervisor.run`, one ``selectors`` loop per run,
as a django-q2 worker does) or is driven by a :class:`runs.runner.Runner`, one loop for
many runs: then it registers its pipes in the runner's selector and the runner batches
what every run used to do on its own (control polls, heartbeats, and the walk over
``/proc`` that finds and samples each run's processes) through a :class:`ProcessHost`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import math
import os
import selectors
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, NamedTuple, Protocol, runtime_checkable

import psutil

# A pipe read asks for SMALL_READ bytes; one that fills it (a flood) makes the next reads
# of that pipe ask for READ_SIZE, until one comes back under SMALL_READ. os.read allocates
# what it asks for: a 1 MiB read of a 30-byte line cost ~16 us against ~1.5 us for 64 KiB
# (the runner's reads were a quarter of its time with 200 scripts printing a line a second).
SMALL_READ = 1 << 16
READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
# A partial line (no newline yet) is handed on once the script has been quiet for
# PARTIAL_FLUSH: a prompt or a progress message shows without waiting for its end. Quiet
# is not the same as unread, though: on a busy machine a line that straddles two pipe
# reads can wait longer than that, and flushing then would store it as two. So the flush
# is put off while its pipe holds unread bytes (the reader was held up: the next read
# takes them), and while a process of the run is runnable (state R: the writer may be
# waiting for the CPU), looking again every PARTIAL_RECHECK, for at most PARTIAL_FLUSH_MAX.
PARTIAL_FLUSH = 0.2
PARTIAL_RECHECK = 0.05
PARTIAL_FLUSH_MAX = 1.0
PARTIAL_MAX = 1 << 20
EOF_GRACE = 1.0
# The start is reported (a database write) after the first look at the pipes, which
# waits at most this long for the script's first output.
START_REPORT_WAIT = 0.005
F_SETPIPE_SZ = 1031
PR_SET_CHILD_SUBREAPER = 36
# Driven by a runner without a pidfd (old kernels), how often a run whose pipes are
# still open looks whether its child has exited.
REAP_POLL = 0.5
# The data a stream's key carries in a selector: the supervisor and the stream's name
# ("stdout", "stderr", or "exit" for the child's pidfd, readable once it has exited).
EXIT = "exit"


class RunReporter(Protocol):
    """What one run reports, whoever drives it (its own loop or a runner's)."""

    def started(self, pid: int, create_time: float) -> None: ...
    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        """``data``: whole lines (or a partial line flushed); ``lines``: their count, when
        the engine knows it. Valid only during the call (it may be a view of a read)."""

    def sample(self, sample: Sample) -> None: ...
    def event(self, kind: str, data: dict[str, object]) -> None: ...
    def paused(self, *, paused: bool) -> None: ...


@runtime_checkable
class Reporter(RunReporter, Protocol):
    """A run on its own loop also polls its own control requests and writes its own
    heartbeats (a runner does both for all its runs at once, see runs.runner.Hub)."""

    def control(self) -> str | None: ...
    def heartbeat(self, stats: Stats) -> None: ...


class ProcInfo(NamedTuple):
    """One process as one read of ``/proc/<pid>/stat`` shows it."""

    pid: int
    ppid: int
    sid: int
    state: str  # "Z" for a zombie, "T" stopped, ...
    start: int  # clock ticks since boot: with the pid, names the process exactly
    create_time: float  # on psutil's clock: psutil.Process(pid).create_time() gives the same
    cpu: float  # user + system seconds, its waited-for children's included
    rss: int  # bytes


class ProcessHost(Protocol):
    """What a runner offers the supervisors it drives (runs.runner.Runner)."""

    selector: selectors.BaseSelector

    def descendants(self, supervisor: Supervisor) -> list[ProcInfo]:
        """The run's live descendants now (not its child), orphans included: from a scan
        of ``/proc`` made in the current turn of the loop, shared by every run."""

    def reap_later(self, pids: Sequence[int]) -> None:
        """Processes of the run that were killed and must be reaped (not waited for)."""


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    cpu_percent: float
    rss: int
    children: int


@dataclass
class Stats:
    samples: int = 0
    peak_rss: int = 0
    cpu_time: float = 0.0
    max_children: int = 0


@dataclass
class Outcome:
    exit_code: int | None
    run_status: str  # success | failed | timeout | killed
    started: float
    finished: float
    stats: Stats = field(default_factory=Stats)
    reason: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    @property
    def avg_cpu(self) -> float:
        return 100.0 * self.stats.cpu_time / self.duration if self.duration > 0 else 0.0


_subreaper_pid = 0  # the process that became a subreaper (the flag is not inherited by fork)


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to this process (best effort, once)."""
    global _subreaper_pid
    if _subreaper_pid == os.getpid():
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper_pid = os.getpid()
    return True


@dataclass
class Limits:
    timeout: float | None = None
    stop_grace: float = 5.0
    monitor_interval: float = 0.1
    control_interval: float = 0.05
    heartbeat_interval: float = 5.0


class Supervisor:
    """Runs one command to completion.

    On its own: call :meth:`run` (or :meth:`start` then :meth:`step` until it returns
    False). Driven by a runner (``host`` given): :meth:`start` registers the pipes in the
    host's selector; the runner calls :meth:`on_readable` for their events and
    :meth:`tick` at :meth:`next_deadline` (or sooner), and feeds the run its control
    requests (:meth:`control`) and its samples (:meth:`sample_from`) itself.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        cwd: str,
        env: dict[str, str],
        reporter: RunReporter,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        host: ProcessHost | None = None,
    ):
        self.cmd = list(cmd)
        self.cwd = cwd
        self.env = env
        self.reporter = reporter
        self.limits = limits
        self.clock = clock
        self.host = host
        # On its own loop the run polls its own controls and writes its own heartbeats.
        self._polled: Reporter | None = None
        if host is None:
            if not isinstance(reporter, Reporter):
                raise TypeError("a supervisor on its own loop needs a Reporter with control and heartbeat")
            self._polled = reporter
        self.stats = Stats()
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.run_status: str | None = None
        self.reason = ""
        self._sel: selectors.BaseSelector = selectors.DefaultSelector() if host is None else host.selector
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._pending_since: dict[str, float] = {}
        self._pending_due: dict[str, float] = {}  # a flush put off: when to look again
        self._open_streams = 0
        self._pipes: dict[int, IO[bytes]] = {}
        self._streams: dict[int, str] = {}  # fd -> stream name, of the pipes still open
        self._flooding: set[int] = set()  # pipes whose last read filled SMALL_READ
        self._pidfd: int | None = None  # driven by a runner: readable once the child exits
        self._tracked: dict[int, psutil.Process] = {}
        self._baseline_children: set[int] = set()
        self._paused = False
        self._paused_at = 0.0
        self._kill_at: float | None = None
        self._child_exited_at: float | None = None
        self._last_cpu: tuple[float, float] | None = None
        self._started_wall = 0.0
        self._child_born: float | None = None  # the child's create_time (psutil's clock)
        self._create_time = 0.0  # the same, or the spawn's wall time if psutil could not tell
        self._start_reported = False
        self._first_sampled = False
        self._read_once = False
        self._started_mono = 0.0
        self.child_info: ProcInfo | None = None  # driven by a runner: the child at its spawn
        self._next_sample = 0.0
        self._next_control = 0.0
        self._next_heartbeat = 0.0
        self._deadline: float | None = None
        self._over = False

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        become_subreaper()
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                bufsize=0,
            )
        except OSError:
            if self.host is None:
                self._sel.close()  # the caller records the failure; a worker must not leak the fd
            raise
        self._started_wall = time.time()
        now = self._started_mono = self.clock()
        self._create_time = self._started_wall
        if self.host is not None:
            # One read of its stat (a psutil.Process costs three or four while it execs).
            # Until we reap it the child's pid cannot be recycled: it needs no psutil
            # object to be signalled safely (its group is signalled while it lives).
            self.child_info = read_proc(self.proc.pid)
            if self.child_info is not None:
                self._create_time = self._child_born = self.child_info.create_time
        else:
            with contextlib.suppress(psutil.Error):
                child = psutil.Process(self.proc.pid)
                self._create_time = self._child_born = child.create_time()
                self._tracked[child.pid] = child
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            assert pipe is not None
            fd = pipe.fileno()
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
            os.set_blocking(fd, False)
            self._pipes[fd] = pipe
            self._streams[fd] = name
            self._sel.register(fd, selectors.EVENT_READ, (self, name))
            self._open_streams += 1
        if self.host is not None:
            # The child's exit wakes the runner's loop at once, even while a descendant
            # keeps the pipes open (without a pidfd: a look every REAP_POLL).
            with contextlib.suppress(OSError, AttributeError):
                self._pidfd = os.pidfd_open(self.proc.pid)
                self._sel.register(self._pidfd, selectors.EVENT_READ, (self, EXIT))
        # Sample at once: Popen returns after exec, so even a script that ends within
        # milliseconds gets a resource reading of its own (not the worker's). A process
        # that has just exec'd has no descendants yet: no need to scan /proc for them.
        sampled = self._first_sampled = self._sample_child(now, self.child_info)
        # Still inside exec: sample again at the first step (at most START_REPORT_WAIT on).
        self._next_sample = now + self.limits.monitor_interval if sampled else now
        self._next_control = now + self.limits.control_interval
        self._next_heartbeat = now + self.limits.heartbeat_interval
        if self.limits.timeout:
            self._deadline = now + self.limits.timeout

    def run(self) -> Outcome:
        self.start()
        while self.step():
            pass
        return self.outcome()

    def step(self) -> bool:
        """One turn of the run's own loop. Returns False once the run is over."""
        now = self.clock()
        wait = max(0.0, min(self.next_deadline(now) - now, 0.5))
        if not self._start_reported:
            wait = min(wait, START_REPORT_WAIT)
        if self._open_streams:
            for key, _ in self._sel.select(wait):
                _, name = key.data
                self.on_readable(key.fd, name)
        else:
            time.sleep(min(wait, 0.05))
        return self.tick(self.clock())

    def on_readable(self, fd: int, stream: str) -> None:
        """One of the run's fds is readable: read a pipe once (its EOF closes it), or
        see that the child has exited (its pidfd)."""
        if stream == EXIT:
            self._close_pidfd()
            self._reap_child(self.clock())
        else:
            self._read_once = True
            self._read(fd, stream)

    def tick(self, now: float) -> bool:
        """The run's timers: the start report, partial-line flush, reaping, (on its own
        loop) control polls, samples and heartbeats, the timeout, the kill after the stop
        grace, the EOF grace, the end. Calling it early is harmless. Returns False once
        the run is over (then :meth:`outcome` tells how it ended)."""
        if self._over:
            return False
        assert self.proc is not None
        if not self._start_reported and (
            # Driven by a runner: after a first look at the pipes that saw output, or
            # START_REPORT_WAIT after the spawn (the runner may tick a run at any time).
            self.host is None
            or self._read_once
            or self.returncode is not None
            or now >= self._started_mono + START_REPORT_WAIT
        ):
            # Reported after the first look at the pipes, not before: a script's first
            # line is stored (and readable through the API) without waiting for the
            # reporter's database write.
            self._start_reported = True
            if self.host is not None and not self._first_sampled and self.returncode is None:
                self._sample_child(now, read_proc(self.proc.pid))  # caught inside exec: once more
            self._first_sampled = True
            self.reporter.started(self.proc.pid, self._create_time)
        self._flush_stale_partials(now)
        self._reap_child(now)
        polled = self._polled
        if polled is not None:
            if now >= self._next_control:
                self._next_control = now + self.limits.control_interval
                self._handle_control(polled.control())
            if now >= self._next_sample and self.returncode is None:
                self._next_sample = now + self.limits.monitor_interval
                self._sample(now)
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self.limits.heartbeat_interval
                polled.heartbeat(self.stats)
        if self._deadline is not None and not self._paused and now >= self._deadline:
            self._deadline = None
            if self.returncode is None and self.run_status is None:
                self.run_status = "timeout"
                self.reason = f"timed out after {self.limits.timeout:g}s"
                self.reporter.event("timeout", {"timeout": self.limits.timeout})
                self._terminate()
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            if self.host is not None:
                self._refresh_tracked()  # the runner's samples track nothing themselves
            if self._alive():
                self.reporter.event("forced_termination", {"signal": "SIGKILL"})
                self._signal_all(signal.SIGKILL)
        if self.returncode is not None:
            exited_at = self._child_exited_at
            if self._open_streams and exited_at is not None and now - exited_at > EOF_GRACE:
                # A descendant still holds the pipes: the run is over, end it. Look for
                # descendants first: one started after the last sample (or that left the
                # group with setsid) is tracked nowhere yet.
                self._refresh_tracked()
                self._signal_all(signal.SIGKILL)
                self._drain_and_close()
            if not self._open_streams:
                self._over = True
                self._finish()
                return False
        return True

    def next_deadline(self, now: float) -> float:
        """When :meth:`tick` has something to do next (``inf``: only on an fd event)."""
        timers = [math.inf]
        if self._polled is not None:
            timers += [self._next_control, self._next_heartbeat]
            if self.returncode is None:
                timers.append(self._next_sample)
        elif not self._start_reported:
            timers.append(self._started_mono + START_REPORT_WAIT)
        elif self.returncode is None and (self._pidfd is None or not self._open_streams):
            # No pidfd to wake us, or the pipes closed before the child exited: look
            # again soon (they usually close a moment before it exits).
            timers.append(now + (REAP_POLL if self._open_streams else 0.01))
        if self._deadline is not None and not self._paused:
            timers.append(self._deadline)
        if self._kill_at is not None:
            timers.append(self._kill_at)
        for name, since in self._pending_since.items():
            timers.append(self._pending_due.get(name, since + PARTIAL_FLUSH))
        if self._child_exited_at is not None:
            timers.append(self._child_exited_at + EOF_GRACE if self._open_streams else now)
        return min(timers)

    @property
    def over(self) -> bool:
        return self._over

    @property
    def create_time(self) -> float:
        """The child's create time (psutil's clock), or the spawn's wall time."""
        return self._create_time

    @property
    def paused(self) -> bool:
        return self._paused

    def outcome(self) -> Outcome:
        rc = self.returncode
        status = self.run_status or ("success" if rc == 0 else "failed")
        if not self.reason and status == "failed":
            self.reason = f"exited with code {rc}"
        return Outcome(
            exit_code=rc,
            run_status=status,
            started=self._started_wall,
            finished=self._started_wall + (self.clock() - self._started_mono),
            stats=self.stats,
            reason=self.reason,
        )

    def abort(self) -> None:
        """End everything at once after an unexpected error in the supervisor itself,
        so no script keeps running unsupervised."""
        if self.proc is None:
            return
        self._over = True
        with contextlib.suppress(Exception):
            self._refresh_tracked()
        self._signal_all(signal.SIGKILL)
        if self.host is None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
        else:
            # Never block a loop that other runs share: what is not reaped yet, the
            # runner reaps later.
            with contextlib.suppress(Exception):
                self._reap_child(self.clock())
            if self.returncode is None:
                self.host.reap_later([self.proc.pid])
        with contextlib.suppress(Exception):
            self._drain_and_close()
        self._release_fds()  # whatever the reporter did: no fd stays in a shared selector
        with contextlib.suppress(Exception):
            self._finish()

    def control(self, command: str | None) -> None:
        """Act on a control request: stop, cancel, kill, pause or resume (a runner reads
        them for all its runs at once; on its own loop the run polls its reporter)."""
        self._handle_control(command)

    # -- control ----------------------------------------------------------------
    def _handle_control(self, command: str | None) -> None:
        if not command or self.returncode is not None:
            return
        if command in ("stop", "cancel"):
            if self.run_status is None:
                self.run_status = "killed"
                self.reason = "stopped on request" if command == "stop" else "cancelled on request"
                self._terminate()
        elif command == "kill":
            self.run_status = self.run_status or "killed"
            self.reason = self.reason or "killed on request"
            self._refresh_tracked()
            self.reporter.event("forced_termination", {"signal": "SIGKILL", "requested": True})
            self._signal_all(signal.SIGKILL)
        elif command == "pause" and not self._paused:
            self._refresh_tracked()  # like stop and kill: a descendant not sampled yet stops too
            self._signal_all(signal.SIGSTOP)
            self._paused = True
            self._paused_at = self.clock()
            self.reporter.paused(paused=True)
        elif command == "resume" and self._paused:
            self._resume()

    def _resume(self) -> None:
        self._signal_all(signal.SIGCONT)
        if self._deadline is not None:
            # Time spent paused does not count against the timeout.
            self._deadline += self.clock() - self._paused_at
        self._paused = False
        self.reporter.paused(paused=False)

    def _terminate(self) -> None:
        """SIGTERM to everything, SIGKILL after the grace period."""
        self._refresh_tracked()
        self._signal_all(signal.SIGTERM)
        if self._paused:
            self._resume()  # a stopped process cannot handle SIGTERM
        self._kill_at = self.clock() + self.limits.stop_grace

    def _signal_all(self, sig: int) -> None:
        """``sig`` to the child's process group, then to each process of the run that has
        left it (``setsid``). Each process gets it once: a script that traps SIGTERM to
        clean up would run its trap twice for a signal sent twice."""
        assert self.proc is not None
        group = None
        if self.returncode is None or self._group_in_use():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
                group = self.proc.pid
        for pid, proc in list(self._tracked.items()):
            try:
                if group is not None and _pgid(pid) == group:
                    continue  # signalled with its group
                if proc.is_running():  # compares create time: no recycled pid is hit
                    proc.send_signal(sig)
            except psutil.Error:
                self._tracked.pop(pid, None)

    def _group_in_use(self) -> bool:
        """Is a process of ours still in the child's process group?

        Once the child is reaped its pid may be recycled, and with it the group id: by
        another run's child (a group leader too, and pids wrap at 32768 by default).
        Linux keeps the id while any member lives, so the group is safe to signal only
        while one of ours is in it.
        """
        assert self.proc is not None
        for pid, proc in list(self._tracked.items()):
            if pid == self.proc.pid:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and _pgid(pid) == self.proc.pid:
                    return True
        return False

    def _alive(self) -> bool:
        return self.returncode is None or self._tracked_alive()

    def _tracked_alive(self) -> bool:
        """Is any process of the run seen so far still running (zombies do not count)?"""
        for proc in self._tracked.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    return True
        return False

    # -- monitoring ---------------------------------------------------------------
    def _refresh_tracked(self) -> list[psutil.Process]:
        """Find the run's live descendants, including orphans re-parented to us.

        One pass over ``/proc`` (a parent-pid map) per call: psutil's ``children()``
        reads every process's ``stat`` each time it is called, and a short run used to
        pay for several such passes — a third of a trivial run's worker time.
        """
        assert self.proc is not None
        if self.host is not None:
            return self._track(self.host.descendants(self))
        try:
            ppids = _ppid_map()
        except (psutil.Error, OSError):
            return []
        kids: dict[int, list[int]] = {}
        for pid, ppid in ppids.items():
            kids.setdefault(ppid, []).append(pid)
        me = os.getpid()
        orphans = [pid for pid in kids.get(me, []) if pid != self.proc.pid and self._born_during_run(pid)]
        pending = list(orphans)
        if self.proc.pid in self._tracked and self.returncode is None:
            pending.append(self.proc.pid)
        found_pids = list(orphans)
        while pending:
            for pid in kids.get(pending.pop(), []):
                if pid not in found_pids:
                    found_pids.append(pid)
                    pending.append(pid)
        found: list[psutil.Process] = []
        for pid in found_pids:
            proc = self._tracked.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:
                    continue  # gone since the scan
                self._tracked[pid] = proc
            found.append(proc)
        return found

    def _born_during_run(self, pid: int) -> bool:
        """Is this child of the worker an orphan of this run (not one it had before)?

        Orphans of the run are re-parented to the worker (a subreaper); any other child
        of the worker was started before the run. Known ones are remembered either way,
        so each pid costs one read of its start time, once.
        """
        if pid in self._tracked:
            return True
        if pid in self._baseline_children:
            return False
        try:
            born = psutil.Process(pid).create_time()
        except psutil.Error:
            return False
        # Compared with the run's own child, on psutil's clock (boot time + ticks: it may
        # differ from time.time() by up to a second, but not between two processes). A
        # descendant is never born before the child; allow one clock tick.
        if self._child_born is not None and born + 0.011 < self._child_born:
            self._baseline_children.add(pid)
            return False
        return True

    def _track(self, infos: Sequence[ProcInfo]) -> list[psutil.Process]:
        """The processes of a runner's scan, as tracked ``psutil.Process`` objects (they
        check the create time before any signal: a recycled pid is never hit)."""
        found: list[psutil.Process] = []
        for info in infos:
            proc = self._tracked.get(info.pid)
            if proc is None or not same_process(proc.create_time(), info.create_time):
                try:
                    proc = psutil.Process(info.pid)
                except psutil.Error:
                    continue  # gone since the scan
                if not same_process(proc.create_time(), info.create_time):
                    continue  # gone, and the pid already reused
                self._tracked[info.pid] = proc
            found.append(proc)
        return found

    def sample_from(self, now: float, infos: Sequence[ProcInfo]) -> bool:
        """A runner's sample: the run's child (if still there) and descendants as one
        scan of ``/proc`` saw them; False if there was nothing to report.

        No ``psutil.Process`` is made for them here (a script forking a process a second
        would cost one each): every signal is preceded by a fresh search, and the runner
        keeps them attributed to the run. Tracked ones that are gone are forgotten.
        """
        assert self.proc is not None
        keep = {info.pid for info in infos}
        for pid in [pid for pid in self._tracked if pid not in keep and pid != self.proc.pid]:
            del self._tracked[pid]
        live = [info for info in infos if info.state != "Z"]
        return self._record_sample(
            now, sum(info.rss for info in live), sum(info.cpu for info in live), len(live)
        )

    def _sample_child(self, now: float, info: ProcInfo | None) -> bool:
        """A sample of the child alone, just after the spawn (no descendants yet)."""
        if self.host is None:
            return self._sample(now, refresh=False)
        if info is None or info.state == "Z":
            return False
        return self._record_sample(now, info.rss, info.cpu, 1)

    def _sample(self, now: float, *, refresh: bool = True) -> bool:
        """Sample the tree and report it; False if there was nothing to report."""
        assert self.proc is not None
        procs = self._refresh_tracked() if refresh else []
        child = self._tracked.get(self.proc.pid)
        if child is not None:
            procs = [child, *procs]
        rss = 0
        cpu = 0.0
        live = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue  # exited, not reaped yet: it has no memory left to report
                    rss += proc.memory_info().rss
                    t = proc.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                    live += 1
            except psutil.Error:
                continue
        return self._record_sample(now, rss, cpu, live)

    def _record_sample(self, now: float, rss: int, cpu: float, live: int) -> bool:
        if not live or not rss:
            # The tree ended between the reap and this sample: a sample of nothing
            # (rss 0) would only put a false drop at the end of the run's chart. Or the
            # child is still inside exec (Popen returns once the close-on-exec pipe
            # closes, before the new image is mapped): it has no memory to report yet.
            return False
        percent = 0.0
        if self._last_cpu is not None:
            last_t, last_cpu = self._last_cpu
            if now > last_t:
                percent = max(0.0, (cpu - last_cpu) / (now - last_t) * 100.0)
        self._last_cpu = (now, cpu)
        self.stats.samples += 1
        self.stats.peak_rss = max(self.stats.peak_rss, rss)
        self.stats.cpu_time = max(self.stats.cpu_time, cpu)
        nchildren = max(0, live - 1)
        self.stats.max_children = max(self.stats.max_children, nchildren)
        self.reporter.sample(
            Sample(ts=time.time(), cpu_percent=round(percent, 2), rss=rss, children=nchildren)
        )
        return True

    def _reap_child(self, now: float) -> None:
        if self.returncode is not None or self.proc is None:
            return
        try:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: the exit status is lost
            pid, status, usage = self.proc.pid, -1, None
        if pid == 0:
            return
        self.returncode = os.waitstatus_to_exitcode(status) if usage is not None else -1
        self.proc.returncode = self.returncode
        self._child_exited_at = now
        if usage is not None:
            self.stats.cpu_time = max(self.stats.cpu_time, usage.ru_utime + usage.ru_stime)
            # Not ru_maxrss: Linux carries it across exec, so it would report the
            # worker's own size at fork time. Peak RSS comes from the samples.
        self._kill_at = None if not self._alive() else self._kill_at

    # -- output -----------------------------------------------------------------
    def _read(self, fd: int, name: str) -> None:
        try:
            data = os.read(fd, READ_SIZE if fd in self._flooding else SMALL_READ)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._close_stream(fd, name)
            return
        if len(data) >= SMALL_READ:
            self._flooding.add(fd)
        else:
            self._flooding.discard(fd)
        self._consume(name, data)

    def _consume(self, name: str, data: bytes) -> None:
        """Report the whole lines of ``data`` (a read of up to 1 MiB); keep a partial last
        line for the next read.

        Without copying the read: the pending partial line is completed on its own (a
        copy of one line), then the whole lines are reported as a view of the read with
        their count. Joining and slicing the read cost two 1 MiB copies per read.
        """
        ts = time.time()
        start = 0
        pending = self._pending[name]
        if pending:
            first = data.find(b"\n")
            if first < 0:
                self._keep_partial(name, pending + data, ts)
                return
            self._pending[name] = b""
            self._forget_partial(name)
            self.reporter.output(name, pending + data[: first + 1], ts)
            start = first + 1
        cut = data.rfind(b"\n", start)
        if cut < 0:
            if start < len(data):
                self._keep_partial(name, data[start:], ts)
            return
        lines = data.count(b"\n", start, cut + 1)
        whole: bytes | memoryview = (
            data if start == 0 and cut + 1 == len(data) else memoryview(data)[start : cut + 1]
        )
        if cut + 1 < len(data):
            self._pending[name] = data[cut + 1 :]
            self._pending_since[name] = self.clock()
            self._pending_due.pop(name, None)
        self.reporter.output(name, whole, ts, lines=lines)

    def _keep_partial(self, name: str, partial: bytes, ts: float) -> None:
        """A line with no end yet: kept for the next read, or reported now if too long."""
        if len(partial) >= PARTIAL_MAX:
            self._pending[name] = b""
            self._forget_partial(name)
            self.reporter.output(name, partial, ts)
        else:
            self._pending[name] = partial
            self._pending_since.setdefault(name, self.clock())

    def _emit_partial(self, name: str) -> None:
        if self._pending[name]:
            data, self._pending[name] = self._pending[name], b""
            self._forget_partial(name)
            self.reporter.output(name, data, time.time())

    def _forget_partial(self, name: str) -> None:
        self._pending_since.pop(name, None)
        self._pending_due.pop(name, None)

    def _flush_stale_partials(self, now: float) -> None:
        for name, since in list(self._pending_since.items()):
            if now < self._pending_due.get(name, since + PARTIAL_FLUSH):
                continue
            if self._unread(name):  # the reader was held up: its next read takes the rest
                self._pending_due[name] = now + PARTIAL_RECHECK
                continue
            if now < since + PARTIAL_FLUSH_MAX and self._run_is_runnable():
                self._pending_due[name] = min(now + PARTIAL_RECHECK, since + PARTIAL_FLUSH_MAX)
                continue
            self._emit_partial(name)

    def _unread(self, name: str) -> bool:
        """Does the pipe of stream ``name`` hold bytes not read yet?"""
        for fd, stream in self._streams.items():
            if stream == name:
                with contextlib.suppress(OSError):
                    return bool(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
        return False

    def _run_is_runnable(self) -> bool:
        """Is the child, or a descendant seen so far, runnable (waiting for the CPU or on
        it)? One read of ``/proc/<pid>/stat`` each; asked only about a partial line that
        has waited PARTIAL_FLUSH already."""
        if self.proc is None:
            return False
        for pid in (self.proc.pid, *self._tracked):
            info = read_proc(pid)
            if info is not None and info.state == "R":
                return True
        return False

    def _drain_and_close(self) -> None:
        for fd, name in list(self._streams.items()):
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except (BlockingIOError, OSError):
                    data = b""
                if not data:
                    break
                self._consume(name, data)
            self._close_stream(fd, name)

    def _close_stream(self, fd: int, name: str) -> None:
        self._sel.unregister(fd)
        del self._streams[fd]
        self._flooding.discard(fd)
        # Close through the file object: closing the bare fd would let Popen's file
        # object close the same number again later, after it was reused.
        self._pipes.pop(fd).close()
        self._open_streams -= 1
        self._emit_partial(name)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(fd)
            os.close(fd)

    def _release_fds(self) -> None:
        """Unregister and close every fd of the run, read or not (after an error)."""
        for fd in list(self._streams):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(fd)
            del self._streams[fd]
            with contextlib.suppress(OSError):
                self._pipes.pop(fd).close()
        self._open_streams = 0
        self._close_pidfd()

    def _finish(self) -> None:
        """The child is gone and the pipes are closed: end leftovers, reap them."""
        if self.host is not None:
            # Driven by a runner: kill what is known to be alive, and leave the search for
            # orphans no scan has seen yet (one scan for all the runs ending together) and
            # the reaping to the runner, which never blocks the loop others share.
            self._close_pidfd()
            if self._tracked_alive():
                self._signal_all(signal.SIGKILL)
            assert self.proc is not None
            self.host.reap_later([pid for pid in self._tracked if pid != self.proc.pid])
            return
        if not self._tracked_alive() and not _has_children():
            # Nothing was re-parented to us (we are a subreaper): every descendant of
            # the run is gone, so there is nothing to look for in /proc.
            self._sel.close()
            return
        # Orphans that no sample saw (short-lived parents) were re-parented to us all
        # the same: find them, or they would outlive the run and then stay zombies.
        self._refresh_tracked()
        if self._alive():
            self._signal_all(signal.SIGKILL)
        # Orphans re-parented to us must be reaped, or they stay zombies.
        leftovers = [p for p in self._tracked if self.proc is None or p != self.proc.pid]
        deadline = time.monotonic() + 1.0
        while leftovers and time.monotonic() < deadline:
            for pid in list(leftovers):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except (ChildProcessError, OSError):
                    done = pid  # not our child (or already reaped): nothing to do
                if done:
                    leftovers.remove(pid)
            if leftovers:
                time.sleep(0.01)
        self._sel.close()


def _has_children() -> bool:
    """Has this process any child left, live or zombie? One system call, no /proc scan."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _pgid(pid: int) -> int | None:
    """The process group of ``pid``; None once it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _ppid_map() -> dict[int, int]:
    """``{pid: parent pid}`` of every process, in one pass over ``/proc``."""
    platform_map = getattr(getattr(psutil, "_psplatform", None), "ppid_map", None)
    if platform_map is not None:  # Linux: psutil's own single pass
        return dict(platform_map())
    return {proc.pid: proc.ppid() for proc in psutil.process_iter()}


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def scan_processes() -> dict[int, ProcInfo]:
    """Every process of the host, in one pass over ``/proc``: one read of each ``stat``.

    It holds all a runner needs, for all its runs at once: the parent (to find each
    run's tree), the session (to tell whose orphan a process is), the start time (so a
    recycled pid is never taken for another), the state, the CPU time and the RSS.
    About 10 µs a process; psutil would read two or three files a process.
    """
    boot = psutil.boot_time()
    table: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = read_proc(int(name), boot)
        if info is not None:
            table[info.pid] = info
    return table


def read_proc(pid: int, boot: float | None = None) -> ProcInfo | None:
    """One process's :class:`ProcInfo`, or None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 22:
        return None
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        sid=int(fields[3]),
        state=fields[0].decode(),
        start=int(fields[19]),
        create_time=int(fields[19]) / _CLOCK_TICKS + (psutil.boot_time() if boot is None else boot),
        cpu=(int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / _CLOCK_TICKS,
        rss=int(fields[21]) * _PAGE_SIZE,
    )


def same_process(a: float, b: float) -> bool:
    """Do two create times (psutil's clock, 1/100 s ticks) name the same process?"""
    return abs(a - b) < 0.005 + 1.0 / _CLOCK_TICKS


def kill_process_tree(pid: int, create_time: float | None) -> bool:
    """Kill a run's process tree found by its leader's pid (orphan recovery).

    ``create_time`` guards against a recycled pid: a different process with the same
    pid is left alone. Returns True if anything was signalled.
    """
    try:
        leader = psutil.Process(pid)
        if create_time is not None and abs(leader.create_time() - create_time) > 1.0:
            return False
        procs = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        procs = []
    hit = False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        hit = True
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            hit = True
    return hit
