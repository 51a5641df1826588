"""django-q2 entry points: adapters that take ids and call services."""

from __future__ import annotations

from runs.services import run_execute, run_reap_orphans


def execute_run(run_id: str) -> str | None:
    return run_execute(run_id=run_id)


def reap_orphans() -> list[str]:
    return run_reap_orphans()
