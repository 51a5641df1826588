"""The store's files as blocks in the database (``runs.OutputBlock``), for hosts that
share nothing but the database and Redis.

Writing: :class:`Mirror` (one per :class:`~runs.logstore.LogWriter`) hands every
append to the process's one :class:`Shipper` — an in-memory append in the caller's
thread, never a database round trip. The shipper thread coalesces consecutive appends
of a file into one block and writes each batch (what arrived in ~20 ms, or 1 MiB) in
one transaction — ``COPY`` on PostgreSQL — then wakes the run's live viewers. A batch is
atomic and batches commit in order, so the database shows a prefix of what the writer
wrote: data before its index row, a segment finished before the next one exists, the
same invariants readers rely on locally. Memory is bounded: past ``MAX_PENDING`` bytes
not yet shipped, appends block (backpressure) until the database catches up.

Reading: :class:`DatabaseFiles` answers the store's three questions (names, read,
size) with one indexed query each.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.02  # ship what arrived within this window...
BATCH_BYTES = 1 << 20  # ...or as soon as this much is waiting
BLOCK_BYTES = 1 << 20  # coalesce consecutive appends of a file up to this size per row
MAX_PENDING = 16 << 20  # appends block while this much is not shipped yet
FLUSH_TIMEOUT = 120.0  # how long close() waits for a database that does not answer
IDLE_CLOSE = 1.0  # drop the shipper's connection when idle this long


def _table() -> str:
    from runs.models import OutputBlock

    return OutputBlock._meta.db_table


# -- reading -----------------------------------------------------------------------------


class DatabaseFiles:
    """One run's files, read from the blocks shipped so far."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        # The blocks last fetched for a bounded read: (file, position, bytes). Blocks
        # never change once written, and readers read records in order, so the next
        # record is usually in them (a block holds up to 1 MiB of small records).
        self._cache: tuple[str, int, bytes] | None = None

    def names(self) -> list[str]:
        from django.db import connection

        t = _table()
        # A skip scan over the (run_id, name, pos) index: one probe per file, where
        # DISTINCT would read every block of the run.
        sql = (
            f"WITH RECURSIVE n(name) AS ("
            f" SELECT MIN(name) FROM {t} WHERE run_id = %s"
            f" UNION ALL"
            f" SELECT (SELECT MIN(b.name) FROM {t} b WHERE b.run_id = %s AND b.name > n.name)"
            f" FROM n WHERE n.name IS NOT NULL"
            f") SELECT name FROM n WHERE name IS NOT NULL"
        )
        with connection.cursor() as cur:
            cur.execute(sql, [self.run_id, self.run_id])
            return [row[0] for row in cur.fetchall()]

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        from django.db import connection

        if length is not None and self._cache is not None:
            cached, start, data = self._cache
            if cached == name and start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        t = _table()
        # Blocks from the one holding ``offset`` (the last starting at or before it)
        # up to the end of the range. When the file exists that block is always
        # returned, so no rows means no file.
        sql = (
            f"SELECT pos, data FROM {t} WHERE run_id = %s AND name = %s AND pos >= COALESCE("
            f"(SELECT MAX(pos) FROM {t} WHERE run_id = %s AND name = %s AND pos <= %s), 0)"
        )
        params: list[str | int] = [self.run_id, name, self.run_id, name, offset]
        if length is not None:
            sql += " AND pos < %s"
            params.append(offset + max(length, 1))
        sql += " ORDER BY pos"
        with connection.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        if not rows:
            raise FileNotFoundError(name)
        first = int(rows[0][0])
        data = b"".join(bytes(row[1]) for row in rows)
        start = max(0, offset - first)
        if length is None:
            return data[start:]
        self._cache = (name, first, data)
        return data[start : start + length]

    def size(self, name: str) -> int | None:
        from django.db import connection

        t = _table()
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT pos + LENGTH(data) FROM {t} WHERE run_id = %s AND name = %s"
                " ORDER BY pos DESC LIMIT 1",
                [self.run_id, name],
            )
            row = cur.fetchone()
        return None if row is None else int(row[0])


def remove_blocks(run_id: str) -> None:
    """Delete every block of a run (its output is being removed)."""
    from runs.models import OutputBlock

    OutputBlock.objects.filter(run_id=run_id).delete()


# -- writing -----------------------------------------------------------------------------


@dataclass
class _Batch:
    # (run, file) -> blocks (start position, bytes) in order
    appends: dict[tuple[str, str], list[tuple[int, bytearray]]] = field(default_factory=dict)
    deletes: list[tuple[str, list[str]]] = field(default_factory=list)
    nbytes: int = 0
    seq: int = 0  # the last append/delete it holds
    since: float = 0.0  # monotonic time of its first operation

    def empty(self) -> bool:
        return not self.appends and not self.deletes


class Shipper:
    """Ships appends to the database from one background thread per process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._inflight = 0  # bytes of the batch being written now
        self._seq = 0  # last operation queued
        self._shipped = 0  # last operation committed
        self._urgent = False
        self._thread = threading.Thread(target=self._loop, name="logstore-shipper", daemon=True)
        self._thread.start()

    # -- called by writers (any thread) --
    def append(self, run_id: str, name: str, pos: int, data: bytes | memoryview) -> int:
        size = len(data)
        with self._cond:
            # Backpressure: the caller waits for the database rather than memory growing.
            while self._batch.nbytes and self._batch.nbytes + self._inflight + size > MAX_PENDING:
                self._urgent = True
                self._cond.notify_all()
                self._cond.wait(1.0)
            batch = self._batch
            if batch.empty():
                batch.since = time.monotonic()
            blocks = batch.appends.setdefault((run_id, name), [])
            if blocks and blocks[-1][0] + len(blocks[-1][1]) == pos and len(blocks[-1][1]) < BLOCK_BYTES:
                blocks[-1][1].extend(data)
            else:
                blocks.append((pos, bytearray(data)))  # a copy: the caller reuses its buffer
            was = batch.nbytes
            batch.nbytes += size
            self._seq += 1
            batch.seq = self._seq
            if was == 0 or (was < BATCH_BYTES <= batch.nbytes):
                self._cond.notify_all()
            return self._seq

    def delete(self, run_id: str, names: list[str]) -> int:
        """Delete files (segments the cap dropped). Never appended to again."""
        with self._cond:
            batch = self._batch
            if batch.empty():
                batch.since = time.monotonic()
            for name in names:
                for _pos, data in batch.appends.pop((run_id, name), []):
                    batch.nbytes -= len(data)
            batch.deletes.append((run_id, names))
            self._seq += 1
            batch.seq = self._seq
            self._cond.notify_all()
            return self._seq

    def flush(self, seq: int, *, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until operation ``seq`` is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._shipped < seq:
                self._urgent = True
                self._cond.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    # -- the shipper thread --
    def _loop(self) -> None:
        from django.db import connection

        while True:
            with self._cond:
                if self._batch.empty():
                    self._cond.wait(IDLE_CLOSE)
                idle = self._batch.empty()
                if not idle:
                    while (
                        not self._urgent
                        and self._batch.nbytes < BATCH_BYTES
                        and (left := self._batch.since + BATCH_SECONDS - time.monotonic()) > 0
                    ):
                        self._cond.wait(left)
                    batch, self._batch = self._batch, _Batch()
                    self._inflight = batch.nbytes
                    self._urgent = False
            if idle:
                # Idle: give the connection back (a test database can then be dropped,
                # a pooler reuses it).
                connection.close()
                continue
            self._ship(batch)
            with self._cond:
                self._shipped = batch.seq
                self._inflight = 0
                self._cond.notify_all()
            self._wake({run for run, _ in batch.appends} | {run for run, _ in batch.deletes})

    def _ship(self, batch: _Batch) -> None:
        from django.db import connection

        delay = 0.1
        while True:
            try:
                _write_batch(batch)
                return
            except Exception:  # noqa: BLE001 - keep the output; retry until the database is back
                logger.warning("output shipping failed; retrying in %.1f s", delay, exc_info=True)
                connection.close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    def _wake(runs: set[str]) -> None:
        from runs import events

        for run_id in runs:
            events.notify(events.run_channel(run_id), "o")


def _write_batch(batch: _Batch) -> None:
    from django.db import connection, transaction

    t = _table()
    rows = [
        (run, name, pos, bytes(data)) for (run, name), blocks in batch.appends.items() for pos, data in blocks
    ]
    with transaction.atomic(), connection.cursor() as cur:
        for run_id, names in batch.deletes:
            marks = ", ".join(["%s"] * len(names))
            cur.execute(f"DELETE FROM {t} WHERE run_id = %s AND name IN ({marks})", [run_id, *names])
        if not rows:
            return
        if connection.vendor == "postgresql":
            raw = connection.connection
            assert raw is not None
            with (
                raw.cursor() as pg,
                pg.copy(f"COPY {t} (run_id, name, pos, data) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["varchar", "varchar", "int8", "bytea"])
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(f"INSERT INTO {t} (run_id, name, pos, data) VALUES (%s, %s, %s, %s)", rows)


_shipper: tuple[int, Shipper] | None = None
_shipper_lock = threading.Lock()


def shipper() -> Shipper:
    """This process's shipper (a forked child starts its own)."""
    global _shipper
    with _shipper_lock:
        if _shipper is None or _shipper[0] != os.getpid():
            _shipper = (os.getpid(), Shipper())
        return _shipper[1]


class Mirror:
    """A writer's handle on the shipper: appends and deletes of one run's files."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._shipper = shipper()
        self._seq = 0

    def append(self, name: str, pos: int, data: bytes | memoryview) -> None:
        self._seq = self._shipper.append(self.run_id, name, pos, data)

    def delete(self, names: list[str]) -> None:
        self._seq = self._shipper.delete(self.run_id, names)

    def flush(self) -> None:
        if self._seq and not self._shipper.flush(self._seq):
            logger.error("output of run %s not shipped to the database in time", self.run_id)
