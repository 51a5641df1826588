"""Pre-run check cost (issue 13): a 2,000-line Python script checked cold and cached.

Runs in-process against a throw-away SQLite database (migrated here), all three kinds
(code, secret, dependency with a requirements.txt and a small OSV folder), and prints:

- cold: the first check (Bandit, detect-secrets and the advisory match, side by side);
- cached: what a launch of the unchanged script adds (p50/p95 over repeats);
- with ``--library N``: N distinct scripts checked one after another (files/s).

Target: cached under 5 ms.

    .venv/bin/python bench/prechecks.py [--repeats 200] [--library 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _script(lines: int, seed: int = 0) -> str:
    body = ["import json", "import os", "import subprocess", ""]
    n = 0
    while len(body) < lines - 4:
        body += [
            f"def step_{seed}_{n}(data):",
            f'    """Step {n}."""',
            f"    value = data.get('k{n}', {n}) * 2",
            "    if value > 10:",
            "        return json.dumps({'v': value})",
            "    return os.path.join('/srv/data', str(value))",
            "",
        ]
        n += 1
    body += ["subprocess.run(['ls'], check=False)", "print('done')"]
    return "\n".join(body[:lines]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--library", type=int, default=0, help="also check N distinct scripts")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (last line)")
    args = parser.parse_args()
    result: dict[str, float | int | str] = {}

    work = Path(tempfile.mkdtemp(prefix="precheck-bench-"))
    advisories = work / "advisories"
    advisories.mkdir()
    (advisories / "PYSEC-2099-1.json").write_text(
        json.dumps(
            {
                "id": "PYSEC-2099-1",
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "examplepkg"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2"}]}],
                    }
                ],
            }
        )
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="scriptops.settings",
        SCRIPTOPS_DATA_DIR=str(work / "data"),
        SCRIPTOPS_ADVISORY_DIR=str(advisories),
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from prechecks.services import precheck_run

    scripts = work / "scripts"
    scripts.mkdir()
    (scripts / "requirements.txt").write_text("examplepkg==2.1\nrequests==2.32.3\n")
    script = scripts / "big.py"
    script.write_text(_script(2000))
    kinds = frozenset({"code", "secret", "dependency"})

    started = time.perf_counter()
    cold = precheck_run(path=script, kinds=kinds, root=scripts)
    cold_ms = (time.perf_counter() - started) * 1000
    assert not cold.cached, cold
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        outcome = precheck_run(path=script, kinds=kinds, root=scripts)
        timings.append((time.perf_counter() - started) * 1000)
        assert outcome.cached
    timings.sort()
    print(f"2,000-line script: {len(cold.findings)} findings, status {cold.status}")
    print(f"cold:   {cold_ms:.0f} ms")
    print(
        f"cached: p50 {statistics.median(timings):.2f} ms, "
        f"p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms over {args.repeats} (target < 5 ms)"
    )
    result.update(
        cold_ms=round(cold_ms, 1),
        cached_p50_ms=round(statistics.median(timings), 2),
        cached_p95_ms=round(timings[int(len(timings) * 0.95) - 1], 2),
        findings=len(cold.findings),
    )
    if args.library:
        paths = []
        for i in range(args.library):
            path = scripts / f"lib_{i}.py"
            path.write_text(_script(200, seed=i))
            paths.append(path)
        started = time.perf_counter()
        for path in paths:
            precheck_run(path=path, kinds=kinds, root=scripts)
        elapsed = time.perf_counter() - started
        print(f"library: {len(paths)} scripts in {elapsed:.1f} s = {len(paths) / elapsed:.1f} files/s")
        result.update(library_scripts=len(paths), library_files_per_s=round(len(paths) / elapsed, 1))
    if args.json:
        print(json.dumps(result))


def measure_prechecks(quick: bool = False) -> dict[str, Any]:
    """``make bench``'s section: this script in a subprocess (it sets up its own Django),
    its figures as the report's rows."""
    import subprocess

    from bench.report import figure

    library = 100 if quick else 1000
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--json",
            "--repeats",
            "50" if quick else "200",
            "--library",
            str(library),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["figures"] = [
        figure("precheck_cold_ms", "pre-run checks: 2,000-line Python script, cold", res["cold_ms"], "ms"),
        figure(
            "precheck_cached_p50_ms",
            "pre-run checks: same script unchanged (cache hit), p50",
            res["cached_p50_ms"],
            "ms",
            target=5,
            note=f"p95 {res['cached_p95_ms']} ms",
        ),
        figure(
            "precheck_library_files_per_s",
            f"pre-run checks: {res.get('library_scripts', 0):,} distinct scripts one after another",
            res.get("library_files_per_s"),
            "files/s",
        ),
    ]
    return res


if __name__ == "__main__":
    main()
