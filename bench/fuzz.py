"""Hostile input at volume (issue 15): schemathesis over every API operation as each role,
and the path-traversal corpus, with many more examples than ``make test`` sends.

Runs the tests of ``tests/security/`` (in-process, no server; see tests/security/fuzz.py)
with ``SCRIPTOPS_FUZZ_EXAMPLES`` examples per operation and mode, collects the requests
sent per endpoint class and per role and the 5xx count (which must be 0), and writes
``bench/results/fuzz-<UTC timestamp>.json``.

    .venv/bin/python bench/fuzz.py [--examples 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TESTS = ["tests/security/test_schema_fuzz.py", "tests/security/test_path_traversal.py"]


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Totals per endpoint class and per role, for each of the two tools."""
    summary: dict[str, Any] = {}
    for tool, roles in report.items():
        per_class: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        per_role: dict[str, int] = {}
        for role, tally in roles.items():
            per_class.update(tally["sent"])
            errors.update(tally["server_errors"])
            per_role[role] = sum(tally["sent"].values())
        summary[tool] = {
            "requests": sum(per_class.values()),
            "per_class": dict(sorted(per_class.items())),
            "per_role": per_role,
            "server_errors": sum(errors.values()),
            "server_errors_per_class": dict(errors),
            "statuses_per_role": {role: t.get("statuses", {}) for role, t in roles.items()},
        }
    return summary


def measure_fuzz(*, quick: bool = False, examples: int | None = None) -> dict[str, Any]:
    count = examples or (20 if quick else 100)
    with tempfile.TemporaryDirectory(prefix="scriptops-fuzz-") as tmp:
        report_path = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "SCRIPTOPS_FUZZ_EXAMPLES": str(count),
            "SCRIPTOPS_FUZZ_REPORT": str(report_path),
        }
        t0 = time.perf_counter()
        # Two pytest-xdist workers: the roles run side by side, each in its own database.
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *TESTS],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    summary = summarise(report)
    result: dict[str, Any] = {
        "examples_per_operation": count,
        "wall_s": round(wall, 1),
        "pytest_exit": proc.returncode,
        **summary,
    }
    if proc.returncode != 0:
        result["error"] = "tests/security failed: " + proc.stdout[-3000:]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"fuzz-{stamp}.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and mode")
    args = parser.parse_args()
    result = measure_fuzz(examples=args.examples)
    for tool in ("schemathesis", "path_traversal"):
        part = result.get(tool) or {}
        print(f"{tool}: {part.get('requests', 0)} requests, {part.get('server_errors', 0)} 5xx")
        print(f"  per class: {part.get('per_class')}")
        print(f"  per role:  {part.get('per_role')}")
    print(f"{result['wall_s']} s; pytest exit {result['pytest_exit']}")
    if "error" in result:
        print(result["error"])
    sys.exit(0 if result["pytest_exit"] == 0 else 1)


if __name__ == "__main__":
    main()
