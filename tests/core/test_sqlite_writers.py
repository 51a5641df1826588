"""The SQLite backend's writer queue (``core.db.sqlite3``): every write transaction holds
an advisory lock on ``<database>-writer`` from its BEGIN to its end, waiters take it as
soon as it is released, and SQLite's own lock still decides if the queue is stuck."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import DatabaseError, connections, transaction

from core.db.sqlite3 import base as sqlite_base
from core.db.sqlite3.base import DatabaseWrapper


def _settings(path: Path, *, timeout: float = 5) -> dict[str, object]:
    return {
        "ENGINE": "core.db.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": timeout,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;",
        },
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "TEST": {},
    }


class Db:
    """A database file and connections to it under alias ``writers`` (one per thread)."""

    def __init__(self, path: Path, *, timeout: float = 5):
        self.path = path
        self.timeout = timeout

    def connect(self) -> DatabaseWrapper:
        conn = DatabaseWrapper(_settings(self.path, timeout=self.timeout), alias="writers")
        connections["writers"] = conn  # this thread's
        return conn

    def held_elsewhere(self) -> bool:
        """Is the writer lock taken (asked through a file description of our own)?"""
        fd = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


@pytest.fixture(autouse=True)
def _own_databases(django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    """These tests open databases of their own, not the test database."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield


@pytest.fixture
def db_file(tmp_path: Path) -> Iterator[Db]:
    db = Db(tmp_path / "w.sqlite3")
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    yield db
    conn.close()
    del connections["writers"]


def test_a_write_transaction_holds_the_writer_lock_until_it_commits(db_file: Db) -> None:
    assert not db_file.held_elsewhere()
    with transaction.atomic(using="writers"):
        connections["writers"].cursor().execute("INSERT INTO t (who) VALUES ('a')")
        assert db_file.held_elsewhere()
    assert not db_file.held_elsewhere()
    assert connections["writers"].cursor().execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_a_rolled_back_transaction_releases_it(db_file: Db) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic(using="writers"):
        connections["writers"].cursor().execute("INSERT INTO t (who) VALUES ('a')")
        1 / 0  # noqa: B018
    assert not db_file.held_elsewhere()
    assert connections["writers"].cursor().execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_closing_a_connection_in_a_transaction_releases_it(db_file: Db) -> None:
    conn = connections["writers"]
    transaction.atomic(using="writers").__enter__()  # a transaction never ended
    conn.cursor().execute("INSERT INTO t (who) VALUES ('a')")
    assert db_file.held_elsewhere()
    conn.close()
    assert not db_file.held_elsewhere()


def test_a_second_writer_waits_for_the_first_then_goes_on(db_file: Db) -> None:
    first_in = threading.Event()
    release = threading.Event()
    order: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        conn = db_file.connect()
        try:
            with transaction.atomic(using="writers"):
                conn.cursor().execute("INSERT INTO t (who) VALUES ('first')")
                first_in.set()
                release.wait(10)
                order.append("first commits")
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    def second() -> None:
        conn = db_file.connect()
        try:
            first_in.wait(10)
            with transaction.atomic(using="writers"):
                order.append("second begins")
                conn.cursor().execute("INSERT INTO t (who) VALUES ('second')")
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait(10)
    time.sleep(0.2)  # the second is waiting now, not inside its transaction
    assert order == []
    release.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert order == ["first commits", "second begins"]
    rows = connections["writers"].cursor().execute("SELECT who FROM t ORDER BY id").fetchall()
    assert rows == [("first",), ("second",)]


def test_a_stuck_queue_leaves_the_decision_to_sqlite(tmp_path: Path) -> None:
    """Someone holds the writer lock and never lets go (not a transaction: SQLite's own
    lock is free): after the busy timeout the write goes on without it."""
    db = Db(tmp_path / "stuck.sqlite3", timeout=0.3)
    conn = db.connect()
    try:
        conn.cursor().execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
        fd = os.open(f"{db.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            started = time.monotonic()
            with transaction.atomic(using="writers"):
                conn.cursor().execute("INSERT INTO t (who) VALUES ('anyway')")
            assert time.monotonic() - started >= 0.3
        finally:
            os.close(fd)
        assert conn.cursor().execute("SELECT who FROM t").fetchall() == [("anyway",)]
    finally:
        conn.close()
        del connections["writers"]


def test_sqlites_own_lock_still_refuses_a_writer_past_the_timeout(tmp_path: Path) -> None:
    """The lock only orders writers: a connection that skipped it (a plain sqlite3 client
    holding the write lock) still makes ours fail with "database is locked", as before."""
    import sqlite3

    db = Db(tmp_path / "other.sqlite3", timeout=0.3)
    conn = db.connect()
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        conn.cursor().execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseError, match="locked"), transaction.atomic(using="writers"):
            conn.cursor().execute("INSERT INTO t (who) VALUES ('late')")
        assert not db.held_elsewhere()  # released on the failed BEGIN
        other.execute("ROLLBACK")
    finally:
        other.close()
        conn.close()
        del connections["writers"]


def test_an_in_memory_database_has_no_writer_file(tmp_path: Path) -> None:
    conn = DatabaseWrapper(_settings(Path(":memory:")), alias="writers")
    try:
        conn.set_autocommit(False)
        conn.cursor().execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.commit()
        assert conn._writer_fd is None
    finally:
        conn.close()


# -- placeholders converted once per statement text -----------------------------------


def test_a_statement_runs_with_its_placeholders_converted_once_and_reused(
    db_file: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_base, "_QMARK", {})
    conn = connections["writers"]
    insert = "INSERT INTO t (id, who) VALUES (%s, %s)"
    with conn.cursor() as cur:
        for i in range(3):
            cur.execute(insert, [i, f"100%% w{i}"])
        # A literal percent sign ("%%") and pyformat's named parameters, as Django converts them.
        cur.execute("SELECT who FROM t WHERE who LIKE '100%%' AND id >= %s ORDER BY id", [1])
        assert [row[0] for row in cur.fetchall()] == ["100%% w1", "100%% w2"]
        cur.execute("SELECT count(*) FROM t WHERE id < %(most)s", {"most": 2})
        assert cur.fetchone() == (2,)
    kept = sqlite_base._QMARK
    assert kept == {
        insert: "INSERT INTO t (id, who) VALUES (?, ?)",
        "SELECT who FROM t WHERE who LIKE '100%%' AND id >= %s ORDER BY id": (
            "SELECT who FROM t WHERE who LIKE '100%' AND id >= ? ORDER BY id"
        ),
    }


def test_the_kept_conversions_are_bounded(db_file: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_base, "_QMARK", {})
    monkeypatch.setattr(sqlite_base, "QMARK_KEPT", 4)
    conn = connections["writers"]
    with conn.cursor() as cur:
        for n in range(1, 7):  # IN lists of six lengths: six statements
            cur.execute(f"SELECT count(*) FROM t WHERE id IN ({', '.join(['%s'] * n)})", list(range(n)))
            assert cur.fetchone() == (0,)
        long_statement = "SELECT count(*) FROM t WHERE id = %s" + " " * sqlite_base.QMARK_LONGEST
        cur.execute(long_statement, [1])
        assert cur.fetchone() == (0,)
    assert 1 <= len(sqlite_base._QMARK) <= 4
    assert long_statement not in sqlite_base._QMARK
