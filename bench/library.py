"""The script library at scale: scanning 50,000 scripts and searching them.

A real stack (``manage.py serve``: daphne + a django-q2 worker) gets a generated tree
of 50,000 small scripts (Python with docstrings and argparse, shell, JavaScript, SQL,
in nested folders, with some duplicates). Measured over HTTP, as a user would see it:

- cold scan: ``POST /api/library/folder-roots/{id}/scan`` of the fresh tree, rate =
  files / the scan's own duration (started → finished, in the worker), and beside it
  the wall time from the request to ``completed`` as polled;
- rescan of the unchanged tree (nothing is re-read: size + mtime match);
- list and search latency of ``GET /api/library/scripts`` with 50,000 rows: a plain
  page, a search over name/path/description, filters (language, status, tag), an
  ordering, and a duplicates-only filter — p50/p95 over all requests.

Targets (issue 4): cold ≥ 2,000 files/s, rescan ≥ 20,000 files/s, search p95 < 100 ms.

    .venv/bin/python bench/library.py [--quick]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.util import running_stack, summary_ms  # noqa: E402

TARGETS = {"cold_files_per_s": 2000, "rescan_files_per_s": 20000, "search_p95_ms": 100}

PY = '''"""{title}.

Generated for the ScriptOps library benchmark.
"""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int, default={n})
parser.add_argument("--dry-run", action="store_true")
args = parser.parse_args()
print("{title}", args.count)
'''
SH = "#!/bin/bash\n# {title}.\nset -euo pipefail\necho '{title}' {n}\n"
JS = "// {title}.\nconsole.log('{title}', {n});\n"
SQL = "-- {title}.\nselect {n};\n"
KINDS = [(".py", PY), (".sh", SH), (".js", JS), (".sql", SQL)]
WORDS = [
    "backup",
    "deploy",
    "rotate",
    "report",
    "sync",
    "clean",
    "audit",
    "export",
    "import",
    "notify",
    "migrate",
    "check",
]


def generate(base: Path, files: int, *, seed: int = 7) -> int:
    """``files`` scripts in base/team-<a>/area-<b>/<c>/; every 50th is a copy of another."""
    rnd = random.Random(seed)
    made = 0
    per_dir = 50
    for i in range(files):
        a, b, c = i // 5000, (i // 500) % 10, (i // per_dir) % 10
        folder = base / f"team-{a:02d}" / f"area-{b}" / f"d{c}"
        if i % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
        ext, template = KINDS[i % len(KINDS)]
        word = WORDS[rnd.randrange(len(WORDS))]
        n = i if i % 50 else 0  # every 50th file: same content as its siblings of that kind
        title = f"{word.capitalize()} job {n}"
        (folder / f"{word}_{i:05d}{ext}").write_text(template.format(title=title, n=n))
        made += 1
    return made


def _poll_scan(client: httpx.Client, root_id: int, scan_id: str, *, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        scan: dict[str, Any] = client.get(f"/api/library/folder-roots/{root_id}/scan/{scan_id}").json()
        if scan["state"] in ("completed", "failed"):
            return scan
        if time.monotonic() > deadline:
            raise TimeoutError(f"scan {scan_id} still {scan['state']} after {timeout}s")
        time.sleep(0.05)


def _scan(client: httpx.Client, root_id: int, *, timeout: float) -> dict[str, Any]:
    t = time.perf_counter()
    resp = client.post(f"/api/library/folder-roots/{root_id}/scan")
    resp.raise_for_status()
    scan = _poll_scan(client, root_id, resp.json()["scan_id"], timeout=timeout)
    wall = time.perf_counter() - t
    if scan["state"] != "completed":
        raise RuntimeError(f"scan failed: {scan.get('message')}")
    duration = scan["duration"] or wall
    return {
        "files": scan["files_seen"],
        "added": scan["files_added"],
        "updated": scan["files_updated"],
        "unchanged": scan["files_unchanged"],
        "duration_s": round(duration, 3),
        "wall_s": round(wall, 3),
        "files_per_s": round(scan["files_seen"] / duration, 1) if duration else None,
        "timings": scan.get("timings"),
    }


def _queries(client: httpx.Client) -> list[dict[str, Any]]:
    tag = client.post("/api/library/tags", json={"name": "bench", "color": "#3b82f6"}).json()
    some = client.get("/api/library/scripts", params={"search": "rotate", "page_size": 50}).json()
    for script in some["results"][:50]:
        client.post(f"/api/library/scripts/{script['id']}/tags/{tag['id']}")
    return [
        {},
        {"page": 40},
        {"search": "deploy"},
        {"search": "job 1234"},
        {"search": "area-7/d3"},
        {"language": "python"},
        {"language": "shell", "search": "backup"},
        {"status": "active", "ordering": "-mtime"},
        {"tag": tag["id"]},
        {"ordering": "-size"},
        {"root_id": 1, "search": "sync"},
        {"duplicates": "content"},
    ]


def measure_library(*, quick: bool = False) -> dict[str, Any]:
    files = 5_000 if quick else 50_000
    rounds = 3 if quick else 10
    with running_stack("library", workers=2) as stack:
        tree = stack.scripts / "corpus"
        t = time.perf_counter()
        generate(tree, files)
        generated_s = time.perf_counter() - t
        with stack.client(timeout=120) as client:
            resp = client.post("/api/library/folder-roots", json={"name": "corpus", "path": str(tree)})
            resp.raise_for_status()
            root_id = resp.json()["id"]
            cold = _scan(client, root_id, timeout=900)
            rescan = _scan(client, root_id, timeout=300)
            queries = _queries(client)
            by_query: dict[str, list[float]] = {}
            everything: list[float] = []
            counts: dict[str, int] = {}
            for _ in range(rounds):
                for params in queries:
                    label = "&".join(f"{k}={v}" for k, v in params.items()) or "(first page)"
                    t = time.perf_counter()
                    r = client.get("/api/library/scripts", params=params)
                    elapsed = time.perf_counter() - t
                    r.raise_for_status()
                    counts[label] = r.json()["count"]
                    by_query.setdefault(label, []).append(elapsed)
                    everything.append(elapsed)
            stats_t = []
            for _ in range(rounds):
                t = time.perf_counter()
                client.get("/api/library/stats").raise_for_status()
                stats_t.append(time.perf_counter() - t)
    search = summary_ms(everything)
    return {
        "files": files,
        "generated_s": round(generated_s, 2),
        "cold_scan": cold,
        "rescan": rescan,
        "search": search,
        "search_by_query": {k: {**summary_ms(v), "count": counts[k]} for k, v in by_query.items()},
        "stats": summary_ms(stats_t),
        "targets": TARGETS,
        "met": {
            "cold": (cold["files_per_s"] or 0) >= TARGETS["cold_files_per_s"],
            "rescan": (rescan["files_per_s"] or 0) >= TARGETS["rescan_files_per_s"],
            "search": search["p95_ms"] < TARGETS["search_p95_ms"],
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure_library(quick="--quick" in sys.argv), indent=2))
