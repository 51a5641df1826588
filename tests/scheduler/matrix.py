"""Role-matrix rows of the scheduler endpoints (merged by tests/scriptops/test_role_matrix.py).

Read endpoints need READ, creating/changing/pausing/deleting tasks and webhook tokens
WRITE, running a task and firing an event EXECUTE. A webhook needs no login (its token is
the credential), so it is PUBLIC.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from scheduler.models import ScheduledTask
from scheduler.services import task_create

# (URL name, method):            anonymous readonly executor user  admin
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("scheduler-task-list", "get"): (401, 200, 200, 200, 200),
    ("scheduler-task-list", "post"): (401, 403, 403, 201, 201),
    ("scheduler-task-detail", "get"): (401, 200, 200, 200, 200),
    ("scheduler-task-detail", "put"): (401, 403, 403, 200, 200),
    ("scheduler-task-detail", "patch"): (401, 403, 403, 200, 200),
    ("scheduler-task-detail", "delete"): (401, 403, 403, 204, 204),
    ("scheduler-task-run", "post"): (401, 403, 202, 202, 202),
    ("scheduler-task-runs", "get"): (401, 200, 200, 200, 200),
    ("scheduler-task-enable", "post"): (401, 403, 403, 200, 200),
    ("scheduler-task-pause", "post"): (401, 403, 403, 200, 200),
    ("scheduler-task-webhook", "post"): (401, 403, 403, 200, 200),
    ("scheduler-task-webhook", "delete"): (401, 403, 403, 204, 204),
    ("scheduler-event", "post"): (401, 403, 200, 200, 200),
    ("scheduler-due", "get"): (401, 200, 200, 200, 200),
    ("scheduler-preview", "get"): (401, 200, 200, 200, 200),
    ("scheduler-graph", "get"): (401, 200, 200, 200, 200),
    ("scheduler-hook", "post"): (202, 202, 202, 202, 202),
}
PUBLIC = {"scheduler-hook"}


def _task(ctx: Any, *, webhook: bool = False) -> tuple[ScheduledTask, str | None]:
    return task_create(
        name=f"matrix-{uuid.uuid4().hex[:8]}",
        script_path=str(ctx.script),
        interval_seconds=60,
        events=["matrix.event"],
        webhook=webhook,
    )


def _task_url(ctx: Any, suffix: str = "") -> str:
    task, _ = _task(ctx)
    return f"/api/scheduler/tasks/{task.pk}{suffix}"


def _hook(ctx: Any) -> tuple[str, dict[str, Any]]:
    _, raw = _task(ctx, webhook=True)
    return (f"/api/scheduler/hooks/{raw}", {"data": {"ref": "main"}, "format": "json"})


def _new_task_body(ctx: Any) -> dict[str, Any]:
    return {"name": f"new-{uuid.uuid4().hex[:8]}", "script_path": str(ctx.script), "cron": "*/5 * * * *"}


REQUESTS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "scheduler-task-list": lambda c: ("/api/scheduler/tasks", {"data": _new_task_body(c), "format": "json"}),
    "scheduler-task-detail": lambda c: (_task_url(c), {}),
    "scheduler-task-run": lambda c: (_task_url(c, "/run"), {}),
    "scheduler-task-runs": lambda c: (_task_url(c, "/runs"), {}),
    "scheduler-task-enable": lambda c: (_task_url(c, "/enable"), {}),
    "scheduler-task-pause": lambda c: (_task_url(c, "/pause"), {}),
    "scheduler-task-webhook": lambda c: (_task_url(c, "/webhook"), {}),
    "scheduler-event": lambda c: ("/api/scheduler/events/matrix.event", {}),
    "scheduler-due": lambda c: ("/api/scheduler/due", {}),
    # The query ends with "&": the matrix's trailing-slash test appends "/" to the whole
    # URL, which then lands in an empty, ignored parameter.
    "scheduler-preview": lambda c: ("/api/scheduler/preview?cron=30+2+*+*+*&tz=Europe%2FParis&", {}),
    "scheduler-graph": lambda c: ("/api/scheduler/graph", {}),
    "scheduler-hook": _hook,
}

METHOD_REQUESTS: dict[tuple[str, str], Callable[[Any], tuple[str, dict[str, Any]]]] = {
    ("scheduler-task-detail", "put"): lambda c: (_task_url(c), {"data": _new_task_body(c), "format": "json"}),
    ("scheduler-task-detail", "patch"): lambda c: (
        _task_url(c),
        {"data": {"description": "changed", "interval_seconds": 120}, "format": "json"},
    ),
}
