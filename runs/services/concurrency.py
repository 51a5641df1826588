"""Per-key concurrency limits that hold across every worker process and host.

A run with a ``concurrency_key`` and a ``concurrency_limit`` (a library script's
``max_concurrent``, a scheduled task's overlap policy) may start only while fewer than
``limit`` runs of that key are running and the runs queued before it fit in the
remaining slots; otherwise it stays ``queued`` with ``wait_reason`` set and its task
ends. When a run of the key ends (or a queued one is cancelled), the oldest waiting
runs are handed to the workers again, so they start in order as slots free.

The decision is taken inside one transaction holding the key's
:class:`~runs.models.ConcurrencyGate` row (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite's IMMEDIATE transactions serialise writers anyway), so two workers can never
both take the last slot.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from typing import Literal

from django.db import IntegrityError, connections, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.hostid import host_id, host_name
from core.precompiled import IN_KEPT_UP_TO, KeptRead, update_rows
from runs.events import run_changed
from runs.models import ConcurrencyGate, EventKind, Run, RunEvent, RunStatus
from runs.services.queue import runs_queue

logger = logging.getLogger(__name__)

Claim = Literal["claimed", "waiting", "gone"]


def gate_ensure(*, key: str) -> None:
    """Create the gate row of ``key`` (before any run of it can be claimed)."""
    if not key or ConcurrencyGate.objects.filter(key=key).exists():
        return
    try:
        with transaction.atomic():
            ConcurrencyGate.objects.create(key=key)
    except IntegrityError:
        pass  # created by a concurrent request


def _taken() -> dict[str, object]:
    now = timezone.now()
    return {
        "status": RunStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "host": host_name(),
        "host_id": host_id(),
        "worker_pid": os.getpid(),
        "wait_reason": "",
    }


def _claimable_queryset(run_ids: Sequence[object]) -> QuerySet[Run]:
    return (
        Run.objects.select_for_update(skip_locked=True)
        .filter(pk__in=run_ids, status=RunStatus.QUEUED, concurrency_limit__isnull=True)
        .order_by()
    )


_CLAIMABLE = KeptRead(
    "runs.claimable",
    lambda ids: _claimable_queryset(ids).values("pk"),
    samples={"ids": [uuid.UUID(int=i + 1) for i in range(IN_KEPT_UP_TO)]},
    fields={"ids": Run._meta.pk},
)


def _claimable(run_ids: Sequence[str]) -> list[object]:
    """The ids among ``run_ids`` of queued runs without a limit (not locked by another
    claim, on PostgreSQL), read by a statement compiled once per connection and count."""
    return [row["pk"] for row in _CLAIMABLE.rows(connections[Run.objects.db], ids=run_ids)]


def runs_claim_many(*, run_ids: list[str]) -> list[str]:
    """Claim many runs at once (a runner host's delivery): the ones without a concurrency
    limit in one transaction, the others one by one through :func:`run_claim`. Returns
    the ids claimed by this call, each claimed by exactly one caller anywhere."""
    if not run_ids:
        return []
    with transaction.atomic():
        # Row locks on PostgreSQL (another host's runner skips them, then finds them no
        # longer queued); SQLite's IMMEDIATE transaction makes this the only writer.
        free = _claimable(run_ids)
        # Statements built once per shape: the write lock is held meanwhile.
        update_rows(Run, values=_taken(), where={"pk": free, "status": RunStatus.QUEUED})
    # In the delivery's order (the queue's): the database returns rows in any order.
    order = {run_id: i for i, run_id in enumerate(run_ids)}
    claimed = sorted((str(pk) for pk in free), key=lambda run_id: order.get(run_id, len(order)))
    taken = set(claimed)
    claimed += [run_id for run_id in run_ids if run_id not in taken and run_claim(run_id=run_id) == "claimed"]
    return claimed


def run_claim(*, run_id: str) -> Claim:
    """Move ``run_id`` from queued to running if its key has a free slot (compare-and-set)."""
    taken = _taken()
    # Most runs have no limit: one compare-and-set, no transaction to open.
    if Run.objects.filter(pk=run_id, status=RunStatus.QUEUED, concurrency_limit__isnull=True).update(**taken):
        return "claimed"
    with transaction.atomic():
        row = (
            Run.objects.filter(pk=run_id, status=RunStatus.QUEUED)
            .values("concurrency_key", "concurrency_limit", "created_at", "wait_reason")
            .first()
        )
        if row is None:
            return "gone"
        key, limit = row["concurrency_key"], row["concurrency_limit"]
        if key and limit:
            list(ConcurrencyGate.objects.select_for_update().filter(key=key))
            running = Run.objects.filter(concurrency_key=key, status=RunStatus.RUNNING).count()
            ahead = (
                Run.objects.filter(concurrency_key=key, status=RunStatus.QUEUED)
                .filter(Q(created_at__lt=row["created_at"]) | Q(created_at=row["created_at"], pk__lt=run_id))
                .count()
            )
            if running + ahead >= limit:
                reason = f"Waiting for a free slot: {running} of max {limit} running"
                if ahead:
                    reason += f", {ahead} queued before this one"
                Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(wait_reason=reason[:300])
                if not row["wait_reason"]:
                    RunEvent.objects.create(
                        run_id=run_id,
                        kind=EventKind.WAITING,
                        data={"key": key, "limit": limit, "running": running, "ahead": ahead},
                    )
                transaction.on_commit(lambda: run_changed(run_id))
                return "waiting"
        claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(**taken)
    return "claimed" if claimed else "gone"


def runs_start_waiting(*, key: str) -> list[str]:
    """Hand the oldest waiting runs of ``key`` to the workers, as many as slots are free.

    Called when a run of ``key`` ends or a queued one is cancelled, and by the
    housekeeping loop as a safety net. A run handed over twice is harmless: only one
    claim can win.
    """
    if not key:
        return []
    queued = Run.objects.filter(concurrency_key=key, status=RunStatus.QUEUED).order_by("created_at", "pk")
    first = queued.values("concurrency_limit").first()
    if first is None:
        return []
    limit = first["concurrency_limit"] or 0
    running = Run.objects.filter(concurrency_key=key, status=RunStatus.RUNNING).count()
    free = max(0, limit - running) if limit else queued.count()
    picked = [str(pk) for pk in queued.values_list("pk", flat=True)[:free]]
    runs_queue(picked)
    return picked


def runs_start_all_waiting() -> list[str]:
    """The safety net: restart every key whose waiting runs have a free slot."""
    keys = (
        Run.objects.filter(status=RunStatus.QUEUED)
        .exclude(wait_reason="")
        .values_list("concurrency_key", flat=True)
        .distinct()
    )
    started: list[str] = []
    for key in keys:
        started += runs_start_waiting(key=key)
    return started
