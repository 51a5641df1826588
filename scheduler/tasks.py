"""django-q2 entry points: adapters that call services."""

from __future__ import annotations

from typing import Any

from scheduler.services import tasks_fire_due


def tick() -> dict[str, Any]:
    """The fallback tick, scheduled every minute by a django-q2 ``Schedule`` (migration 0002).

    ``manage.py serve`` ticks every ``--tick-interval`` seconds itself; this keeps
    deployments that run bare ``qcluster`` processes firing (at minute resolution).
    """
    return tasks_fire_due().summary()
