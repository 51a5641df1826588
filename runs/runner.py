"""Many runs in one process: one ``selectors`` loop supervises them all.

Plain Python like :mod:`runs.engine` (no Django, DRF or Channels); the worker wires a
:class:`Hub` (control requests and heartbeats of all the runner's runs, each in one
call) and a per-run :class:`~runs.engine.RunReporter` (output, start, samples, events,
pause) to the database and the output store.

The loop, one thread::

    submit(key, spec, reporter) ──► inbox ──(wake-up pipe)──► spawn ─► Supervisor(host=runner)
    select() on every run's pipes + pidfd ─► Supervisor.on_readable ─► reporter.output
    one timer heap across runs            ─► Supervisor.tick (start report, partial flush,
                                               timeout, stop grace, EOF grace, end)
    every control interval                ─► hub.controls(all keys)  ─► Supervisor.control
    every sample interval                 ─► one scan of /proc       ─► Supervisor.sample_from
    every heartbeat interval              ─► hub.heartbeats(all stats)

**Whose process is it?** The runner is the *child subreaper*: an orphan of any run is
re-parented to it, so orphans of different runs all land on the same parent. Each scan
attributes every process below the runner to a run, in this order:

1. the run's child and everything below it;
2. a process already attributed (pid *and* start time: pids wrap at 32768 by default);
3. its session: a run's child leads its own session, and everything it starts stays in
   it unless it calls ``setsid`` — then the new session's leader, once tracked, names
   the run the same way. (Linux never recycles a pid still used as a session id, so a
   live session member makes the match exact.);
4. the run marker in its environment (``SCRIPTOPS_RUN_ID`` by default, which the worker
   puts in every script's environment): read once, only for an orphan nothing above
   claimed — a ``setsid`` daemon whose parent exited before any scan saw it;
5. its start time, when exactly one run (running or ended) lived at that moment.

A process none of these claims is left alone while a run that may own it is still
running, and killed once every such run has ended: a run never kills what might be
another's, and nothing a run left behind outlives all the runs it could belong to.

**Scans.** A scan reads every ``/proc/<pid>/stat`` once (about 10 µs a process: 5 ms
with 500 processes on the host) and serves every run: samples, and the searches that a
stop, kill, pause, EOF grace or end needs, within the same turn of the loop. Samples
are taken every run's ``monitor_interval`` (0.1 s by default) while that costs at most
``sample_budget`` of a core (5 %); beyond that the interval grows with the scan's
measured cost. The scans that end runs (to find orphans no sample saw) are shared by
all the runs ending within ``max(20 ms, 4 times a scan's cost)``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import resource
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from runs.engine import (
    Limits,
    Outcome,
    ProcInfo,
    RunReporter,
    Stats,
    Supervisor,
    become_subreaper,
    same_process,
    scan_processes,
)

logger = logging.getLogger(__name__)

# Spawns per turn of the loop: a burst of a thousand submissions must not keep the
# runs already running from being read for the whole burst.
SPAWN_BATCH = 8
SWEEP_MIN_GAP = 0.02
SWEEP_COST_FACTOR = 4.0
REAP_POLL = 0.02
# Start times (psutil's clock) closer than this to a run's start or end may belong to it.
WINDOW_SLACK = 0.05
_WAKE = "wake"


class Hub(Protocol):
    """The calls a runner makes for all its runs at once (the worker wires them to the
    database: one query, one statement)."""

    def controls(self, keys: Sequence[str]) -> Mapping[str, str]:
        """Pending control requests (``stop``, ``cancel``, ``kill``, ``pause``,
        ``resume``) of these runs, each returned once; runs with none are left out."""

    def heartbeats(self, stats: Mapping[str, Stats]) -> None:
        """The runs are alive; their stats so far."""


@dataclass(frozen=True)
class RunSpec:
    cmd: Sequence[str]
    cwd: str
    env: dict[str, str]
    # Read per run: timeout, stop_grace, monitor_interval. The control and heartbeat
    # intervals are the runner's, for all its runs.
    limits: Limits = field(default_factory=Limits)


@dataclass(eq=False)
class _Run:
    key: str
    spec: RunSpec
    reporter: RunReporter
    future: Future[Outcome]
    sup: Supervisor | None = None
    marker: str | None = None
    pid: int = 0
    start: int = 0  # the child's start, clock ticks since boot
    born: float = 0.0  # the same on psutil's clock
    ended: float | None = None  # wall clock (psutil's clock, near enough) once over
    ended_mono: float = 0.0
    outcome: Outcome | None = None
    error: BaseException | None = None
    next_sample: float = 0.0
    sched: float = math.inf


class Runner:
    """One loop for many runs. :meth:`submit` from any thread; drive the loop in one
    thread with :meth:`serve` (until :meth:`shutdown`) or :meth:`step`."""

    def __init__(
        self,
        hub: Hub,
        *,
        control_interval: float = 0.05,
        heartbeat_interval: float = 5.0,
        sample_budget: float = 0.05,
        max_sample_interval: float = 5.0,
        marker_env: str | None = "SCRIPTOPS_RUN_ID",
        scan: Callable[[], dict[int, ProcInfo]] = scan_processes,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.hub = hub
        self.control_interval = control_interval
        self.heartbeat_interval = heartbeat_interval
        self.sample_budget = sample_budget
        self.max_sample_interval = max_sample_interval
        self.marker_env = marker_env
        self.clock = clock
        self._scan_fn = scan
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, (None, _WAKE))
        self._lock = threading.Lock()
        self._inbox: deque[_Run] = deque()
        self._commands: deque[tuple[str, str]] = deque()
        self._stopping = False
        self._closed = False
        self._runs: dict[str, _Run] = {}  # submitted and not yet over
        self._by_sup: dict[Supervisor, _Run] = {}
        self._heap: list[tuple[float, int, _Run]] = []
        self._seq = itertools.count()
        self._sweeping: list[_Run] = []  # over; resolved after a scan kills their orphans
        self._history: deque[_Run] = deque()  # over: still claim their late orphans
        self._markers: dict[str, _Run] = {}
        self._owner: dict[int, tuple[int, _Run]] = {}  # pid -> (start ticks, run)
        self._environ: dict[tuple[int, int], str | None] = {}
        self._reap: set[int] = set()
        self._turn = 0
        self._table: dict[int, ProcInfo] = {}
        self._table_turn = -1
        self._table_at = -math.inf
        self._attrib: dict[_Run, list[ProcInfo]] = {}
        self._scan_cost = 0.0
        self.sample_interval = 0.1
        now = clock()
        self._next_control = now + control_interval
        self._next_heartbeat = now + heartbeat_interval
        self._next_sample = math.inf
        self._sweep_at = math.inf
        self._me = os.getpid()
        self._my_sid = os.getsid(0)
        self._born = time.time()
        # Counters, for tests and the benchmark.
        self.scans = 0
        self.sample_passes = 0
        become_subreaper()
        _raise_fd_limit()

    # -- any thread -----------------------------------------------------------------
    def submit(self, key: str, spec: RunSpec, reporter: RunReporter) -> Future[Outcome]:
        """Start a run as soon as the loop gets to it. Thread-safe. The future gives its
        :class:`~runs.engine.Outcome`, or the exception that ended it: an ``OSError`` if
        it could not be started, or the error its reporter raised (its processes are
        killed then, the other runs go on)."""
        future: Future[Outcome] = Future()
        marker = spec.env.get(self.marker_env) if self.marker_env else None
        with self._lock:
            if self._closed or self._stopping:
                raise RuntimeError("the runner is shut down")
            self._inbox.append(_Run(key=key, spec=spec, reporter=reporter, future=future, marker=marker))
        self.wake()
        return future

    def command(self, key: str, command: str) -> None:
        """Apply a control command to a run at the loop's next turn. Thread-safe."""
        with self._lock:
            self._commands.append((key, command))
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def shutdown(self) -> None:
        """Make :meth:`serve` return (it kills what still runs). Thread-safe."""
        self._stopping = True
        self.wake()

    @property
    def active(self) -> int:
        """Runs submitted and not yet resolved."""
        with self._lock:
            waiting = len(self._inbox)
        return waiting + len(self._runs) + len(self._sweeping)

    # -- the loop's thread ----------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self._stopping:
                self.step()
        finally:
            self.close()

    def step(self, max_wait: float = 1.0) -> None:
        """One turn of the loop: wait for an fd or the next timer, then handle all."""
        now = self.clock()
        wait = min(self._next_wakeup(now) - now, max_wait)
        if self._inbox:
            wait = 0.0
        events = self.selector.select(max(0.0, wait))
        self._turn += 1
        dirty: dict[_Run, None] = {}
        for key, _ in events:
            sup, stream = key.data
            if sup is None:
                with contextlib.suppress(BlockingIOError, OSError):
                    while os.read(self._wake_r, 4096):
                        pass
                continue
            run = self._by_sup.get(sup)
            if run is None or run.key not in self._runs:
                continue
            if self._guard(run, sup.on_readable, key.fd, stream):
                dirty[run] = None
        self._spawn_some()
        self._take_commands(dirty)
        now = self.clock()
        if now >= self._next_control:
            self._poll_controls(dirty)
            self._next_control = self.clock() + self.control_interval
        if now >= self._next_sample:
            self._sample_pass(now)
        if now >= self._next_heartbeat:
            self._send_heartbeats()
            self._next_heartbeat = self.clock() + self.heartbeat_interval
        while self._heap and self._heap[0][0] <= now:
            when, _, run = heapq.heappop(self._heap)
            if when == run.sched:
                run.sched = math.inf
                dirty[run] = None
        for run in dirty:
            self._tick(run, now)
        if self._sweeping and self.clock() >= self._sweep_at:
            self._sweep()
        if self._reap:
            self._reap_some()

    def close(self) -> None:
        """Kill every run still running (its outcome says so), resolve them all and
        release the loop's fds."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            waiting = list(self._inbox)
            self._inbox.clear()
        for run in waiting:
            run.future.set_exception(RuntimeError("the runner shut down before the run started"))
        self._turn += 1
        for run in list(self._runs.values()):
            sup = run.sup
            assert sup is not None
            sup.run_status = sup.run_status or "killed"
            sup.reason = sup.reason or "the runner shut down"
            with contextlib.suppress(Exception):
                sup.abort()
            self._end(run)
        if self._sweeping:
            self._sweep()
        deadline = time.monotonic() + 1.0
        while self._reap and time.monotonic() < deadline:
            self._reap_some()
            if self._reap:
                time.sleep(0.01)
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- ProcessHost: what the supervisors call ---------------------------------------
    def descendants(self, supervisor: Supervisor) -> list[ProcInfo]:
        run = self._by_sup.get(supervisor)
        if run is None:
            return []
        self._scan_this_turn()
        return list(self._attrib.get(run, []))

    def reap_later(self, pids: Sequence[int]) -> None:
        self._reap.update(pids)

    # -- runs ------------------------------------------------------------------------
    def _spawn_some(self) -> None:
        for _ in range(SPAWN_BATCH):
            with self._lock:
                if not self._inbox:
                    return
                run = self._inbox.popleft()
            if not run.future.set_running_or_notify_cancel():
                continue  # cancelled before it started
            if run.key in self._runs:
                run.future.set_exception(ValueError(f"run {run.key!r} is already running"))
                continue
            self._spawn(run)
            if run.sup is not None and run.key in self._runs:
                self._schedule(run, self.clock())

    def _spawn(self, run: _Run) -> None:
        spec = run.spec
        sup = Supervisor(
            spec.cmd, cwd=spec.cwd, env=spec.env, reporter=run.reporter, limits=spec.limits, host=self
        )
        run.sup = sup
        self._by_sup[sup] = run
        self._runs[run.key] = run
        try:
            sup.start()
        except Exception as exc:  # noqa: BLE001 - mostly an OSError from exec; the future carries it
            del self._runs[run.key]
            del self._by_sup[sup]
            if sup.proc is not None:
                with contextlib.suppress(Exception):
                    sup.abort()
            run.future.set_exception(exc)
            return
        assert sup.proc is not None
        run.pid = sup.proc.pid
        info = sup.child_info
        if info is not None:
            run.start, run.born = info.start, info.create_time
            self._owner[run.pid] = (info.start, run)
        else:  # already gone: its create time as the engine knows it
            run.born = sup.create_time
        if run.marker:
            self._markers[run.marker] = run
        now = self.clock()
        run.next_sample = now + spec.limits.monitor_interval
        self._next_sample = min(self._next_sample, now + self._interval_for(spec.limits.monitor_interval))

    def _take_commands(self, dirty: dict[_Run, None]) -> None:
        if not self._commands:
            return
        with self._lock:
            commands = list(self._commands)
            self._commands.clear()
        for key, command in commands:
            run = self._runs.get(key)
            if run is not None and run.sup is not None:
                self._guard(run, run.sup.control, command)
                dirty[run] = None

    def _tick(self, run: _Run, now: float) -> None:
        sup = run.sup
        if sup is None or run.key not in self._runs or self._runs[run.key] is not run:
            return
        try:
            going = sup.tick(now)
        except Exception as exc:  # noqa: BLE001 - one run's failure must not end the others
            self._fail(run, exc)
            return
        if not going:
            self._end(run)
            return
        self._schedule(run, now)

    def _schedule(self, run: _Run, now: float) -> None:
        """Put the run on the timer heap at its next deadline, unless it is there sooner
        already (an entry that is no longer the run's next is skipped when it comes up)."""
        assert run.sup is not None
        when = run.sup.next_deadline(now)
        if when < run.sched:
            run.sched = when
            heapq.heappush(self._heap, (when, next(self._seq), run))

    def _guard(self, run: _Run, call: Callable[..., object], *args: object) -> bool:
        """Call into a run; an exception fails that run only (its processes killed)."""
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - one run's failure must not end the others
            self._fail(run, exc)
            return False
        return True

    def _fail(self, run: _Run, exc: BaseException) -> None:
        logger.exception("Supervision of run %s failed; killing its processes", run.key, exc_info=exc)
        run.error = exc
        if run.sup is not None:
            with contextlib.suppress(Exception):
                run.sup.abort()
        self._end(run)

    def _end(self, run: _Run) -> None:
        """The run is over: resolved once a scan has looked for its orphans."""
        if self._runs.get(run.key) is run:
            del self._runs[run.key]
        assert run.sup is not None
        if run.error is None:
            run.outcome = run.sup.outcome()
        run.ended = time.time()
        run.ended_mono = now = self.clock()
        self._sweeping.append(run)
        gap = max(SWEEP_MIN_GAP, SWEEP_COST_FACTOR * self._scan_cost)
        self._sweep_at = min(self._sweep_at, max(now, self._table_at + gap))

    def _sweep(self) -> None:
        """Resolve the runs just over, once a scan made after their end has killed their
        orphans (:meth:`_attribute` kills whatever it finds of a run that is over)."""
        runs, self._sweeping = self._sweeping, []
        self._sweep_at = math.inf
        if self._table_at < max(run.ended_mono for run in runs) or self._table_turn != self._turn:
            self._scan()
        for run in runs:
            self._history.append(run)
            if run.error is not None:
                run.future.set_exception(run.error)
            else:
                assert run.outcome is not None
                run.future.set_result(run.outcome)
        self._prune_history()

    # -- batched calls -----------------------------------------------------------------
    def _poll_controls(self, dirty: dict[_Run, None]) -> None:
        if not self._runs:
            return
        try:
            requests = self.hub.controls(list(self._runs))
        except Exception:
            # The database may be away for a moment: the runs go on, the next poll retries.
            logger.exception("Reading control requests failed")
            return
        for key, command in requests.items():
            run = self._runs.get(key)
            if run is not None and run.sup is not None and command:
                self._guard(run, run.sup.control, command)
                dirty[run] = None

    def _send_heartbeats(self) -> None:
        stats = {key: run.sup.stats for key, run in self._runs.items() if run.sup is not None}
        if not stats:
            return
        try:
            self.hub.heartbeats(stats)
        except Exception:
            logger.exception("Writing heartbeats failed")

    def _sample_pass(self, now: float) -> None:
        """One scan of /proc; each run due for a sample gets one from it."""
        started = time.thread_time()
        self.sample_passes += 1
        self._scan()
        half = self.sample_interval / 2
        shortest = math.inf
        for run in list(self._runs.values()):
            sup = run.sup
            if sup is None or sup.returncode is not None or run.key not in self._runs:
                continue
            interval = sup.limits.monitor_interval
            shortest = min(shortest, interval)
            if now + half < run.next_sample:
                continue
            run.next_sample = now + interval
            infos = self._attrib.get(run, [])
            child = self._table.get(run.pid)
            if child is not None and child.start == run.start:
                infos = [child, *infos]
            self._guard(run, sup.sample_from, now, infos)
        cost = time.thread_time() - started
        self._scan_cost = cost if not self._scan_cost else 0.7 * self._scan_cost + 0.3 * cost
        self.sample_interval = self._interval_for(shortest)
        self._next_sample = now + self.sample_interval if self._runs else math.inf

    def _interval_for(self, wanted: float) -> float:
        """The sample interval: what the runs want, unless a pass would then cost more
        than ``sample_budget`` of a core (its cost is measured, not guessed)."""
        if math.isinf(wanted):
            return self.sample_interval
        return min(self.max_sample_interval, max(wanted, self._scan_cost / self.sample_budget))

    # -- scans and attribution -----------------------------------------------------------
    def _scan_this_turn(self) -> None:
        if self._table_turn != self._turn:
            self._scan()

    def _scan(self) -> None:
        self.scans += 1
        self._table = self._scan_fn()
        self._table_turn = self._turn
        self._table_at = self.clock()
        self._attrib = self._attribute(self._table)

    def _attribute(self, table: dict[int, ProcInfo]) -> dict[_Run, list[ProcInfo]]:
        """Every process below the runner, by run (see the module's docstring)."""
        kids: dict[int, list[int]] = {}
        sids: set[int] = set()
        for info in table.values():
            kids.setdefault(info.ppid, []).append(info.pid)
            sids.add(info.sid)
        # Forget what is gone (a session leader is remembered while its session lives).
        self._owner = {
            pid: owned
            for pid, owned in self._owner.items()
            if ((seen := table.get(pid)) is not None and seen.start == owned[0]) or pid in sids
        }
        self._environ = {
            k: v for k, v in self._environ.items() if (seen := table.get(k[0])) and seen.start == k[1]
        }
        result: dict[_Run, list[ProcInfo]] = {}
        for pid in kids.get(self._me, []):
            info = table[pid]
            run = self._runs_by_child(info)
            members: list[ProcInfo] = []
            if run is None:
                run = self._claim(info)
                if run is None:
                    self._unclaimed(info, kids, table)
                    continue
                members.append(info)
            stack = list(kids.get(pid, []))
            while stack:
                member = table[stack.pop()]
                members.append(member)
                stack.extend(kids.get(member.pid, []))
            result.setdefault(run, []).extend(members)
        for run, members in result.items():
            for member in members:
                self._owner[member.pid] = (member.start, run)
                if member.state == "Z" and member.ppid == self._me:
                    self._reap.add(member.pid)  # an orphan that exited: no zombie left
            if run.ended is not None:
                # Left behind by a run that is over: orphans no sample saw (found by the
                # scan made as it ended), or ones nobody could tell apart until now.
                self._kill(members)
        return result

    def _runs_by_child(self, info: ProcInfo) -> _Run | None:
        owned = self._owner.get(info.pid)
        if owned is not None and owned[0] == info.start and owned[1].pid == info.pid:
            return owned[1]
        return None

    def _claim(self, info: ProcInfo) -> _Run | None:
        """Whose orphan is this child of the runner? None if that cannot be told yet."""
        owned = self._owner.get(info.pid)
        if owned is not None and owned[0] == info.start:
            return owned[1]
        if info.sid == self._my_sid:
            return None  # never in a run: every run starts in a session of its own
        leader = self._owner.get(info.sid)
        if leader is not None and leader[0] <= info.start:
            return leader[1]
        marker = self._marker_of(info)
        if marker is not None and marker in self._markers:
            return self._markers[marker]
        candidates = self._candidates(info)
        return candidates[0] if len(candidates) == 1 else None

    def _candidates(self, info: ProcInfo) -> list[_Run]:
        """The runs alive when this process was born."""
        born = info.create_time
        runs = [*self._runs.values(), *self._sweeping, *self._history]
        return [
            run
            for run in runs
            if run.sup is not None
            and run.born - WINDOW_SLACK <= born
            and (run.ended is None or born <= run.ended + WINDOW_SLACK)
        ]

    def _unclaimed(self, info: ProcInfo, kids: dict[int, list[int]], table: dict[int, ProcInfo]) -> None:
        if info.sid == self._my_sid:
            return  # not a run's: none of the runner's business
        if info.state == "Z":
            self.reap_later([info.pid])
            return
        if info.create_time < self._born - 1.0:
            return
        if any(run.ended is None for run in self._candidates(info)):
            return  # it may be a running run's: left alone until that run is over
        members = [info]
        stack = list(kids.get(info.pid, []))
        while stack:
            member = table[stack.pop()]
            members.append(member)
            stack.extend(kids.get(member.pid, []))
        self._kill(members)

    def _kill(self, infos: Sequence[ProcInfo]) -> None:
        for info in infos:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(info.pid)
                if same_process(proc.create_time(), info.create_time):
                    proc.kill()
                    if info.ppid == self._me:
                        self._reap.add(info.pid)

    def _marker_of(self, info: ProcInfo) -> str | None:
        if not self.marker_env:
            return None
        key = (info.pid, info.start)
        if key not in self._environ:
            value: str | None = None
            with contextlib.suppress(OSError), open(f"/proc/{info.pid}/environ", "rb") as environ:
                prefix = self.marker_env.encode() + b"="
                for item in environ.read().split(b"\0"):
                    if item.startswith(prefix):
                        value = item[len(prefix) :].decode(errors="replace")
                        break
            self._environ[key] = value
        return self._environ[key]

    def _prune_history(self) -> None:
        """Ended runs are kept while a process born in their lifetime may still show up."""
        horizon = time.time() - 60.0
        while self._history and (self._history[0].ended or 0.0) < horizon:
            run = self._history.popleft()
            if run.sup is not None:
                self._by_sup.pop(run.sup, None)
            if run.marker and self._markers.get(run.marker) is run:
                del self._markers[run.marker]

    # -- reaping --------------------------------------------------------------------------
    def _reap_some(self) -> None:
        roots = {run.pid for run in self._runs.values() if run.sup is not None and run.sup.returncode is None}
        for pid in list(self._reap):
            if pid in roots:
                self._reap.discard(pid)  # its supervisor reaps it (and keeps its exit status)
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except (ChildProcessError, OSError):
                done = pid  # not ours to reap, or already reaped
            if done:
                self._reap.discard(pid)

    def _next_wakeup(self, now: float) -> float:
        wakeup = min(self._next_control, self._next_sample, self._next_heartbeat, self._sweep_at)
        if self._heap:
            wakeup = min(wakeup, self._heap[0][0])
        if self._reap:
            wakeup = min(wakeup, now + REAP_POLL)
        return wakeup


def _raise_fd_limit() -> None:
    """Three fds a run (two pipes and a pidfd): a thousand runs need more than the
    usual soft limit of 1024. Raised to the hard limit, best effort."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
