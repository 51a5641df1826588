"""Reads of the scheduler that are more than a queryset: the task list with its last runs,
the dependency graph and its cycles, due tasks."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from scheduler.models import ScheduledTask, ScheduleType, TaskRun


def tasks_with_relations() -> QuerySet[ScheduledTask]:
    """Tasks with everything their JSON shows, in a fixed number of queries.

    ``last_task_run_id`` is the newest entry of the task's history that created a run;
    :func:`last_runs` loads those entries for a page of tasks in one query.
    """
    last = (
        TaskRun.objects.filter(task=OuterRef("pk"), run__isnull=False)
        .order_by("-fired_at", "-id")
        .values("pk")
    )
    return (
        ScheduledTask.objects.select_related("owner", "script")
        .prefetch_related("depends_on", "dependents", "events")
        .annotate(last_task_run_id=Subquery(last[:1]))
    )


def last_runs(tasks: Iterable[ScheduledTask]) -> dict[int, TaskRun]:
    """The entries named by ``last_task_run_id`` (see :func:`tasks_with_relations`), by id."""
    ids = [getattr(task, "last_task_run_id", None) for task in tasks]
    wanted = [pk for pk in ids if pk is not None]
    if not wanted:
        return {}
    return {tr.pk: tr for tr in TaskRun.objects.select_related("run").filter(pk__in=wanted)}


def last_run_of(task: ScheduledTask, cache: dict[int, TaskRun] | None = None) -> TaskRun | None:
    if hasattr(task, "last_task_run_id"):  # annotated: None means no run yet
        pk = task.last_task_run_id
        if pk is None:
            return None
        if cache is not None and pk in cache:
            return cache[pk]
    return (
        TaskRun.objects.select_related("run")
        .filter(task=task, run__isnull=False)
        .order_by("-fired_at", "-id")
        .first()
    )


def due_tasks(*, now: datetime) -> QuerySet[ScheduledTask]:
    return (
        tasks_with_relations()
        .filter(enabled=True, next_run_at__lte=now)
        .exclude(schedule_type=ScheduleType.NONE)
        .order_by("next_run_at", "pk")
    )


def dependency_edges() -> list[tuple[int, int]]:
    """Every edge ``(upstream, dependent)``."""
    through = ScheduledTask.depends_on.through
    return [
        (upstream, dependent)
        for dependent, upstream in through.objects.values_list("from_scheduledtask_id", "to_scheduledtask_id")
    ]


def dependency_cycle(*, task_id: int, upstream_ids: Iterable[int]) -> list[int] | None:
    """The cycle that making ``task_id`` depend on ``upstream_ids`` would close, or None.

    Returned as task ids in run order, first and last the same: ``[t, a, b, t]`` means t
    runs before a, a before b, and b — through the new dependency — before t.
    """
    wanted = set(upstream_ids)
    if task_id in wanted:
        return [task_id, task_id]
    dependents: dict[int, list[int]] = {}
    for upstream, dependent in dependency_edges():
        if dependent != task_id:  # the task's own upstream edges are being replaced
            dependents.setdefault(upstream, []).append(dependent)
    # Breadth-first from the task along "runs before": the shortest way back to it.
    parent: dict[int, int] = {task_id: task_id}
    queue = deque([task_id])
    while queue:
        node = queue.popleft()
        for nxt in dependents.get(node, []):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt in wanted:
                path = [nxt]
                while path[-1] != task_id:
                    path.append(parent[path[-1]])
                return [*reversed(path), task_id]
            queue.append(nxt)
    return None


def task_graph() -> dict[str, Any]:
    """Nodes (with the status of their last run) and upstream → dependent edges."""
    tasks = list(
        ScheduledTask.objects.annotate(
            last_task_run_id=Subquery(
                TaskRun.objects.filter(task=OuterRef("pk"), run__isnull=False)
                .order_by("-fired_at", "-id")
                .values("pk")[:1]
            )
        ).order_by("name")
    )
    runs = last_runs(tasks)
    nodes = []
    for task in tasks:
        last = runs.get(getattr(task, "last_task_run_id", None) or 0)
        status = last.run.status if last is not None and last.run is not None else None
        nodes.append({"id": task.pk, "name": task.name, "enabled": task.enabled, "last_status": status})
    edges = [{"from": upstream, "to": dependent} for upstream, dependent in sorted(dependency_edges())]
    return {"nodes": nodes, "edges": edges}


def task_script_paths_referenced(paths: list[str]) -> list[str]:
    """Those of ``paths`` that a task runs (enabled or not: it may be enabled again).

    Registered with runs as an upload referrer (``SchedulerConfig.ready``): an uploaded
    script named by a task outlives the runs of it."""
    return list(ScheduledTask.objects.filter(script_path__in=paths).values_list("script_path", flat=True))
