"""``manage.py housekeep``: the housekeeping of a web-only host (``serve --no-worker``).

A web host stores the scripts uploaded to it in its own data dir; a worker host's
runner sweeps its own folders, never another host's, so a web host without a runner
needs this to remove the uploads nothing refers to any more. ``serve --no-worker``
starts it; ``--once`` suits a cron job or a systemd timer instead.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from runs.services.uploads import uploads_sweep
from scriptops.management.commands.runner import SWEEP_INTERVAL

logger = logging.getLogger("scriptops.housekeep")


def sweep_once() -> int:
    try:
        return uploads_sweep()
    except Exception:
        logger.exception("The sweep of unused uploads failed")
        close_old_connections()  # a broken connection is replaced next time
        return 0


class Command(BaseCommand):
    help = "Sweep this host's uploads that nothing refers to any more (a web-only host's housekeeping)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=SWEEP_INTERVAL, help="Seconds between sweeps.")
        parser.add_argument("--once", action="store_true", help="One sweep, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s housekeep %(levelname)s %(message)s")
        if options["once"]:
            removed = sweep_once()
            self.stdout.write(f"{removed} unused upload(s) removed.")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            # The first sweep after one interval: a host just started has nothing old.
            while not stop.wait(options["interval"]):
                removed = sweep_once()
                if removed:
                    logger.info("%d unused upload(s) removed", removed)
        finally:
            connection.close()
