"""Uploaded scripts (``POST /api/run/upload``): stored under ``SCRIPTOPS_UPLOADS_ROOT``.

Each upload gets a folder of its own, so two uploads of ``job.py`` never meet; a refused
or dry-run request removes its folder again (nothing is left that no run refers to).

Hosts that share no disk (``SCRIPTOPS_OUTPUT_STORE=database``): the upload lands in the
data dir of the web host that received it, so its bytes also go to the database
(:class:`~runs.models.UploadedScript`), and the worker host that takes the run writes its
own copy under its own uploads root before checking the plan (:func:`upload_materialise`).
In the single-host mode (``local``) nothing goes to the database.

Lifetime: an upload is *referenced* while a run's ``script_path`` names it, or a check
that a higher app registered (:func:`upload_referrer_register`: the scheduler's tasks)
says it is still used. Deleting runs removes the database copies no longer referenced
(:func:`uploads_forget`); the runner's housekeeping removes, on its own host, the upload
folders and the database copies unreferenced and untouched for ten minutes
(:func:`uploads_sweep`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from runs.conf import allowed_roots
from runs.logstore.files import DATABASE, output_store
from runs.models import Run, UploadedScript
from runs.plan import PlanError, within_roots

logger = logging.getLogger(__name__)

SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_UPLOAD_NAME = 100
# An upload is swept only once this old (its folder untouched, its row created): never
# one whose run is being created (stored first, the run row follows), as for run dirs.
UPLOAD_SWEEP_MIN_AGE = 600.0
# Paths per ``IN (...)`` query: well under every database's parameter limit.
_CHUNK = 500

# "Which of these script paths do you still refer to?": a check per higher app (the
# scheduler's tasks), registered in its AppConfig.ready(): runs never imports upward.
UploadReferrer = Callable[[list[str]], Iterable[str]]
_referrers: dict[str, UploadReferrer] = {}


def upload_referrer_register(*, name: str, referenced: UploadReferrer) -> None:
    """Register ``referenced``: given script paths, it returns those its app still refers
    to (an upload named by one is kept). Registering a ``name`` again replaces its check
    (``ready()`` may run more than once in tests)."""
    _referrers[name] = referenced


def uploads_referenced(*, paths: Collection[str]) -> set[str]:
    """Those of ``paths`` that a run or a registered referrer still refers to. Any run
    counts, finished or not: a queued or running run always keeps its script."""
    wanted = sorted(set(paths))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(Run.objects.filter(script_path__in=chunk).values_list("script_path", flat=True))
        rest = [path for path in chunk if path not in found]
        for check in list(_referrers.values()):
            if not rest:
                break
            found.update(path for path in check(rest) if path in rest)
            rest = [path for path in rest if path not in found]
    return found


def safe_upload_name(raw: str) -> str:
    """A file name of ``[A-Za-z0-9._-]``, no directories, no leading dot, ≤ 100 characters."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = SAFE_NAME_RE.sub("_", base).lstrip("._")
    if len(name) > MAX_UPLOAD_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = MAX_UPLOAD_NAME - len(ext) - 1
        name = stem[:keep] + dot + ext if dot and keep > 0 else name[:MAX_UPLOAD_NAME]
    return name


def upload_store(*, name: str, chunks: Iterable[bytes]) -> Path:
    """Write an uploaded script to a new folder of its own; returns its path.

    With the database store, its bytes also go to the database (uploads are capped by
    ``SCRIPTOPS_MAX_UPLOAD_BYTES``, 1 MiB by default, so holding them in memory is fine)."""
    folder = Path(settings.UPLOADS_ROOT) / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_upload_name(name)
    shared = output_store() == DATABASE
    kept: list[bytes] = []
    try:
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                if shared:
                    kept.append(chunk)
        if shared:
            content = b"".join(kept)
            UploadedScript.objects.create(
                id=uuid.UUID(folder.name),
                name=target.name,
                # The real path: what the run records as its script_path.
                path=os.path.realpath(target),
                content=content,
                sha256=hashlib.sha256(content).hexdigest(),
            )
    except BaseException:
        upload_discard(target)
        raise
    return target


def upload_discard(path: Path) -> None:
    """Remove a stored upload and its folder (a refused request, a dry run), and its
    database copy."""
    shutil.rmtree(path.parent, ignore_errors=True)
    if output_store() == DATABASE:
        with contextlib.suppress(ValueError):
            UploadedScript.objects.filter(pk=uuid.UUID(path.parent.name)).delete()


def uploads_forget(*, script_paths: Iterable[str]) -> int:
    """Delete the database copies of the uploads at ``script_paths`` that nothing refers
    to any more (:func:`uploads_referenced`: no run, no registered referrer such as a
    scheduled task); called when runs are deleted. Returns how many rows went.

    Only paths whose folder is named as an upload id are looked at, so deleting runs of
    deployed scripts costs no query. A failing referrer check keeps every row (the
    sweep tries again later): deleting runs never fails for it."""
    by_id: dict[uuid.UUID, str] = {}
    for raw in script_paths:
        try:
            by_id[uuid.UUID(hex=Path(raw).parent.name)] = raw
        except ValueError:
            continue
    if not by_id:
        return 0
    rows = dict(UploadedScript.objects.filter(pk__in=list(by_id)).values_list("pk", "path"))
    if not rows:
        return 0
    try:
        with transaction.atomic():  # a savepoint: a failed query leaves the caller's transaction usable
            still_used = uploads_referenced(paths=list(rows.values()))
    except Exception:
        logger.exception("Checking whether uploads are still referenced failed: all are kept")
        return 0
    gone = [pk for pk, path in rows.items() if path not in still_used]
    if gone:
        UploadedScript.objects.filter(pk__in=gone).delete()
    return len(gone)


def uploads_sweep(*, min_age: float = UPLOAD_SWEEP_MIN_AGE) -> int:
    """Remove this host's upload folders (``UPLOADS_ROOT/<id>``) and, with the database
    store, the database copies that nothing refers to (:func:`uploads_referenced`) and
    that are older than ``min_age`` seconds. Returns how many uploads went (folders and
    rows, each counted once per upload id).

    Called by the runner's housekeeping next to ``run_dirs_sweep``. A folder counts as
    touched when it or anything in it changed (a worker host's copy written for a run);
    its paths are the local ones and, with the database store, the path its row records
    (the receiving host's, which the runs and tasks name). Only folders named as an upload
    id are looked at, never a symlink."""
    horizon = time.time() - min_age
    root = Path(settings.UPLOADS_ROOT)
    folders: dict[uuid.UUID, Path] = {}
    paths: dict[uuid.UUID, set[str]] = {}  # what a run or a task may name, per upload
    if root.is_dir():
        for entry in root.iterdir():
            try:
                upload_id = uuid.UUID(hex=entry.name)
                if (
                    entry.name == upload_id.hex
                    and entry.is_dir()
                    and not entry.is_symlink()
                    and _last_touched(entry) < horizon
                ):
                    paths[upload_id] = _local_paths(entry)
                    folders[upload_id] = entry
            except (ValueError, OSError):
                continue  # not an upload's folder, or removed meanwhile
    rows: dict[uuid.UUID, str] = {}
    shared = output_store() == DATABASE
    if shared:
        cutoff = timezone.now() - timedelta(seconds=min_age)
        rows.update(UploadedScript.objects.filter(created_at__lt=cutoff).values_list("pk", "path"))
    for upload_id, path in rows.items():
        paths.setdefault(upload_id, set()).add(path)
    if shared:
        # An old folder whose row is younger than the grace period (hosts' clocks differ)
        # is still judged by the path its row records; the row stays until it is old.
        ids = [upload_id for upload_id in folders if upload_id not in rows]
        for start in range(0, len(ids), _CHUNK):
            young = UploadedScript.objects.filter(pk__in=ids[start : start + _CHUNK])
            for pk, path in young.values_list("pk", "path"):
                paths[pk].add(path)
    referenced = uploads_referenced(paths=[path for group in paths.values() for path in group])
    unused = {upload_id for upload_id, group in paths.items() if not group & referenced}
    if not unused:
        return 0
    old_rows = [upload_id for upload_id in unused if upload_id in rows]
    # The delete checks the runs again: a run queued since the check above (its path
    # typed again) keeps its row, so its worker host can still write its copy.
    in_use = Exists(Run.objects.filter(script_path=OuterRef("path")))
    for start in range(0, len(old_rows), _CHUNK):
        UploadedScript.objects.filter(~in_use, pk__in=old_rows[start : start + _CHUNK]).delete()
    for upload_id in unused:
        folder = folders.get(upload_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    logger.info("Removed %d uploads that nothing refers to any more", len(unused))
    return len(unused)


def _last_touched(folder: Path) -> float:
    """The newest modification time of ``folder`` and what it holds (not followed)."""
    newest = folder.lstat().st_mtime
    for entry in folder.iterdir():
        newest = max(newest, entry.lstat().st_mtime)
    return newest


def _local_paths(folder: Path) -> set[str]:
    """The paths a run or a task may name for the upload in ``folder``: each file's path
    under the uploads root as configured and its real path (``upload_store`` records it)."""
    found: set[str] = set()
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue  # a temporary file of upload_materialise
        found.add(str(entry))
        found.add(os.path.realpath(entry))
    return found


def upload_materialise(*, script_path: str) -> str | None:
    """On a host without the uploaded script ``script_path``, write it from its database
    copy under this host's uploads root; returns the local path to run (``None``: nothing
    to do, check ``script_path`` as it is — a missing file is then refused as before).

    Only with the database store, only for a path recorded by ``upload_store`` (the row
    named by the path's folder, stored at exactly that path), only into
    ``UPLOADS_ROOT/<id>/<name>`` with the name re-checked: nothing outside this host's
    uploads root is ever written. A copy whose SHA-256 does not match is refused
    (:class:`PlanError` ``upload_corrupt``).

    The local path is the same as ``script_path`` when the hosts' data dirs have the same
    path; otherwise the run records the receiving host's path and runs this host's copy.
    """
    if output_store() != DATABASE:
        return None  # the single-host mode: nothing to look at
    if os.path.exists(script_path) and within_roots(os.path.realpath(script_path), allowed_roots()):
        return None  # here already (the receiving host, a shared uploads dir, a deployed script)
    given = Path(script_path)
    name = given.name
    try:
        upload_id = uuid.UUID(hex=given.parent.name)
    except ValueError:
        return None
    if given.parent.name != upload_id.hex or safe_upload_name(name) != name or not name:
        return None
    row = UploadedScript.objects.filter(pk=upload_id, name=name, path=script_path).first()
    if row is None:
        return None
    content = bytes(row.content)
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise PlanError(
            "script_path",
            f"The stored copy of the uploaded script {name} does not match its SHA-256 checksum: "
            "refusing to run it.",
            "upload_corrupt",
        )
    root = Path(settings.UPLOADS_ROOT)
    folder = root / upload_id.hex
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlanError(
            "script_path",
            f"This host could not store the uploaded script {name}: {exc}",
            "upload_unavailable",
        ) from exc
    # A folder that is a symlink out of the uploads root is never written into.
    if not within_roots(os.path.realpath(folder), [root]) or os.path.islink(target):
        raise PlanError(
            "script_path", f"{script_path} cannot be stored under the uploads root.", "path_not_allowed"
        )
    if os.path.isfile(target) and _sha256_of(target) == row.sha256:
        return str(target)  # another run of this upload on this host wrote it already
    # A temporary name (never an upload's: those do not start with a dot) renamed into
    # place: a run never sees half a script, two runs writing at once both succeed.
    temp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        # Mode 0o666 less the umask, as upload_store's open(..., "wb") leaves it.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):  # a full disk, a read-only data dir: the run is refused
            raise PlanError(
                "script_path",
                f"This host could not store the uploaded script {name}: {exc}",
                "upload_unavailable",
            ) from exc
        raise
    return str(target)


def _sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
