import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runs.services import run_reap_orphans


class Command(BaseCommand):
    help = "Mark runs whose worker died as failed and kill their processes on this host."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Keep checking.")
        parser.add_argument("--interval", type=float, default=5.0)

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            for run_id in run_reap_orphans():
                self.stdout.write(f"reaped {run_id}")
            if not options["loop"]:
                return
            time.sleep(options["interval"])
