"""Run output in the database: written on one host, read on another that shares nothing
but PostgreSQL — live, after the run, past the cap, resumed exactly.

The hosts are separate processes with data directories of their own, on a fresh
database of the loopback PostgreSQL (skipped when it is not reachable). The shipper's
backpressure is tested in-process with the database write held back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runs.logstore import database
from tests.stack import BASE_DIR, _drop_postgres_database, _postgres_database

POSTGRES_URL = os.environ.get("DATABASE_URL", "")
if not POSTGRES_URL.startswith(("postgres://", "postgresql://")):
    POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# One host: Django set up on the shared database with a data dir of its own.
HOST = textwrap.dedent(
    """
    import json, sys, time
    import django
    django.setup()
    from pathlib import Path
    from django.conf import settings
    from runs.logstore import LogFollower, LogReader, LogWriter, remove_store
    assert settings.OUTPUT_STORE == "database", settings.OUTPUT_STORE
    run_dir = Path(settings.RUNS_DIR) / sys.argv[2]

    def out(**kw):
        print(json.dumps(kw), flush=True)

    def line(n):
        return f"line {n} " + "x" * (n % 50) + "\\n"

    role = sys.argv[1]
    if role == "write":  # write lines 1..half, wait for "go", write the rest, close
        total, cap, seg = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        w = LogWriter(run_dir, cap_bytes=cap, segment_bytes=seg)
        n = 1
        while n <= total:
            if n == total // 2 + 1:
                out(event="half")
                sys.stdin.readline()
            chunk = "".join(line(i) for i in range(n, min(n + 7, total + 1)))
            w.write("stderr" if n % 3 == 0 else "stdout", chunk.encode(), float(n))
            n += 7
        w.close()
        out(event="closed", dropped_lines=w.dropped_lines, dropped_bytes=w.dropped_bytes)
    elif role == "follow":  # print line numbers as they arrive until ``until``
        f = LogFollower(run_dir, after=int(sys.argv[3]))
        until = int(sys.argv[4])
        while f.after < until:
            lines = f.poll(limit=50)
            for ln in lines:
                assert ln.text == line(ln.number).rstrip("\\n"), ln
            if lines:
                out(numbers=[ln.number for ln in lines], skipped=f.skipped)
            else:
                time.sleep(0.01)
    elif role == "read":
        r = LogReader(run_dir)
        data, nxt = r.read_bytes()
        out(
            data=data.decode(), next=nxt, dropped=list(r.dropped()), last=r.last_line(),
            tail=[ln.number for ln in r.tail_lines(3)], segments=r.segments(),
            files=sorted(r.files.names()), local=run_dir.exists(),
        )
    elif role == "remove":
        remove_store(run_dir)
        out(files=LogReader(run_dir).files.names())
    """
)


def _reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not _reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    url, name = _postgres_database(POSTGRES_URL)
    try:
        env = _env(url, tmp_path_factory.mktemp("migrate"))
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            timeout=300,
        )
        yield url
    finally:
        _drop_postgres_database(url, name)


def _env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRIPTOPS_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=url,
        SCRIPTOPS_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="scriptops.settings",
        PYTHONPATH=str(BASE_DIR),
    )
    return env


class Host:
    """A process on "another host": its own data dir, the shared database."""

    def __init__(self, url: str, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = _env(url, data_dir)

    def start(self, *args: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", HOST, *map(str, args)],
            cwd=BASE_DIR,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def messages(self, *args: object) -> list[dict[str, object]]:
        proc = self.start(*args)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        return [dict(json.loads(row)) for row in out.splitlines()]

    def run(self, *args: object) -> dict[str, object]:
        return self.messages(*args)[-1]

    def follow(self, run_id: str, after: int, until: int) -> tuple[list[int], int]:
        """Lines a follower from ``after`` gets, and how many it was told it missed."""
        msgs = self.messages("follow", run_id, after, until)
        numbers = [n for msg in msgs for n in _numbers(msg)]
        return numbers, int(msgs[-1]["skipped"])  # type: ignore[call-overload]


def _message(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    raw = proc.stdout.readline()
    assert raw, f"process ended (code {proc.wait(timeout=30)})"
    return dict(json.loads(raw))


def _numbers(msg: dict[str, object]) -> list[int]:
    numbers = msg["numbers"]
    assert isinstance(numbers, list)
    return [int(n) for n in numbers]


def _line(n: int) -> str:
    return f"line {n} " + "x" * (n % 50) + "\n"


def test_another_host_follows_live_then_reads_after_the_run(pg_url: str, tmp_path: Path) -> None:
    run_id, total = str(uuid.uuid4()), 700  # pauses at 351 = 1 + 7 * 50
    worker, web, web2 = (Host(pg_url, tmp_path / name) for name in ("worker", "web", "web2"))
    writer = worker.start("write", run_id, total, 1 << 30, 4096)
    follower = web.start("follow", run_id, 0, total)
    try:
        assert _message(writer) == {"event": "half"}
        # Live: the writer is paused (open, not closed) and the other host sees its lines.
        seen: list[int] = []
        while len(seen) < total // 2 - 7:
            seen += _numbers(_message(follower))
        assert writer.poll() is None
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        closed = _message(writer)
        assert closed["event"] == "closed" and closed["dropped_lines"] == 0
        while len(seen) < total:
            msg = _message(follower)
            assert msg["skipped"] == 0
            seen += _numbers(msg)
        assert seen == list(range(1, total + 1))  # none lost, none repeated, in order
        assert follower.wait(timeout=60) == 0 and writer.wait(timeout=60) == 0
    finally:
        for proc in (writer, follower):
            proc.kill()
            proc.wait()

    # After the run, a third host with nothing on its disk reads it all.
    got = web2.run("read", run_id)
    expected = "".join(_line(n) for n in range(1, total + 1))
    assert got["data"] == expected and got["next"] == len(expected.encode())
    assert got["last"] == total and got["tail"] == [total - 2, total - 1, total]
    assert got["dropped"] == [0, 0] and got["local"] is False
    assert len(got["segments"]) > 3  # type: ignore[arg-type]

    # Resuming (``after=``) on another host is exact.
    for after in (0, 1, 349, 350, total - 1):
        assert web2.follow(run_id, after, total) == (list(range(after + 1, total + 1)), 0)


def test_the_cap_deletes_dropped_segments_blocks_and_remove_store_the_rest(
    pg_url: str, tmp_path: Path
) -> None:
    run_id, total = str(uuid.uuid4()), 2800  # pauses at 1401 = 1 + 7 * 200
    worker, web = Host(pg_url, tmp_path / "worker"), Host(pg_url, tmp_path / "web")
    writer = worker.start("write", run_id, total, 8192, 2048)
    assert _message(writer) == {"event": "half"}
    writer.communicate("go\n", timeout=120)
    assert writer.returncode == 0

    got = web.run("read", run_id)
    segments = got["segments"]
    assert isinstance(segments, list) and segments[0] > 0  # the oldest were dropped
    # Only the kept segments have blocks: the dropped ones' were deleted.
    assert got["files"] == sorted(f"seg-{s:06d}.{kind}" for s in segments for kind in ("idx", "out"))
    dropped = got["dropped"]
    assert isinstance(dropped, list)
    dropped_bytes, dropped_lines = int(dropped[0]), int(dropped[1])
    expected = "".join(_line(n) for n in range(dropped_lines + 1, total + 1))
    assert got["data"] == expected and got["last"] == total
    assert dropped_bytes == len("".join(_line(n) for n in range(1, dropped_lines + 1)).encode())
    # A follower from the start is told what it missed, then gets the tail exactly.
    assert web.follow(run_id, 0, total) == (list(range(dropped_lines + 1, total + 1)), dropped_lines)

    assert web.run("remove", run_id) == {"files": []}


# -- backpressure (no database needed: the database write is replaced) -----------------


def test_appends_block_while_the_database_is_behind_and_nothing_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "MAX_PENDING", 8 * 1024)
    gate = threading.Event()
    shipped: list[tuple[str, int, bytes]] = []

    def slow_database(batch: database._Batch) -> None:
        gate.wait(60)
        for (_run, name), blocks in batch.appends.items():
            shipped.extend((name, pos, bytes(data)) for pos, data in blocks)

    monkeypatch.setattr(database, "_write_batch", slow_database)
    monkeypatch.setattr(database.Shipper, "_wake", staticmethod(lambda runs: None))
    shipper = database.Shipper()
    blocked = threading.Event()
    real_wait = shipper._cond.wait
    writer_thread: list[threading.Thread] = []

    def wait(timeout: float | None = None) -> bool:
        if writer_thread and threading.current_thread() is writer_thread[0]:
            blocked.set()
        return real_wait(timeout)

    monkeypatch.setattr(shipper._cond, "wait", wait)
    chunk, progress = b"y" * 1023 + b"\n", []

    def write() -> None:
        for i in range(64):  # 64 KiB: eight times the bound
            shipper.append("r", "seg-000000.out", i * len(chunk), chunk)
            progress.append(i)

    writer_thread.append(threading.Thread(target=write))
    writer_thread[0].start()
    assert blocked.wait(60)  # the writer waits for the database...
    with shipper._cond:
        held = shipper._batch.nbytes + shipper._inflight
    assert len(progress) < 64 and held <= 8 * 1024  # ...with memory bounded
    gate.set()
    writer_thread[0].join(60)
    assert len(progress) == 64
    assert shipper.flush(shipper._seq, timeout=60)
    data = b"".join(piece for _name, _pos, piece in sorted(shipped, key=lambda s: s[1]))
    assert data == chunk * 64
    # Consecutive appends were coalesced into blocks, not one row per write.
    assert len(shipped) < 64
