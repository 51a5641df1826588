"""django-q2 entry points: adapters that take ids and call services."""

from __future__ import annotations

from library.services import scan_execute


def scan_root(scan_id: str) -> str | None:
    return scan_execute(scan_id=scan_id)
