"""What the library shows on the runs feed (``/ws/runs/``): scans' ``scan_progress``.

Registered with :func:`runs.live.feed_source_register` in ``LibraryConfig.ready()``:
runs sits below the library and never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from library.selectors import scan_feed_rows
from runs.events import ScanProgressData, ScanProgressMessage, scan_progress_message


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def scan_progress_data(row: Mapping[str, Any]) -> ScanProgressData:
    """A row of :func:`library.selectors.scan_feed_rows` as ``scan_progress`` data."""
    return {
        "id": str(row["id"]),
        "root_id": row["root_id"],
        "state": row["state"],
        "phase": row["phase"],
        "files_total": row["files_total"],
        "files_processed": row["files_processed"],
        "files_seen": row["files_seen"],
        "files_added": row["files_added"],
        "files_updated": row["files_updated"],
        "files_unchanged": row["files_unchanged"],
        "files_missing": row["files_missing"],
        "files_removed": row["files_removed"],
        "files_skipped": row["files_skipped"],
        "error_count": row["error_count"],
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "message": row["message"],
        "progress": row["progress"],
        "duration": row["duration"],
    }


def scan_progress_feed() -> list[tuple[str, ScanProgressMessage]]:
    """Active scans and those that just ended, keyed by scan id (a feed source)."""
    return [(str(row["id"]), scan_progress_message(scan_progress_data(row))) for row in scan_feed_rows()]
