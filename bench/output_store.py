"""Micro-bench of the output store: local files against the PostgreSQL mirror.

Writes ``--mb`` MiB through ``LogWriter`` in 1 MiB pipe reads (and, separately, as
80-byte lines in 64 KiB reads), with the store ``local`` and ``database``; reports how
fast ``write()`` returns (the worker's loop) and how fast the data is committed in
PostgreSQL (``close()`` returns once it is), then how fast a reader reads it back
(``database``: as another host, from PostgreSQL).
Runs on a fresh database of ``--postgres`` (dropped afterwards).

    .venv/bin/python bench/output_store.py [--mb 256] [--postgres postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import psycopg

    name = f"scriptops_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunparse(urlparse(args.postgres)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(
                DATABASE_URL=urlunparse(urlparse(args.postgres)._replace(path=f"/{name}")),
                SCRIPTOPS_DATA_DIR=tmp,
                DJANGO_SETTINGS_MODULE="scriptops.settings",
            )
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
            bench(Path(tmp), args.mb)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(tmp: Path, mb: int) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from runs.logstore import LogReader, LogWriter

    big = (b"x" * 79 + b"\n") * ((1 << 20) // 80) + b"y" * ((1 << 20) % 80 - 1) + b"\n"
    small = (b"z" * 79 + b"\n") * 800  # 64,000 bytes of 80-byte lines
    for label, chunk in (("1 MiB reads", big), ("64 KB reads of 80-byte lines", small)):
        count = (mb << 20) // len(chunk)
        total = count * len(chunk) / (1 << 20)
        for store in ("local", "database"):
            settings.OUTPUT_STORE = store
            run_dir = tmp / str(uuid.uuid4())
            writer = LogWriter(run_dir, cap_bytes=1 << 40)
            t0 = time.perf_counter()
            for i in range(count):
                writer.write("stdout", chunk, float(i))
            t1 = time.perf_counter()
            writer.close()
            t2 = time.perf_counter()
            if store == "database":
                shutil.rmtree(run_dir)  # read as another host does: from the database
            t3 = time.perf_counter()
            data, _ = LogReader(run_dir).read_bytes(limit=64 << 20)
            t4 = time.perf_counter()
            print(
                f"{label:30s} {store:8s}: write() {total / (t1 - t0):7.0f} MiB/s, "
                f"committed {total / (t2 - t0):7.0f} MiB/s, "
                f"read back {len(data) / (1 << 20) / (t4 - t3):6.0f} MiB/s ({total:.0f} MiB)"
            )


if __name__ == "__main__":
    main()
