"""django-q2 entry points: adapters that call services."""

from __future__ import annotations

from audit.services import audit_prune


def prune() -> int:
    """The daily retention cleanup, scheduled by a django-q2 ``Schedule`` (migration 0002)."""
    return audit_prune()
