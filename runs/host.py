"""A runner host: the one process per worker host that executes runs, hundreds at once.

``manage.py runner`` (started by ``serve``) builds a :class:`RunHost`. Three threads:

- **the loop** — :class:`runs.runner.Runner`: spawns the scripts, reads their pipes,
  enforces timeouts, applies controls, samples all process trees in one pass. It never
  waits for the database's write lock: output and samples go to files, every database
  write is handed to the database thread. Its :class:`DbHub` reads the control requests
  of all its runs with one query per poll.
- **intake** — takes run tasks from the runs queue of django-q2's broker
  (:mod:`runs.services.queue`: the database by default, Redis at scale) while there is
  room (``SCRIPTOPS_MAX_RUNS``), claims them with one compare-and-set for the whole
  delivery, acknowledges them and hands them to the loop.
- **the database thread** — :class:`DbThread`: does the writes in order, many per
  transaction (one write lock for a burst of starts), with the heartbeats of all runs
  in one statement, the ends of attempts, the waits between retries and the final writes.

A run's lifecycle (attempts, retries, final write) is :class:`runs.services.execution.
RunJob`, the same code a run on its own loop (django-q2's sync mode) goes through.
Killed with SIGKILL, a host leaves its runs ``running``: their heartbeats stop and the
reaper (``serve``) fails them as ``worker_lost`` and kills their process trees.
:meth:`RunHost.drain` (SIGUSR1 to ``runner`` or ``serve``) is the gentle way out for a
deploy: nothing more is taken from the queue (other hosts take it), the runs held go on
to their end, then the host stops.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.brokers import Broker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.signing import SignedPackage

from core import bus
from core.broker import DatabaseBroker
from core.precompiled import exists_statement, update_params, update_sql
from runs.engine import Outcome, Stats
from runs.models import Control, Run, RunEvent, RunStatus
from runs.runner import Runner, RunSpec
from runs.selectors import runs_load
from runs.services.concurrency import runs_claim_many
from runs.services.execution import DbReporter, RunJob
from runs.services.queue import EXECUTE_RUN, QUEUED_CHANNEL, runs_broker

logger = logging.getLogger(__name__)

# Database work done per transaction at most: a burst of starts shares one write lock, yet
# a web request waiting for that lock (a launch) never waits behind thousands.
DB_BATCH = 200
# Tasks taken per delivery at most (the database broker; Redis hands them one by one).
INTAKE_BATCH = 100
# The database broker's queue is read on a wake-up, or this often without one (a lost
# wake-up, tasks queued by a process that does not publish: a bare async_task).
INTAKE_FALLBACK = 0.25
_STOP = object()
_WAKE = object()  # a wake-up for work submitted first


def _run_ids(delivered: Sequence[tuple[Any, Any]]) -> list[str]:
    """The run ids of delivered tasks (a task that cannot be read is dropped, logged)."""
    run_ids: list[str] = []
    for _, payload in delivered:
        try:
            task = SignedPackage.loads(payload)
        except Exception:
            logger.exception("An unreadable task in the runs queue was dropped")
            continue
        if task.get("func") == EXECUTE_RUN and task.get("args"):
            run_ids.append(str(task["args"][0]))
    return run_ids


class DbThread:
    """Database work queued from other threads, done in order on one thread, many items
    per transaction (each in a savepoint: one failing item never loses the others), plus
    timers (retries' delays) and a periodic call. Work submitted with ``first`` (the
    heartbeats) goes into the next transaction, ahead of any backlog: a runner finishing
    hundreds of runs at once must not look dead to a reaper."""

    def __init__(self, *, name: str = "scriptops-db"):
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._first: collections.deque[Callable[[], None]] = collections.deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._periodic: list[list[Any]] = []  # [next due, interval, work, when]
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.done = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], object], *, first: bool = False) -> None:
        if first:
            self._first.append(work)  # type: ignore[arg-type]  # its result is ignored
            self._queue.put(_WAKE)
        else:
            self._queue.put(work)

    def call_later(self, delay: float, work: Callable[[], None]) -> None:
        """Run ``work`` on this thread after ``delay`` seconds. Thread-safe."""
        self.submit(lambda: heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), work)))

    def every(
        self, interval: float, work: Callable[[], None], *, when: Callable[[], bool] | None = None
    ) -> None:
        """Call ``work`` on this thread every ``interval`` seconds (set before start).

        ``when``, if given, is asked first, outside any transaction: the work is done only
        if it says so. An idle runner then opens no transaction at all (a periodic check
        with nothing to do took SQLite's write lock 20 times a second)."""
        self._periodic.append([0.0, interval, work, when])

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued work, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            while self._turn():
                pass
        finally:
            connection.close()

    def _turn(self) -> bool:
        now = time.monotonic()
        wait = 0.5
        if self._timers:
            wait = min(wait, self._timers[0][0] - now)
        for due, *_ in self._periodic:
            wait = min(wait, due - now)
        batch: list[Callable[[], None]] = []
        stop = False
        try:
            item = self._queue.get(timeout=max(0.0, wait))
            while True:
                if item is _STOP:
                    stop = True
                elif item is _WAKE:
                    pass
                else:
                    batch.append(item)  # type: ignore[arg-type]  # only callables besides _STOP
                if len(batch) >= DB_BATCH:
                    break
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        first: list[Callable[[], None]] = []
        while self._first:
            first.append(self._first.popleft())
        batch = first + batch
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            batch.append(heapq.heappop(self._timers)[2])
        for periodic in self._periodic:
            if now >= periodic[0]:
                periodic[0] = now + periodic[1]
                when = periodic[3]
                if when is None or when():
                    batch.append(periodic[2])
        if batch:
            self._run(batch)
        return not (stop and self._queue.empty())

    def _run(self, batch: list[Callable[[], None]]) -> None:
        try:
            with transaction.atomic():
                for work in batch:
                    try:
                        with transaction.atomic():
                            work()
                    except Exception:
                        logger.exception("Database work of the runner host failed")
            self.done += len(batch)
        except Exception:
            # The database itself failed (e.g. it restarted): drop the connection so the
            # next batch gets a new one; the runs go on, the reaper has the last word.
            logger.exception("A database batch of the runner host failed")
            close_old_connections()
            connection.close()


class _Live:
    """What the host knows of one run it holds."""

    def __init__(self, job: RunJob):
        self.job = job
        self.reporter: DbReporter | None = None
        self.control_seen: datetime | None = None  # the last control request acted on
        self.waiting_until: float | None = None  # between attempts
        self.stop_between = False


class RunHost:
    """Executes runs from the runs queue, up to ``max_runs`` at once (see the module)."""

    def __init__(
        self,
        *,
        max_runs: int | None = None,
        broker: Broker | None = None,
        runner: Runner | None = None,
    ):
        self.max_runs = max_runs or settings.MAX_RUNS
        self.broker = broker or runs_broker()
        if isinstance(self.broker, DatabaseBroker):
            self.broker.bulk = min(INTAKE_BATCH, self.max_runs)
        self.db = DbThread()
        self.runner = runner or Runner(
            DbHub(self),
            control_interval=settings.CONTROL_POLL_INTERVAL,
            heartbeat_interval=settings.HEARTBEAT_INTERVAL,
        )
        self.runs: dict[str, _Live] = {}  # held: claimed and not finished
        self._room = threading.Condition()
        self._stopping = threading.Event()
        self._draining = threading.Event()
        self._intake = threading.Thread(target=self._intake_serve, name="scriptops-intake", daemon=True)
        self._queued = threading.Event()
        self._listener = threading.Thread(target=self._listen_serve, name="scriptops-queued", daemon=True)
        self._loop = threading.Thread(target=self.runner.serve, name="scriptops-runner", daemon=True)
        self.db.every(settings.CONTROL_POLL_INTERVAL, self._poll_waiting, when=self._any_waiting)
        self.db.every(settings.HEARTBEAT_INTERVAL, self._beat_waiting, when=self._any_waiting)
        self.started = 0

    # -- lifetime -------------------------------------------------------------------
    def start(self) -> None:
        self.db.start()
        self._loop.start()
        if isinstance(self.broker, DatabaseBroker):
            self._listener.start()
        self._intake.start()

    def stop(self) -> None:
        """Take no more runs; kill the ones running (recorded as killed: ``the runner
        shut down``), finish the writes, return."""
        self._stopping.set()
        self._queued.set()
        with self._room:
            self._room.notify_all()
        self._intake.join(5.0)
        self.runner.shutdown()
        self._loop.join(30.0)
        for run_id, live in list(self.runs.items()):
            if live.waiting_until is not None:
                self.db.submit(partial(self._lose, run_id))
        self.db.stop()

    def drain(self) -> None:
        """Take no more runs; the ones held go on to their end (retries included).
        :meth:`serve_forever` returns once none is left. Thread- and signal-safe."""
        self._draining.set()
        self._queued.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def serve_forever(self, should_stop: Callable[[], bool]) -> None:
        self.start()
        try:
            while not should_stop() and self._loop.is_alive() and self._intake.is_alive():
                if self._draining.is_set() and not self.runs:
                    break
                time.sleep(0.2)
        finally:
            self.stop()

    @property
    def held(self) -> int:
        return len(self.runs)

    # -- intake thread ----------------------------------------------------------------
    def _intake_serve(self) -> None:
        """Take runs while there is room. On the database broker, wait for the bus's
        "queued" wake-up (published when runs are committed to the queue), reading the
        queue only every ``INTAKE_FALLBACK`` without one; Redis's BLPOP waits by itself."""
        try:
            while not self._stopping.is_set():
                if self._draining.is_set():
                    self._stopping.wait(0.5)  # nothing more is taken: other hosts will
                    continue
                with self._room:
                    if len(self.runs) >= self.max_runs:
                        self._room.wait(0.5)
                        continue
                try:
                    taken = self.take()
                except Exception:
                    logger.exception("Taking runs from the queue failed")
                    close_old_connections()
                    time.sleep(1.0)
                    continue
                if not taken and isinstance(self.broker, DatabaseBroker):
                    self._queued.wait(INTAKE_FALLBACK)
                    self._queued.clear()  # the take that follows sees what it announced
        finally:
            connection.close()

    def _listen_serve(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        """The bus's "queued" wake-ups, turned into a flag the intake thread waits on (no
        database work here: Django forbids it inside an event loop)."""
        async with bus.subscribe(QUEUED_CHANNEL) as queued:
            while not self._stopping.is_set():
                if await queued.wait(0.5):
                    self._queued.set()

    def take(self) -> list[str]:
        """One delivery from the queue: take, claim, acknowledge, start. Returns the runs
        started. With the database broker all of it but the start is one transaction (one
        write lock per delivery: web requests wait for SQLite's one writer too)."""
        room = min(self.max_runs - len(self.runs), INTAKE_BATCH)
        if room <= 0:
            return []
        if isinstance(self.broker, DatabaseBroker):
            ids = self.broker.waiting(room)
            if not ids:
                return []
            with transaction.atomic():
                claimed = runs_claim_many(run_ids=_run_ids(self.broker.take(ids)))
        else:
            delivered = self.broker.dequeue()  # Redis: one task, or none after 1 s
            if not delivered:
                return []
            if self._draining.is_set() and isinstance(self.broker, RedisBroker):
                # Drained while waiting: back to the head of the queue, for another host.
                self.broker.connection.lpush(self.broker.list_key, *[task for _, task in reversed(delivered)])
                return []
            if isinstance(self.broker, RedisBroker):
                # Take what else is waiting at once (popped: acknowledged by taking).
                while len(delivered) < room:
                    more = self.broker.connection.lpop(self.broker.list_key)
                    if more is None:
                        break
                    delivered.append((None, more))
            claimed = runs_claim_many(run_ids=_run_ids(delivered))
            for ack, _ in delivered:
                if ack is not None:
                    self.broker.acknowledge(ack)
        for run in runs_load(claimed):
            self.hold(run)
        return claimed

    def hold(self, run: Run) -> bool:
        """Start a claimed run: check its plan, start its first attempt."""
        job = RunJob(run)
        if not job.prepare():
            return False  # refused: already recorded as over
        live = _Live(job)
        self.runs[job.run_id] = live
        self.started += 1
        self._attempt(live)
        return True

    # -- any thread: attempts ---------------------------------------------------------
    def _attempt(self, live: _Live) -> None:
        job = live.job
        live.waiting_until = None
        reporter = job.attempt_begin(defer=self.db.submit)
        reporter.control_seen = live.control_seen
        live.reporter = reporter
        spec = RunSpec(cmd=job.plan["command"], cwd=job.plan["cwd"], env=job.plan["env"], limits=job.limits())
        try:
            future = self.runner.submit(job.run_id, spec, reporter)
        except RuntimeError as exc:  # the runner is shutting down
            future = Future()
            future.set_exception(exc)
        # Resolved on the loop's thread: the rest is database work, in order after the
        # attempt's own writes (its start is queued before its end).
        future.add_done_callback(
            lambda done: self.db.submit(partial(self._attempt_over, live, reporter, done))
        )

    # -- database thread ----------------------------------------------------------------
    def _attempt_over(self, live: _Live, reporter: DbReporter, future: Future[Outcome]) -> None:
        job = live.job
        try:
            outcome = future.result()
        except OSError as exc:
            outcome = job.attempt_failed_to_start(reporter, exc)
        except Exception as exc:  # noqa: BLE001 - the run ends failed, the host goes on
            logger.error("Run %s ended by an error: %s", job.run_id, exc)
            now = time.time()
            outcome = Outcome(
                None, "killed" if self._stopping.is_set() else "failed", now, now, reason=str(exc)
            )
        delay = job.attempt_end(reporter, outcome)
        if self._stopping.is_set():
            self._lose(job.run_id)
            return
        if delay is None:
            self._finish(job.run_id)
            return
        live.waiting_until = time.monotonic() + delay
        self.db.call_later(delay, partial(self._retry, job.run_id))

    def _retry(self, run_id: str) -> None:
        live = self.runs.get(run_id)
        if live is None or live.waiting_until is None:
            return  # stopped meanwhile
        self._attempt(live)

    def _stop_waiting(self, run_id: str) -> None:
        live = self.runs.get(run_id)
        if live is None or live.waiting_until is None:
            return
        live.waiting_until = None
        live.job.stopped_between_attempts()
        self._finish(run_id)

    def _waiting(self) -> list[str]:
        """The runs held between attempts (what the periodic checks below are for)."""
        return [run_id for run_id, live in list(self.runs.items()) if live.waiting_until is not None]

    def _any_waiting(self) -> bool:
        return any(live.waiting_until is not None for live in list(self.runs.values()))

    def _poll_waiting(self) -> None:
        """A stop, kill or cancel of a run waiting between attempts ends it at once."""
        waiting = self._waiting()
        if not waiting:
            return
        stopped = Run.objects.filter(
            pk__in=waiting, control__in=(Control.STOP, Control.KILL, Control.CANCEL)
        ).values_list("pk", flat=True)
        for pk in stopped:
            self._stop_waiting(str(pk))

    def _lose(self, run_id: str) -> None:
        """This host is shutting down: its runs (killed by the loop) end ``worker_lost``,
        as when a host dies, but at once instead of after the heartbeat timeout."""
        live = self.runs.pop(run_id, None)
        if live is None:
            return
        live.job.abandon(
            message=(
                f"The runner (pid {os.getpid()} on {socket.gethostname()}) shut down while this "
                "script was running: the script was killed."
            )
        )

    def _finish(self, run_id: str) -> None:
        live = self.runs.get(run_id)
        if live is None:
            return
        live.job.finish(deferred=True)
        with self._room:
            self.runs.pop(run_id, None)
            self._room.notify_all()

    def _beat_waiting(self) -> None:
        """Runs waiting between attempts are alive too (the loop beats for its own)."""
        waiting = self._waiting()
        if waiting:
            Run.objects.filter(pk__in=waiting, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())

    def heartbeats(self, progress: Mapping[str, dict[str, Any]], events: list[RunEvent]) -> None:
        """The loop's runs are alive: one parameterised UPDATE, executed for all of them
        at once (``executemany``). ``bulk_update`` built a CASE per field and run, which
        cost the runner more CPU than the update itself (200 runs: ~17 % of its time)."""
        if progress:
            _rows_update(Run, ["heartbeat_at", *next(iter(progress.values())).keys()], progress)
        if events:
            RunEvent.objects.bulk_create(events)


def _rows_update(model: type[Run], names: Sequence[str], values: Mapping[str, Mapping[str, Any]]) -> None:
    """``UPDATE <runs> SET <names> WHERE pk = <key> AND status = 'running'`` once per key
    of ``values`` (its fields; ``heartbeat_at`` is now), values prepared by the fields."""
    sql = update_sql(connection, model, names, ["pk", "status"])
    now = timezone.now()
    where = {"pk": None, "status": RunStatus.RUNNING}
    params = [
        update_params(connection, model, {"heartbeat_at": now, **row}, {**where, "pk": key})
        for key, row in values.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _requests() -> QuerySet[Run]:
    """The running runs with a control request (acted on or not)."""
    return Run.objects.filter(status=RunStatus.RUNNING).exclude(control="")


# ``SELECT EXISTS(<_requests()>)``, compiled once per database (it has no varying part):
# the control poll runs 20 times a second and almost always finds nothing, and building
# the queryset cost more than the indexed read itself.
_any_request_sql: dict[str, tuple[str, tuple[Any, ...]]] = {}


def _any_request() -> bool:
    check = _any_request_sql.get(connection.alias)
    if check is None:
        sql, params = exists_statement([_requests()], using=connection.alias)
        check = _any_request_sql[connection.alias] = (sql, tuple(params))
    with connection.cursor() as cursor:
        cursor.execute(*check)
        row = cursor.fetchone()
    return bool(row and row[0])


class DbHub:
    """The runner's calls for all its runs at once, wired to the database."""

    def __init__(self, host: RunHost):
        self.host = host

    def controls(self, keys: Sequence[str]) -> Mapping[str, str]:
        """The pending control requests of all the loop's runs: those of the running runs
        that this host holds (read by their status index; on SQLite's WAL a read never
        waits for a writer). A precompiled ``EXISTS`` first: usually there is none. Not
        ``pk IN (the loop's runs)``: binding hundreds of ids twenty times a second cost
        more than the read. Also flushes coalesced output wake-ups."""
        found: dict[str, str] = {}
        held = set(keys)
        rows = _requests().values_list("pk", "control", "control_requested_at") if _any_request() else []
        for pk, control, requested in rows:
            key = str(pk)
            live = self.host.runs.get(key)
            if key not in held or live is None or requested == live.control_seen:
                continue
            live.control_seen = requested
            found[key] = str(control)
        for live in list(self.host.runs.values()):
            if live.reporter is not None:
                live.reporter.notifier.flush()
        return found

    def heartbeats(self, stats: Mapping[str, Stats]) -> None:
        progress: dict[str, dict[str, Any]] = {}
        events: list[RunEvent] = []
        for key, stat in stats.items():
            live = self.host.runs.get(key)
            if live is None or live.reporter is None:
                continue
            progress[key] = live.reporter.progress(stat)
            event = live.reporter.truncation_event()
            if event is not None:
                events.append(event)
        self.host.db.submit(partial(self.host.heartbeats, progress, events), first=True)
