"""``manage.py serve``: daphne + the runner (runs, the reaper, the scheduler's tick) +
the django-q2 cluster, supervised. What ``make run`` starts.

It prepares the list of processes, then ``exec``s :mod:`scriptops.supervise` (plain
Python: the supervisor keeps none of Django's memory). Each child is restarted if it
dies; on SIGINT/SIGTERM all are stopped and the runs left behind on this host reaped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve ScriptOps: daphne (HTTP + websockets), the runner and the django-q2 workers, supervised."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--no-web", action="store_true", help="Only the runner and the workers (scale-out)."
        )
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
        children: list[tuple[str, list[str]]] = []
        if not options["no_web"]:
            daphne = [sys.executable, "-m", "daphne", "-b", options["host"], "-p", str(options["port"])]
            children.append(("web", [*daphne, "--proxy-headers", "scriptops.asgi:application"]))
        if not options["no_worker"]:
            # One runner for all of this host's runs (runs.host), with the housekeeping.
            runner = [sys.executable, manage, "runner"]
            runner += ["--reap-interval", str(options["reap_interval"])]
            runner += ["--tick-interval", str(options["tick_interval"])]
            children.append(("runner", runner))
            # Library scans and other background tasks.
            children.append(("workers", [sys.executable, manage, "qcluster"]))
        else:
            # No runner here to sweep this web host's uploads (manage.py housekeep).
            children.append(("housekeeper", [sys.executable, manage, "housekeep"]))
        reap = None if options["no_worker"] else [sys.executable, manage, "reap_runs"]
        where = "" if options["no_web"] else f" on http://{options['host']}:{options['port']}/"
        self.stdout.write(
            f"ScriptOps{where} (up to {settings.MAX_RUNS} runs at once, {settings.WORKERS} task workers, "
            f"broker: {'redis' if settings.REDIS_URL else 'database'}). Ctrl-C stops."
        )
        self.stdout.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        config = json.dumps({"children": children, "reap": reap})
        supervisor = str(Path(settings.BASE_DIR) / "scriptops" / "supervise.py")  # by path: any cwd
        os.execv(sys.executable, [sys.executable, supervisor, config])
