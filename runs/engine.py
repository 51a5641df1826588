"""Process supervision: spawn, read pipes, sample, signal, time out.

Plain Python (psutil, no Django, DRF or Channels) so it can be tested alone. The
worker wires a :class:`Reporter` to the database and the output store.

One thread does everything with a ``selectors`` loop, so there is no pipe deadlock
whatever the volume: both pipes are drained as soon as either has data, in 1 MiB
reads, and output is handed to the reporter in whole-line chunks (a partial line
waits at most ``PARTIAL_FLUSH`` seconds). Memory is bounded by the read size.

The child runs in its own session (and so its own process group). Descendants are
tracked while the run lives — including ones that call ``setsid`` and leave the
group — and the worker makes itself a *child subreaper* so that orphaned
descendants are re-parented to it rather than to init, where they could not be
found. Signals go to the group and to every tracked descendant.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

import psutil

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
PARTIAL_FLUSH = 0.2
PARTIAL_MAX = 1 << 20
EOF_GRACE = 1.0
# The start is reported (a database write) after the first look at the pipes, which
# waits at most this long for the script's first output.
START_REPORT_WAIT = 0.005
F_SETPIPE_SZ = 1031
PR_SET_CHILD_SUBREAPER = 36


class Reporter(Protocol):
    def started(self, pid: int, create_time: float) -> None: ...
    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        """``data``: whole lines (or a partial line flushed); ``lines``: their count, when
        the engine knows it. Valid only during the call (it may be a view of a read)."""

    def sample(self, sample: Sample) -> None: ...
    def event(self, kind: str, data: dict[str, object]) -> None: ...
    def control(self) -> str | None: ...
    def heartbeat(self, stats: Stats) -> None: ...
    def paused(self, *, paused: bool) -> None: ...


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
    """Runs one command to completion. Call :meth:`run` (or :meth:`start` then :meth:`step`)."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        cwd: str,
        env: dict[str, str],
        reporter: Reporter,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cmd = list(cmd)
        self.cwd = cwd
        self.env = env
        self.reporter = reporter
        self.limits = limits
        self.clock = clock
        self.stats = Stats()
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.run_status: str | None = None
        self.reason = ""
        self._sel = selectors.DefaultSelector()
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._pending_since: dict[str, float] = {}
        self._open_streams = 0
        self._pipes: dict[int, IO[bytes]] = {}
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
        self._started_mono = 0.0
        self._next_sample = 0.0
        self._next_control = 0.0
        self._next_heartbeat = 0.0
        self._deadline: float | None = None

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
            self._sel.close()  # the caller records the failure; a worker must not leak the fd
            raise
        self._started_wall = time.time()
        now = self._started_mono = self.clock()
        self._create_time = self._started_wall
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
            self._sel.register(fd, selectors.EVENT_READ, name)
            self._open_streams += 1
        # Sample at once: Popen returns after exec, so even a script that ends within
        # milliseconds gets a resource reading of its own (not the worker's). A process
        # that has just exec'd has no descendants yet: no need to scan /proc for them.
        sampled = self._sample(now, refresh=False)
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
        """One turn of the loop. Returns False once the run is over."""
        now = self.clock()
        wait = max(0.0, min(self._next_timer(now) - now, 0.5))
        if not self._start_reported:
            wait = min(wait, START_REPORT_WAIT)
        if self._open_streams:
            for key, _ in self._sel.select(wait):
                self._read(key.fd, str(key.data))
        else:
            time.sleep(min(wait, 0.05))
        if not self._start_reported:
            # Reported after the first look at the pipes, not before: a script's first
            # line is stored (and readable through the API) without waiting for the
            # reporter's database write.
            self._start_reported = True
            assert self.proc is not None
            self.reporter.started(self.proc.pid, self._create_time)
        now = self.clock()
        self._flush_stale_partials(now)
        self._reap_child(now)
        if now >= self._next_control:
            self._next_control = now + self.limits.control_interval
            self._handle_control(self.reporter.control())
        if now >= self._next_sample and self.returncode is None:
            self._next_sample = now + self.limits.monitor_interval
            self._sample(now)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.limits.heartbeat_interval
            self.reporter.heartbeat(self.stats)
        if self._deadline is not None and not self._paused and now >= self._deadline:
            self._deadline = None
            if self.returncode is None and self.run_status is None:
                self.run_status = "timeout"
                self.reason = f"timed out after {self.limits.timeout:g}s"
                self.reporter.event("timeout", {"timeout": self.limits.timeout})
                self._terminate()
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
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
                self._finish()
                return False
        return True

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
        with contextlib.suppress(Exception):
            self._refresh_tracked()
        self._signal_all(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        with contextlib.suppress(Exception):
            self._drain_and_close()
        with contextlib.suppress(Exception):
            self._finish()

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
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        for pid, proc in list(self._tracked.items()):
            try:
                if proc.is_running():  # compares create time: no recycled pid is hit
                    proc.send_signal(sig)
            except psutil.Error:
                self._tracked.pop(pid, None)

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
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._close_stream(fd, name)
            return
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
            self._pending_since.pop(name, None)
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
        self.reporter.output(name, whole, ts, lines=lines)

    def _keep_partial(self, name: str, partial: bytes, ts: float) -> None:
        """A line with no end yet: kept for the next read, or reported now if too long."""
        if len(partial) >= PARTIAL_MAX:
            self._pending[name] = b""
            self._pending_since.pop(name, None)
            self.reporter.output(name, partial, ts)
        else:
            self._pending[name] = partial
            self._pending_since.setdefault(name, self.clock())

    def _emit_partial(self, name: str) -> None:
        if self._pending[name]:
            data, self._pending[name] = self._pending[name], b""
            self._pending_since.pop(name, None)
            self.reporter.output(name, data, time.time())

    def _flush_stale_partials(self, now: float) -> None:
        for name, since in list(self._pending_since.items()):
            if now - since >= PARTIAL_FLUSH:
                self._emit_partial(name)

    def _drain_and_close(self) -> None:
        for key in list(self._sel.get_map().values()):
            name = str(key.data)
            while True:
                try:
                    data = os.read(key.fd, READ_SIZE)
                except (BlockingIOError, OSError):
                    data = b""
                if not data:
                    break
                self._consume(name, data)
            self._close_stream(key.fd, name)

    def _close_stream(self, fd: int, name: str) -> None:
        self._sel.unregister(fd)
        # Close through the file object: closing the bare fd would let Popen's file
        # object close the same number again later, after it was reused.
        self._pipes.pop(fd).close()
        self._open_streams -= 1
        self._emit_partial(name)

    def _next_timer(self, now: float) -> float:
        timers = [self._next_control, self._next_heartbeat]
        if self.returncode is None:
            timers.append(self._next_sample)
        if self._deadline is not None and not self._paused:
            timers.append(self._deadline)
        if self._kill_at is not None:
            timers.append(self._kill_at)
        if self._pending_since:
            timers.append(min(self._pending_since.values()) + PARTIAL_FLUSH)
        if self._child_exited_at is not None:
            timers.append(self._child_exited_at + EOF_GRACE)
        return min(timers)

    def _finish(self) -> None:
        """The child is gone and the pipes are closed: end leftovers, reap them."""
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


def _ppid_map() -> dict[int, int]:
    """``{pid: parent pid}`` of every process, in one pass over ``/proc``."""
    platform_map = getattr(getattr(psutil, "_psplatform", None), "ppid_map", None)
    if platform_map is not None:  # Linux: psutil's own single pass
        return dict(platform_map())
    return {proc.pid: proc.ppid() for proc in psutil.process_iter()}


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
