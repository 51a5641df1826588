"""Scheduler services: every write to the scheduler goes through here (see CONVENTIONS.md)."""

from scheduler.services.firing import (
    EventResult,
    TickResult,
    event_fire,
    fallback_schedule_ensure,
    hook_fire,
    task_environment,
    task_fire,
    task_run_now,
    tasks_fire_due,
)
from scheduler.services.tasks import (
    MASKED,
    TaskError,
    hash_token,
    task_clean,
    task_create,
    task_delete,
    task_enable,
    task_pause,
    task_update,
    task_webhook_remove,
    task_webhook_rotate,
)

__all__ = [
    "MASKED",
    "EventResult",
    "TaskError",
    "TickResult",
    "event_fire",
    "fallback_schedule_ensure",
    "hash_token",
    "hook_fire",
    "task_clean",
    "task_create",
    "task_delete",
    "task_enable",
    "task_environment",
    "task_fire",
    "task_pause",
    "task_run_now",
    "task_update",
    "task_webhook_remove",
    "task_webhook_rotate",
    "tasks_fire_due",
]
