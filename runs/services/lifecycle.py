"""Queueing and controlling runs from the web side (API, admin, commands).

Control requests (stop, kill, cancel, pause, resume) are written to the run row;
the runner polls its row every ``SCRIPTOPS_CONTROL_POLL`` seconds and acts, so a
request works whichever process or host handles it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.conf import Conf

from analytics.models import RunAnalysis
from audit.services import events_unsaved, record
from core.errors import Conflict
from core.hostid import host_id
from core.models import User
from core.precompiled import inserts_prepared
from prechecks.models import RunCheck
from runs.engine import kill_process_tree
from runs.events import run_changed, runs_changed
from runs.logstore import remove_store
from runs.models import ACTIVE, TERMINAL, Control, EventKind, Run, RunEvent, RunStatus
from runs.services.concurrency import gate_ensure, runs_start_waiting
from runs.services.queue import runs_queue, runs_queue_rows, runs_queued_announce
from runs.services.uploads import uploads_forget

logger = logging.getLogger(__name__)

ControlCommand = Control


def _queue_tasks(run_ids: list[str]) -> None:
    # The database broker: one write transaction for all of them, not one per run.
    with transaction.atomic() if Conf.ORM else contextlib.nullcontext():
        runs_queue(run_ids)


def _announce(run_ids: list[str]) -> None:
    runs_changed(run_ids)


def runs_hand_over(run_ids: list[str]) -> None:
    """Hand committed queued runs to the workers: one broker write for all of them."""
    if not run_ids:
        return
    _queue_tasks(run_ids)
    _announce(run_ids)


def _queue_with_the_rows() -> bool:
    """True when the task queue is a table of the runs' own database (the database broker,
    outside django-q2's sync mode): the tasks can then be queued in the transaction that
    creates the runs — committed together, so never before the rows, and one write lock
    per launch instead of two (SQLite has one writer at a time)."""
    return Conf.ORM == DEFAULT_DB_ALIAS and not Conf.SYNC


def run_enqueue(
    *,
    params: dict[str, Any],
    user: User | None = None,
    source: str = "api",
    restarted_from: Run | None = None,
) -> Run:
    """Create a queued run and hand it to the workers once the row is committed."""
    return runs_enqueue_many(requests=[params], user=user, source=source, restarted_from=restarted_from)[0]


def runs_enqueue_many(
    *,
    requests: list[dict[str, Any]],
    user: User | None = None,
    source: str = "api",
    restarted_from: Run | None = None,
) -> list[Run]:
    """Create queued runs (one per field dict in ``requests``) with a few statements for
    all of them, and hand them to the workers once the rows are committed."""
    for key in sorted({params.get("concurrency_key") or "" for params in requests}):
        gate_ensure(key=key)
    created_by = user if getattr(user, "is_authenticated", False) else None
    # Every row is built and its INSERT compiled before the write transaction: SQLite has
    # one writer, and the launches of a storm, the runner's claims and its finishes all
    # wait for it (bursts of 20 launches through daphne: held 5.2 -> 3.7 ms a launch).
    runs = [
        Run(**params, source=source, created_by=created_by, restarted_from=restarted_from)
        for params in requests
    ]
    restarted = str(restarted_from.pk) if restarted_from else None
    events = [
        RunEvent(run=run, kind=EventKind.QUEUED, data={"source": source, "restarted_from": restarted})
        for run in runs
    ]
    run_ids = [str(run.pk) for run in runs]
    action = {"restart": "run.restart", "rerun": "run.rerun"}.get(source, "run.launch")
    audits = events_unsaved(
        {
            "action": action,
            "object_type": "run",
            "object_id": run.pk,
            "summary": f"{action.split('.')[1].capitalize()} {run.script_path} ({source})",
            "data": {"script_path": run.script_path, "source": source, "restarted_from": restarted},
            "actor": created_by,
        }
        for run in runs
    )
    with_the_rows = _queue_with_the_rows()
    queued = runs_queue_rows(run_ids) if with_the_rows else []
    inserts = inserts_prepared([runs, events, audits, queued])
    with transaction.atomic():
        inserts.execute()
        if with_the_rows:
            runs_queued_announce()
            transaction.on_commit(lambda: _announce(run_ids))
        else:
            # on_commit (of the caller's transaction, if any): no worker may look for a
            # row that is not committed yet.
            transaction.on_commit(lambda: runs_hand_over(run_ids))
    return runs


def _finish_unstarted(run: Run, *, reason: str) -> bool:
    """Cancel a run that has not started. Returns False if a worker claimed it first."""
    now = timezone.now()
    done = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, finished_at=now, control=Control.CANCEL
    )
    if done:
        RunEvent.objects.create(run=run, kind=EventKind.CANCELLED, data={"reason": reason})
        run.refresh_from_db()
        run_changed(str(run.pk))
        if run.concurrency_key:
            runs_start_waiting(key=run.concurrency_key)
    return bool(done)


def run_control(*, run: Run, command: str, user: User | None = None) -> Run:
    """Ask the runner to stop, kill, cancel, pause or resume ``run``.

    A queued run asked to stop, kill or cancel never starts. A finished run answers
    409. Returns the refreshed run.
    """
    who = getattr(user, "username", None)
    if command not in Control.values or command == Control.NONE:
        raise ValueError(f"unknown control command {command!r}")
    run.refresh_from_db()
    if run.status in TERMINAL:
        raise Conflict(f"Run {run.pk} is already {run.status}.")
    if command in (Control.STOP, Control.KILL, Control.CANCEL):
        if run.status == RunStatus.QUEUED and _finish_unstarted(run, reason=f"{command} by {who}"):
            _control_record(run, command, user, queued=True)
            return run
    elif run.status != RunStatus.RUNNING:
        raise Conflict(f"Run {run.pk} is not running (status {run.status}); cannot {command}.")
    if command == Control.PAUSE and run.paused:
        return run
    if command == Control.RESUME and not run.paused:
        raise Conflict(f"Run {run.pk} is not paused.")
    # A kill may follow a stop; a stop never downgrades a kill.
    current = Run.objects.filter(pk=run.pk).values_list("control", flat=True).first()
    if command == Control.STOP and current == Control.KILL:
        return run
    updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        control=command, control_requested_at=timezone.now()
    )
    if not updated:
        run.refresh_from_db()
        if run.status in TERMINAL:
            raise Conflict(f"Run {run.pk} is already {run.status}.")
    kind = {
        Control.STOP: EventKind.STOP_REQUESTED,
        Control.CANCEL: EventKind.STOP_REQUESTED,
        Control.KILL: EventKind.KILL_REQUESTED,
    }.get(Control(command))
    if kind:
        RunEvent.objects.create(run=run, kind=kind, data={"command": command, "by": who})
    if updated:
        _control_record(run, command, user, queued=False)
    run.refresh_from_db()
    run_changed(str(run.pk))
    return run


def _control_record(run: Run, command: str, user: User | None, *, queued: bool) -> None:
    record(
        action=f"run.{command}",
        object_type="run",
        object_id=run.pk,
        summary=f"{command.capitalize()} {'queued ' if queued else ''}run of {run.script_path}",
        data={"script_path": run.script_path, "status": run.status},
        actor=user if getattr(user, "is_authenticated", False) else None,
    )


def run_restart(*, run: Run, user: User | None = None) -> Run:
    """Stop ``run`` if it is active, then queue a fresh run with the same parameters."""
    if run.status in ACTIVE:
        try:
            run_control(run=run, command=Control.CANCEL, user=user)
        except Conflict:
            pass  # it finished in the meantime
    return run_enqueue(params=run.request_parameters(), user=user, source="restart", restarted_from=run)


def run_delete(*, run: Run) -> None:
    if run.status in ACTIVE:
        raise Conflict(f"Run {run.pk} is {run.status}; stop it before deleting it.")
    runs_delete(ids=[run.pk])


def runs_delete(*, ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    """Delete finished runs and their output. All or nothing: any active run → 409."""
    wanted = list(dict.fromkeys(ids))
    with transaction.atomic():
        found = list(Run.objects.filter(pk__in=wanted).values_list("pk", "status", "script_path"))
        active = [str(pk) for pk, status, _ in found if status in ACTIVE]
        if active:
            raise Conflict(f"Active runs cannot be deleted: {', '.join(active)}.")
        found_ids = [pk for pk, _, _ in found]
        script_paths = {path for _, _, path in found}
        for pk, status, path in found:
            record(
                action="run.delete",
                object_type="run",
                object_id=pk,
                summary=f"Deleted run of {path}",
                data={"script_path": path, "status": status},
            )
        Run.objects.filter(pk__in=found_ids).delete()
        # Its analysis goes with the run; its history points stay (analytics' cleanup).
        RunAnalysis.objects.filter(run_id__in=found_ids).delete()
        RunCheck.objects.filter(run_id__in=found_ids).delete()  # its pre-run check, too
        # An upload's database copy (hosts sharing no disk) goes with the last run of it,
        # unless a task names it; its folders go later (uploads_sweep, each host's own).
        uploads_forget(script_paths=script_paths)
        dirs = [settings.RUNS_DIR / str(pk) for pk in found_ids]

        def remove_dirs() -> None:
            for folder in dirs:
                remove_store(folder)

        transaction.on_commit(remove_dirs)
    missing = [str(pk) for pk in wanted if pk not in set(found_ids)]
    return {"deleted": len(found_ids), "not_found": missing}


# A run directory is swept only once this old: never one of a run being created.
SWEEP_MIN_AGE = 600.0


def run_dirs_sweep(*, min_age: float = SWEEP_MIN_AGE) -> int:
    """Remove this host's run directories (``RUNS_DIR/<id>``) whose run no longer exists.

    A run deleted on another host (``runs_delete`` there removes that host's files and,
    with the database store, the output blocks) leaves the worker host that ran it a
    directory of its own: the runner's housekeeping sweeps them. Returns how many were
    removed. Only directories named as a run id, untouched for ``min_age`` seconds."""
    root = Path(settings.RUNS_DIR)
    if not root.is_dir():
        return 0
    horizon = time.time() - min_age
    candidates: dict[uuid.UUID, Path] = {}
    for entry in root.iterdir():
        try:
            run_id = uuid.UUID(entry.name)
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime < horizon:
                candidates[run_id] = entry
        except (ValueError, OSError):
            continue
    ids = list(candidates)
    existing: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        existing.update(Run.objects.filter(pk__in=ids[start : start + 500]).values_list("pk", flat=True))
    removed = 0
    for run_id, folder in candidates.items():
        if run_id not in existing:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        logger.info("Removed the local output of %d deleted runs", removed)
    return removed


def _worker_gone(worker_host: str, worker_pid: int | None, host: str) -> bool:
    """On the worker's own host (by :func:`core.hostid.host_id`, never by name alone), a
    dead worker process is known at once.

    A zombie counts as dead: a worker killed together with its parent (the cluster
    stopping) stays a zombie until init reaps it, and ``os.kill(pid, 0)`` still
    succeeds on a zombie.
    """
    if worker_host != host or not worker_pid:
        return False
    try:
        return bool(psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def run_fail_lost(*, run: Run, message: str, now: Any = None, host: str | None = None) -> bool:
    """Fail a running run whose worker is gone (or going: a runner shutting down) as
    ``worker_lost``, killing its process tree if it lives on this host. False if the run
    finished or beat meanwhile (compare-and-set on its status and heartbeat)."""
    now = now or timezone.now()
    host = host or host_id()
    last = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
    summary = run.error_summary_for(
        exit_code=None, stderr_snippet=message, status="failed", reason="worker_lost"
    )
    # The failed status and its orphaned event in one transaction: a reader never sees
    # one without the other (the kill between them only sends signals).
    with transaction.atomic():
        claimed = Run.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=RunStatus.FAILED,
            run_status="failed",
            finished_at=now,
            error_summary=summary,
            paused=False,
        )
        if not claimed:
            return False
        killed = False
        if run.host_id == host and run.pid:
            killed = kill_process_tree(run.pid, run.pid_create_time)
        RunEvent.objects.create(
            run=run,
            kind=EventKind.ORPHANED,
            data={"last_heartbeat": last, "host": run.host, "process_killed": killed},
        )
        run_id = str(run.pk)
        transaction.on_commit(lambda: run_changed(run_id))
    if run.concurrency_key:
        runs_start_waiting(key=run.concurrency_key)
    return True


def run_reap_orphans(*, now: Any = None) -> list[str]:
    """Fail runs whose worker died; kill their processes when they live on this host.

    A run is orphaned when it is ``running`` and either its heartbeat is older than
    ``SCRIPTOPS_HEARTBEAT_TIMEOUT`` or, on its own host, its worker process is gone.
    Its process tree is killed when it lives on this host (checked by pid and process
    start time, so a recycled pid is left alone).
    """
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
    host = host_id()
    reaped: list[str] = []
    # Light rows first (a runner host holds hundreds of runs, all candidates by their
    # host, and this runs every few seconds); each worker process is looked at once.
    candidates = (
        Run.objects.filter(status=RunStatus.RUNNING)
        .filter(Q(heartbeat_at__lt=limit) | Q(host_id=host))
        .values_list("pk", "heartbeat_at", "host_id", "worker_pid")
    )
    gone: dict[tuple[str, int | None], bool] = {}
    for pk, heartbeat_at, worker_host, worker_pid in candidates:
        stale = heartbeat_at is None or heartbeat_at < limit
        if not stale:
            worker = (worker_host, worker_pid)
            if worker not in gone:
                gone[worker] = _worker_gone(worker_host, worker_pid, host)
            if not gone[worker]:
                continue
        run = Run.objects.filter(pk=pk).first()
        if run is None:
            continue
        last = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
        message = (
            f"The worker running this script (pid {run.worker_pid} on {run.host or 'unknown host'}) "
            f"was lost: it died or stopped responding (last heartbeat {last})."
        )
        if not run_fail_lost(run=run, message=message, now=now, host=host):
            continue  # it finished, or beat, in the meantime
        logger.warning("Run %s orphaned (last heartbeat %s); marked failed", run.pk, last)
        reaped.append(str(run.pk))
    return reaped
