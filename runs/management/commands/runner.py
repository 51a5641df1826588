"""``manage.py runner``: this host's runner process — executes runs, up to
``SCRIPTOPS_MAX_RUNS`` at once, from the runs queue (see :mod:`runs.host`).

``serve`` starts one per worker host. SIGTERM or SIGINT: no more runs are taken, the
running ones are killed (recorded as such) and the process exits once their records
are written.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runs.host import RunHost


class Command(BaseCommand):
    help = "Execute runs from the queue, up to SCRIPTOPS_MAX_RUNS at once (one per worker host)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-runs", type=int, default=None, help="Default: SCRIPTOPS_MAX_RUNS.")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s runner %(levelname)s %(message)s")
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        host = RunHost(max_runs=options["max_runs"])
        self.stdout.write(
            f"Runner: up to {host.max_runs} runs at once from queue {settings.RUNS_QUEUE!r} "
            f"({'redis' if settings.REDIS_URL else 'database'} broker)."
        )
        host.serve_forever(stop.is_set)
        self.stdout.write(f"Runner stopped ({host.started} runs started).")
