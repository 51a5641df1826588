"""Run-engine settings read from Django settings in one place."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def allowed_roots() -> list[Path]:
    """The configured roots plus the uploads root (uploaded scripts run from there)."""
    roots = [Path(r) for r in settings.ALLOWED_ROOTS]
    uploads = Path(settings.UPLOADS_ROOT)
    if uploads not in roots:
        roots.append(uploads)
    return roots
