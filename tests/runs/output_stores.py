"""Run a store test on both implementations: ``local`` files and the ``database`` mirror.

In the database variant (run in the PostgreSQL pass, skipped on SQLite) the test's
readers read nothing but the database (as on a host without the run's directory), and
every append is
shipped before ``write`` returns, so a test can read right after writing exactly as it
does locally. (Asynchronous shipping, the live path, is tested in test_output_db.py.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from runs.logstore import database, store


def ship_synchronously(monkeypatch: pytest.MonkeyPatch) -> None:
    append, delete = database.Mirror.append, database.Mirror.delete

    def append_now(self: database.Mirror, name: str, pos: int, data: bytes | memoryview) -> None:
        append(self, name, pos, data)
        self.flush()

    def delete_now(self: database.Mirror, names: list[str]) -> None:
        delete(self, names)
        self.flush()

    monkeypatch.setattr(database.Mirror, "append", append_now)
    monkeypatch.setattr(database.Mirror, "delete", delete_now)


@pytest.fixture(
    params=["local", pytest.param("database", marks=pytest.mark.django_db(transaction=True))],
    autouse=True,
)
def output_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "database":
        from django.db import connection

        if connection.vendor != "postgresql":
            # SQLite has one writer, and its in-memory test database locks between
            # threads: the database store is for PostgreSQL (test_output_db.py runs
            # the cross-host tests against the loopback PostgreSQL in every pass).
            pytest.skip("the database output store is tested on PostgreSQL (DATABASE_URL=postgres://...)")
        ship_synchronously(monkeypatch)
        # Read the database even here, on the writer's host (which reads its local files).
        monkeypatch.setattr(store, "open_files", lambda directory: database.DatabaseFiles(directory.name))
    monkeypatch.setattr(django_settings, "OUTPUT_STORE", request.param)
    yield request.param
