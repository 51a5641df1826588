"""After a scan that changed the scripts table, SQLite gets fresh planner statistics
(without them a filtered, ordered list sorts every row instead of walking an index)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.library.helpers import scan_now, scanned_root, write

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query planner statistics"),
]


def analyzed(ctx: CaptureQueriesContext) -> bool:
    return any(q["sql"].startswith("ANALYZE") for q in ctx.captured_queries)


def test_a_scan_that_adds_scripts_refreshes_the_statistics(roots: Path) -> None:
    for i in range(3):
        write(roots / "team" / f"s{i}.py", f"print({i})\n")
    with CaptureQueriesContext(connection) as ctx:
        scanned_root(roots / "team")
    assert analyzed(ctx)
    with connection.cursor() as cursor:
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'library_script'")
        rows = cursor.fetchall()
    assert rows and any(stat.startswith("3") for (stat,) in rows)


def test_an_unchanged_rescan_does_not(roots: Path) -> None:
    write(roots / "team" / "a.py", "print(1)\n")
    root = scanned_root(roots / "team")
    with CaptureQueriesContext(connection) as ctx:
        scan_now(root)
    assert not analyzed(ctx)
