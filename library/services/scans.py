"""Scanning a folder root: walk it, read what changed, record scripts, report progress.

A scan runs in a django-q2 worker (``library.tasks.scan_root``). It has three phases:

1. **walk** — ``os.scandir`` the root (recursively if asked), applying the include and
   exclude globs to names (an executable file without an extension that starts with a
   shebang is matched as its interpreter's language), never following a symlink whose
   target leaves the root, and collecting ``(path, size, mtime_ns)`` for every candidate file;
2. **read** — files whose size and mtime both match the stored row are left alone
   (that is what makes rescans cheap); the others are read once, hashed and analysed
   (:mod:`library.analysis`), then written in batches;
3. **sweep** — rows whose file is gone are marked missing, and rows missing for longer
   than ``SCRIPTOPS_LIBRARY_MISSING_GRACE`` are deleted.

Progress (counters, phase) is saved to the scan row at most every ``PROGRESS_EVERY``
seconds; the runs websocket feed sends it as ``scan_progress`` messages.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, models, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.services import record
from core.models import User
from library.analysis import EXTENSIONS_BY_LANGUAGE, analyse, language_of, shebang_of
from library.models import SCAN_ACTIVE, FolderRoot, Scan, ScanState, Script
from library.services.roots import allowed_roots, within
from runs.events import RUNS_CHANNEL, notify

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5
BATCH = 500
MAX_ERRORS_KEPT = 100
# Bytes read to find the shebang of an executable file without an extension.
SHEBANG_SNIFF = 512
# An active scan whose row has not moved for this long lost its worker.
STALE_AFTER = timedelta(minutes=10)
SCAN_FIELDS = ("path", "relpath", "name", "extension", "language", "shebang", "size", "line_count")
UPDATE_FIELDS = [
    *SCAN_FIELDS,
    "sha256",
    "mtime",
    "mtime_ns",
    "description",
    "parameters",
    "is_binary",
    "read_error",
    "parse_error",
    "last_scanned_at",
    "missing_since",
]


def _glob_regex(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def scans_fail_stale(*, root: FolderRoot | None = None, now: Any = None) -> int:
    """Fail active scans whose worker is gone (their row stopped moving)."""
    now = now or timezone.now()
    stale = Scan.objects.filter(state__in=SCAN_ACTIVE, updated_at__lt=now - STALE_AFTER)
    if root is not None:
        stale = stale.filter(root=root)
    return stale.update(
        state=ScanState.FAILED,
        finished_at=now,
        updated_at=now,
        message="The scan stopped making progress (its worker died?) and was abandoned.",
    )


def _hand_over(scan_id: str, root_name: str) -> None:
    async_task("library.tasks.scan_root", scan_id, task_name=f"scan {root_name}"[:100], hook=None)
    notify(RUNS_CHANNEL)


def scan_start(*, root: FolderRoot, user: User | None = None) -> tuple[Scan, bool]:
    """Queue a scan of ``root``; returns ``(scan, joined)``.

    If a scan of the root is already queued or running, that scan is returned with
    ``joined=True`` and nothing new starts: a root is never scanned twice at once
    (also enforced by a partial unique constraint, for requests racing each other).
    """
    scans_fail_stale(root=root)
    active = root.scans.filter(state__in=SCAN_ACTIVE).first()
    if active is not None:
        return active, True
    try:
        with transaction.atomic():
            scan = Scan.objects.create(
                root=root, requested_by=user if getattr(user, "is_authenticated", False) else None
            )
            scan_id = str(scan.pk)
            record(
                action="library_root.scan",
                object_type="library_root",
                object_id=root.pk,
                summary=f"Scan of folder root {root.name!r} started",
                data={"scan_id": scan_id},
                actor=user if getattr(user, "is_authenticated", False) else None,
            )
            transaction.on_commit(lambda: _hand_over(scan_id, root.name))
    except IntegrityError:
        active = root.scans.filter(state__in=SCAN_ACTIVE).first()
        if active is None:
            raise
        return active, True
    return scan, False


@dataclass
class Candidate:
    path: str
    relpath: str
    name: str
    size: int
    mtime_ns: int
    dev: int = 0
    ino: int = 0
    link: bool = False  # a symlink whose target the walk checked to be inside the root


@dataclass
class Progress:
    """Counters of a scan in memory, flushed to its row now and then."""

    scan_id: str
    counters: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    error_count: int = 0
    phase: str = ""
    files_total: int | None = None
    _last: float = 0.0

    def add(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def error(self, path: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"path": path, "error": message})

    def flush(self, *, force: bool = False, **extra: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        Scan.objects.filter(pk=self.scan_id).update(
            **{f"files_{k}": v for k, v in self.counters.items()},
            phase=self.phase,
            files_total=self.files_total,
            errors=self.errors,
            error_count=self.error_count,
            updated_at=timezone.now(),
            **extra,
        )
        notify(RUNS_CHANNEL)


def _shebang_script_included(candidate: Candidate, mode: int, include: re.Pattern[str]) -> bool:
    """An executable file without an extension whose first line is a shebang (``deploy``
    starting ``#!/usr/bin/env python3``), if the include globs admit its language.

    Such a file is matched as if it had its language's extensions (``deploy.py``,
    ``deploy.pyw``): the default globs take every kind ScriptOps knows, ``["*.sh"]`` only
    shell scripts, and a shebang naming no known interpreter is left out. The first line
    is read like a script (:func:`_read`: ``O_NOFOLLOW``, same device and inode as the
    walk saw), once per scan and such file; they are few in a scripts folder.
    """
    if os.path.splitext(candidate.name)[1] or not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return False
    head, _ = _read(candidate, SHEBANG_SNIFF)
    # One that cannot be read (or was swapped since its stat) is not known to be a script,
    # and an unreadable executable binary is no problem of the scan: left out silently.
    if not head:
        return False
    language = language_of("", shebang_of(head))
    return any(include.match(candidate.name + ext) for ext in EXTENSIONS_BY_LANGUAGE.get(language, ()))


def _walk(root: FolderRoot, real_root: Path, progress: Progress) -> tuple[list[Candidate], list[str]]:
    """Candidate files under the root, and the folders that could not be listed."""
    include = _glob_regex(list(root.include_patterns))
    exclude = _glob_regex(list(root.exclude_patterns))
    found: list[Candidate] = []
    unreadable: list[str] = []
    base = str(real_root)
    seen_dirs = {base}
    stack = [(root.path, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            unreadable.append(folder)
            progress.error(folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        for entry in entries:
            name = entry.name
            if exclude is not None and exclude.match(name):
                continue
            relpath = f"{rel}{name}"
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not within(Path(target), real_root):
                        progress.add("skipped")
                        continue
                    info = os.stat(entry.path)
                    if stat.S_ISDIR(info.st_mode):
                        if root.recursive and target not in seen_dirs:
                            seen_dirs.add(target)
                            stack.append((entry.path, relpath + "/"))
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    if root.recursive:
                        stack.append((entry.path, relpath + "/"))
                    continue
                else:
                    info = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    continue
                candidate = Candidate(
                    entry.path,
                    relpath,
                    name,
                    info.st_size,
                    info.st_mtime_ns,
                    info.st_dev,
                    info.st_ino,
                    entry.is_symlink(),
                )
                if (
                    include is not None
                    and not include.match(name)
                    and not _shebang_script_included(candidate, info.st_mode, include)
                ):
                    continue
            except OSError as exc:
                progress.error(entry.path, f"cannot stat: {exc.strerror or exc}")
                continue
            found.append(candidate)
        progress.flush(files_seen=len(found))
    return found, unreadable


def _read(candidate: Candidate, limit: int | None = None) -> tuple[bytes | None, str]:
    """The file's bytes (at most ``limit``, by default the read cap), if it is still the
    very file the walk found inside the root.

    The walk saw this file (device + inode) inside the root; opening it again by path
    could meet a symlink or a swapped folder put there since. Comparing the opened
    file's identity with the walk's makes the check exact and costs one fstat (no
    realpath per file). Plain entries are opened with O_NOFOLLOW.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if candidate.link else os.O_NOFOLLOW)
    try:
        fd = os.open(candidate.path, flags)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (candidate.dev, candidate.ino):
            return None, "the file was replaced during the scan; it was not read"
        with open(fd, "rb", closefd=False) as fh:
            return fh.read(settings.LIBRARY_MAX_READ_BYTES if limit is None else limit), ""
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    finally:
        os.close(fd)


def _scanned_fields(candidate: Candidate, data: bytes, now: Any) -> dict[str, Any]:
    """The scan-owned fields of a script, from its file."""
    complete = len(data) >= candidate.size
    found = analyse(candidate.name, data, complete=complete)
    return {
        "path": candidate.path,
        "relpath": candidate.relpath,
        "name": candidate.name,
        "extension": os.path.splitext(candidate.name)[1].lower()[:16],
        "language": found.language,
        "shebang": found.shebang,
        "size": candidate.size,
        "line_count": found.line_count,
        # A file longer than the read cap has no whole-file hash.
        "sha256": found.sha256 if complete else "",
        "mtime": candidate.mtime_ns / 1e9,
        "mtime_ns": candidate.mtime_ns,
        "description": found.description,
        "parameters": found.parameters,
        "is_binary": found.is_binary,
        "read_error": "",
        "parse_error": found.parse_error,
        "last_scanned_at": now,
        "missing_since": None,
    }


class _Inserter:
    """Inserts new script rows with one ``executemany`` per batch.

    ``bulk_create`` spends most of a cold scan compiling SQL and preparing values
    field by field (about 0.3 ms per row); new rows here all have the same shape, so the
    statement is built once and each value is adapted by its field's kind. Curated
    fields get their model defaults.
    """

    def __init__(self, root: FolderRoot, now: Any):
        conn = connection
        self.fields = [f for f in Script._meta.concrete_fields if not f.primary_key]
        quote = conn.ops.quote_name
        columns = ", ".join(quote(f.column) for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        self.sql = f"INSERT INTO {quote(Script._meta.db_table)} ({columns}) VALUES ({marks})"
        self.defaults: dict[str, Any] = {
            f.attname: f.get_default() for f in self.fields if f.attname not in UPDATE_FIELDS
        }
        self.defaults.update(root_id=root.pk, first_seen=now, updated_at=now)

        def as_is(value: Any) -> Any:
            return value

        def as_datetime(value: Any) -> Any:
            return None if value is None else conn.ops.adapt_datetimefield_value(value)

        def as_json(value: Any) -> Any:
            return conn.ops.adapt_json_value(value, None)

        self.adapters: list[Callable[[Any], Any]] = [
            as_datetime
            if isinstance(f, models.DateTimeField)
            else as_json
            if isinstance(f, models.JSONField)
            else as_is
            for f in self.fields
        ]
        self.names = [f.attname for f in self.fields]

    def insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        values = [
            tuple(adapt(row[name]) for adapt, name in zip(self.adapters, self.names, strict=True))
            for row in ({**self.defaults, **r} for r in rows)
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(self.sql, values)


def _process(root: FolderRoot, candidates: list[Candidate], progress: Progress, now: Any) -> set[str]:
    """Add new files, re-read changed ones. Returns the paths found."""
    known: dict[str, tuple[int, int, int, Any]] = {
        path: (pk, size, mtime_ns, missing)
        for pk, path, size, mtime_ns, missing in root.scripts.values_list(
            "pk", "path", "size", "mtime_ns", "missing_since"
        )
    }
    inserter = _Inserter(root, now)
    to_create: list[dict[str, Any]] = []
    to_update: list[Script] = []
    back: list[int] = []  # unchanged files that had been marked missing

    def write() -> None:
        inserter.insert(to_create)
        to_create.clear()
        if to_update:
            Script.objects.bulk_update(to_update, UPDATE_FIELDS, batch_size=BATCH)
            to_update.clear()

    for candidate in candidates:
        row = known.get(candidate.path)
        if row is not None and row[1] == candidate.size and row[2] == candidate.mtime_ns:
            progress.add("unchanged")
            if row[3] is not None:
                back.append(row[0])
        else:
            data, problem = _read(candidate)
            if data is None:
                progress.error(candidate.path, problem)
                if row is not None:
                    # A known file we cannot read now: keep what we knew, say why.
                    Script.objects.filter(pk=row[0]).update(read_error=problem[:500])
            elif row is None:
                to_create.append(_scanned_fields(candidate, data, now))
                progress.add("added")
            else:
                to_update.append(Script(pk=row[0], root=root, **_scanned_fields(candidate, data, now)))
                progress.add("updated")
            if len(to_create) + len(to_update) >= BATCH:
                write()
        progress.add("processed")
        progress.flush()
    write()
    if back:
        for start in range(0, len(back), BATCH):
            Script.objects.filter(pk__in=back[start : start + BATCH]).update(missing_since=None)
    return {c.path for c in candidates}


def _sweep(root: FolderRoot, found: set[str], unreadable: list[str], progress: Progress, now: Any) -> None:
    """Mark vanished files missing; delete those missing past the grace period."""
    hidden = tuple(folder.rstrip(os.sep) + os.sep for folder in unreadable)
    gone = [
        pk
        for pk, path in root.scripts.filter(missing_since__isnull=True).values_list("pk", "path")
        if path not in found and not (hidden and path.startswith(hidden))
    ]
    for start in range(0, len(gone), BATCH):
        Script.objects.filter(pk__in=gone[start : start + BATCH]).update(missing_since=now)
    progress.add("missing", len(gone))
    limit = now - timedelta(seconds=settings.LIBRARY_MISSING_GRACE)
    # Files found by this scan had missing_since cleared in _process.
    expired = root.scripts.filter(missing_since__lt=limit)
    expired_ids = list(expired.values_list("pk", flat=True))
    for start in range(0, len(expired_ids), BATCH):
        Script.objects.filter(pk__in=expired_ids[start : start + BATCH]).delete()
    progress.add("removed", len(expired_ids))


def _refresh_planner_stats(progress: Progress) -> None:
    """Give SQLite's query planner fresh statistics of the scripts table after a scan
    that added or removed rows.

    Without them SQLite guesses that an equality filter is selective: it then reads a
    ``status=active`` list (every row) through the status index and sorts all of them
    (~0.4 s at 50,000 scripts) instead of walking the ordering's index (~1 ms).
    ``analysis_limit`` keeps ANALYZE to a sample (milliseconds). PostgreSQL's
    autovacuum keeps its own statistics.
    """
    changed = sum(progress.counters.get(k, 0) for k in ("added", "missing", "removed"))
    if connection.vendor != "sqlite" or not changed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA analysis_limit=1000")
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Script._meta.db_table)}")
    except DatabaseError:  # statistics are an optimisation: never fail a scan for them
        logger.warning("ANALYZE of the scripts table failed", exc_info=True)


def scan_execute(*, scan_id: str, clock: Callable[[], Any] = timezone.now) -> str | None:
    """Claim and run scan ``scan_id`` (compare-and-set from queued). Returns its final state."""
    if not transaction.get_connection().in_atomic_block:
        close_old_connections()
    started = clock()
    if not Scan.objects.filter(pk=scan_id, state=ScanState.QUEUED).update(
        state=ScanState.RUNNING, started_at=started, updated_at=started, phase="walking"
    ):
        return None
    notify(RUNS_CHANNEL)
    scan = Scan.objects.select_related("root").get(pk=scan_id)
    root = scan.root
    progress = Progress(scan_id=scan_id, phase="walking")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        real_root = Path(os.path.realpath(root.path))
        if not real_root.is_dir():
            raise FileNotFoundError(f"The folder {root.path} does not exist any more.")
        if not any(within(real_root, allowed) for allowed in allowed_roots()):
            raise PermissionError(f"{root.path} is no longer inside the allowed roots.")
        candidates, unreadable = _walk(root, real_root, progress)
        timings["walk"] = round(time.monotonic() - t0, 3)
        progress.counters["seen"] = len(candidates)
        progress.files_total = len(candidates)
        progress.phase = "reading"
        progress.flush(force=True)
        t1 = time.monotonic()
        now = clock()
        found = _process(root, candidates, progress, now)
        timings["read"] = round(time.monotonic() - t1, 3)
        progress.phase = "sweeping"
        t2 = time.monotonic()
        _sweep(root, found, unreadable, progress, now)
        _refresh_planner_stats(progress)
        timings["sweep"] = round(time.monotonic() - t2, 3)
    except Exception as exc:
        logger.exception("Scan %s of %s failed", scan_id, root.path)
        timings["total"] = round(time.monotonic() - t0, 3)
        progress.phase = "failed"
        progress.flush(
            force=True,
            state=ScanState.FAILED,
            finished_at=clock(),
            timings=timings,
            message=str(exc)[:1000] or exc.__class__.__name__,
        )
        return ScanState.FAILED
    timings["total"] = round(time.monotonic() - t0, 3)
    progress.phase = "done"
    progress.flush(force=True, state=ScanState.COMPLETED, finished_at=clock(), timings=timings)
    return ScanState.COMPLETED
