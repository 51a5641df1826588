"""Role-matrix rows of the analytics endpoints (merged by tests/core/test_role_matrix.py).

Reads need READ; saving or deleting a baseline and creating a benchmark WRITE; cleanup
ADMIN. Query strings end with "&": the matrix's trailing-slash test appends "/" to the
whole URL, which then lands in an empty, ignored parameter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from analytics.models import Baseline, path_key
from analytics.services.history import benchmark_create
from tests.analytics.history_helpers import record

READ = (401, 200, 200, 200, 200)

# (URL name, method):            anonymous readonly executor user  admin
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("analytics-history", "get"): READ,
    ("analytics-history-stats", "get"): READ,
    ("analytics-trends", "get"): READ,
    ("analytics-anomalies", "get"): READ,
    ("analytics-baseline", "get"): READ,
    ("analytics-baseline", "post"): (401, 403, 403, 201, 201),
    ("analytics-baselines", "get"): READ,
    ("analytics-baseline-detail", "delete"): (401, 403, 403, 204, 204),
    ("analytics-export", "get"): READ,
    ("analytics-export", "post"): READ,
    ("analytics-benchmarks", "get"): READ,
    ("analytics-benchmarks", "post"): (401, 403, 403, 201, 201),
    ("analytics-benchmark-regressions", "get"): READ,
    ("analytics-cleanup", "delete"): (401, 403, 403, 403, 200),
    ("analytics-chart", "get"): READ,
    ("analytics-overview", "get"): READ,
    ("analytics-sparklines", "get"): READ,
    ("analytics-expected", "get"): READ,
    ("analytics-script-summary", "get"): READ,
}


def _script(ctx: Any) -> str:
    """The matrix's script, with a little history."""
    record([1.0, 2.0, 3.0], script_path=str(ctx.script))
    return str(ctx.script)


def _q(ctx: Any) -> str:
    return f"script_path={quote(str(ctx.script))}&"


def _baseline(ctx: Any) -> tuple[str, dict[str, Any]]:
    body = {"name": f"m-{uuid.uuid4().hex[:8]}", "script_path": _script(ctx), "method": "percentile"}
    return ("/api/analytics/baseline", {"data": body, "format": "json"})


def _saved_baseline(ctx: Any) -> tuple[str, dict[str, Any]]:
    saved = Baseline.objects.create(
        name=f"m-{uuid.uuid4().hex[:8]}",
        script_path=str(ctx.script),
        path_key=path_key(str(ctx.script)),
        method="run",
    )
    return (f"/api/analytics/baselines/{saved.pk}", {})


def _new_benchmark(ctx: Any) -> tuple[str, dict[str, Any]]:
    body = {"name": f"m-{uuid.uuid4().hex[:8]}", "script_path": _script(ctx)}
    return ("/api/analytics/benchmarks", {"data": body, "format": "json"})


def _regressions(ctx: Any) -> tuple[str, dict[str, Any]]:
    made = benchmark_create(name=f"m-{uuid.uuid4().hex[:8]}", script_path=_script(ctx))
    return (f"/api/analytics/benchmarks/{made.name}/regressions", {})


REQUESTS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "analytics-history": lambda c: ("/api/analytics/history", {}),
    "analytics-history-stats": lambda c: ("/api/analytics/history/stats", {}),
    "analytics-trends": lambda c: (f"/api/analytics/trends?{_q(c)}", {}),
    "analytics-anomalies": lambda c: (f"/api/analytics/anomalies?{_q(c)}method=mad&", {}),
    "analytics-baseline": lambda c: (f"/api/analytics/baseline?{_q(c)}", {}),
    "analytics-baselines": lambda c: ("/api/analytics/baselines", {}),
    "analytics-baseline-detail": _saved_baseline,
    "analytics-export": lambda c: ("/api/analytics/export", {"data": {"format": "csv"}, "format": "json"}),
    "analytics-benchmarks": lambda c: ("/api/analytics/benchmarks", {}),
    "analytics-benchmark-regressions": _regressions,
    "analytics-cleanup": lambda c: ("/api/analytics/cleanup?days=90&", {}),
    "analytics-chart": lambda c: (f"/api/analytics/chart?{_q(c)}", {}),
    "analytics-overview": lambda c: ("/api/analytics/overview", {}),
    "analytics-sparklines": lambda c: (f"/api/analytics/sparklines?{_q(c)}", {}),
    "analytics-expected": lambda c: (f"/api/analytics/expected?{_q(c)}", {}),
    "analytics-script-summary": lambda c: (f"/api/analytics/scripts/summary?{_q(c)}", {}),
}
METHOD_REQUESTS: dict[tuple[str, str], Callable[[Any], tuple[str, dict[str, Any]]]] = {
    ("analytics-baseline", "post"): _baseline,
    ("analytics-benchmarks", "post"): _new_benchmark,
}
