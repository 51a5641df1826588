"""Django's SQLite backend, with writers that queue instead of sleeping.

SQLite has one writer. A connection that finds the write lock taken retries in its
busy handler after sleeps that grow to 25-100 ms, so under a steady stream of short
write transactions (a burst of launches through the web process) a waiter keeps
waking up after the lock was taken again: the runner's claim of a run waited 100-330 ms
while launches went through one after another. Here every write transaction (Django's
``BEGIN IMMEDIATE``) first takes an advisory ``flock`` on ``<database>-writer``, polled
every 0.1-1 ms, and releases it when the transaction ends: a waiter gets the lock
within a millisecond of its release. The flock only orders writers; SQLite's own lock
still guarantees correctness, so a connection that cannot get the flock within the
busy timeout goes on without it and SQLite decides (as before). In-memory databases
(tests) have no file and skip it. A process that dies holding the flock loses it with
its file descriptors.

Its cursors also keep what Django's SQLite cursor computes on every ``execute``: the
statement with ``%s`` turned into ``?`` (a regular expression over the whole text). The
runner and daphne execute the same few statements again and again (kept ones, see
``core.precompiled``); the conversion was ~5 % of the runner's CPU in a burst of launches.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from typing import Any

from django.db.backends.sqlite3 import base

FIRST_WAIT = 0.0001
LONGEST_WAIT = 0.001

# Statements converted to SQLite's placeholders, by their text (shared by the process's
# threads: a dict's get and set are atomic). Up to QMARK_KEPT statements of up to
# QMARK_LONGEST characters; when full it starts again (the ORM's statements with IN lists
# of every length would otherwise grow it without bound).
_QMARK: dict[str, str] = {}
QMARK_KEPT = 512
QMARK_LONGEST = 8192


class CursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Sequence[str] | None = None) -> str:
        if param_names is not None or len(query) > QMARK_LONGEST:
            converted: str = super().convert_query(query, param_names=param_names)  # type: ignore[misc]  # not in django-stubs
            return converted
        found = _QMARK.get(query)
        if found is None:
            found = super().convert_query(query)  # type: ignore[misc]  # not in django-stubs
            if len(_QMARK) >= QMARK_KEPT:
                _QMARK.clear()
            _QMARK[query] = found
        return found


class DatabaseWrapper(base.DatabaseWrapper):
    _writer_fd: int | None = None
    _writer_held = False

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def _writer_path(self) -> str | None:
        if self.is_in_memory_db():
            return None
        return f"{self.settings_dict['NAME']}-writer"

    def _writer_acquire(self) -> None:
        if self._writer_fd is None:
            path = self._writer_path()
            if path is None:
                return
            self._writer_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + timeout
        wait = FIRST_WAIT
        while True:
            try:
                fcntl.flock(self._writer_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # SQLite's own busy timeout decides
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
                continue
            self._writer_held = True
            return

    def _writer_release(self) -> None:
        if self._writer_held and self._writer_fd is not None:
            self._writer_held = False
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)

    def _start_transaction_under_autocommit(self) -> None:
        self._writer_acquire()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # Django's hook; not in django-stubs
        except BaseException:
            self._writer_release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]  # Django's hook; not in django-stubs
        finally:
            self._writer_release()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # Django's hook; not in django-stubs
        finally:
            self._writer_release()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]  # Django's hook; not in django-stubs
        finally:
            self._writer_release()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None
