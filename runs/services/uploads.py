"""Uploaded scripts (``POST /api/run/upload``): stored under ``SCRIPTOPS_UPLOADS_ROOT``.

Each upload gets a folder of its own, so two uploads of ``job.py`` never meet; a refused
or dry-run request removes its folder again (nothing is left that no run refers to).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_UPLOAD_NAME = 100


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
    """Write an uploaded script to a new folder of its own; returns its path."""
    folder = Path(settings.UPLOADS_ROOT) / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_upload_name(name)
    try:
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
    except BaseException:
        upload_discard(target)
        raise
    return target


def upload_discard(path: Path) -> None:
    """Remove a stored upload and its folder (a refused request, a dry run)."""
    shutil.rmtree(path.parent, ignore_errors=True)
