"""``manage.py runner``: this host's runner process — executes runs, up to
``SCRIPTOPS_MAX_RUNS`` at once, from the runs queue (see :mod:`runs.host`) — and the
housekeeping of a worker host: the reaper (runs whose worker died are failed, their
processes killed; runs waiting for a concurrency slot handed over again), the
scheduler's tick (due tasks, dependents of finished runs; every ``--tick-interval``)
and, every few minutes, the removal of the local output of runs deleted on another host
and of the uploaded scripts nothing refers to any more.

``serve`` starts one per worker host. SIGTERM or SIGINT: no more runs are taken, the
running ones are killed (recorded as ``worker_lost``: the runner shut down) and the
process exits once their records are written. SIGUSR1 drains: no more runs are taken,
the running ones go on to their end, then the process exits (0); a SIGTERM meanwhile
still stops it at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from audit.services import prune_schedule_ensure
from core.heap import settle
from runs.host import RunHost
from runs.services import run_dirs_sweep, run_reap_orphans
from runs.services.concurrency import runs_start_all_waiting
from runs.services.uploads import uploads_sweep
from scheduler.services import fallback_schedule_ensure, tasks_fire_due

logger = logging.getLogger("scriptops.runner")

# How often the local output of runs deleted elsewhere (run_dirs_sweep) and the uploads
# nothing refers to (uploads_sweep) are looked for.
SWEEP_INTERVAL = 300.0


def housekeeping(stop: threading.Event, *, reap_interval: float, tick_interval: float) -> None:
    """The reaper and the scheduler's tick, until ``stop``. Errors are logged, never fatal."""

    def guarded(name: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            logger.exception("%s failed", name)
            close_old_connections()  # a broken connection is replaced next time

    guarded("the fallback schedule", fallback_schedule_ensure)
    guarded("the audit log's retention schedule", prune_schedule_ensure)
    next_reap = 0.0
    next_sweep = time.monotonic() + SWEEP_INTERVAL
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_reap:
                next_reap = now + reap_interval
                guarded("the reaper", run_reap_orphans)
                guarded("the concurrency safety net", runs_start_all_waiting)
            if now >= next_sweep:
                next_sweep = now + SWEEP_INTERVAL
                guarded("the sweep of deleted runs' output", run_dirs_sweep)
                guarded("the sweep of unused uploads", uploads_sweep)
            guarded("the scheduler's tick", tasks_fire_due)
            stop.wait(tick_interval)
    finally:
        connection.close()


class Command(BaseCommand):
    help = (
        "Execute runs from the queue, up to SCRIPTOPS_MAX_RUNS at once, and keep house (one per worker host)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-runs", type=int, default=None, help="Default: SCRIPTOPS_MAX_RUNS.")
        parser.add_argument("--reap-interval", type=float, default=5.0)
        parser.add_argument("--tick-interval", type=float, default=0.1)
        parser.add_argument(
            "--no-housekeeping", action="store_true", help="Only runs: no reaper, no scheduler tick."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s runner %(levelname)s %(message)s")
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        host = RunHost(max_runs=options["max_runs"])

        def on_drain(signum: int, frame: Any) -> None:
            host.drain()
            logger.info("Draining: no more runs are taken; %d running go on to their end", host.held)

        signal.signal(signal.SIGUSR1, on_drain)
        keeper: threading.Thread | None = None
        if not options["no_housekeeping"]:
            keeper = threading.Thread(
                target=housekeeping,
                args=(stop,),
                kwargs={"reap_interval": options["reap_interval"], "tick_interval": options["tick_interval"]},
                name="scriptops-housekeeping",
                daemon=True,
            )
            keeper.start()
        self.stdout.write(
            f"Runner: up to {host.max_runs} runs at once from queue {settings.RUNS_QUEUE!r} "
            f"({'redis' if settings.REDIS_URL else 'database'} broker)"
            f"{'' if keeper else ', no housekeeping'}."
        )
        self.stdout.flush()  # stdout is a file or a pipe under serve/systemd: say it now, not at exit
        settle()
        host.serve_forever(stop.is_set)
        drained = " after draining" if host.draining and not stop.is_set() else ""
        stop.set()
        if keeper is not None:
            keeper.join(10.0)
        self.stdout.write(f"Runner stopped{drained} ({host.started} runs started).")
