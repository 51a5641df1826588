"""Filters for a run's analytics block (``templates/dashboard/_run_analytics.html``)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

TIMES = "\u00d7"  # the multiplication sign, escaped (ruff RUF001 flags it as a look-alike of x)
SAME = 0.05  # within 5 % of usual reads "about as fast as usual"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m {seconds:02d}s"


@register.filter
def usual_comparison(usual: dict[str, Any] | None) -> dict[str, str] | None:
    """``{"text", "kind"}`` for the run's duration against the p50 of the script's last
    successful runs: "2.3 (times) slower than the p50 of the last 30 successful runs (4.10 s)";
    None without a comparison (``run_usual`` had no duration or no such run)."""
    if not usual or not usual.get("ratio") or not usual.get("n"):
        return None
    ratio, n, p50 = float(usual["ratio"]), int(usual["n"]), float(usual["p50"])
    runs = "the last successful run" if n == 1 else f"the last {n} successful runs"
    usual_text = f"the p50 of {runs} ({_seconds(p50)})"
    if abs(ratio - 1) < SAME:
        return {"text": f"About as fast as {usual_text}", "kind": "same"}
    if ratio > 1:
        return {"text": f"{ratio:.1f}{TIMES} slower than {usual_text}", "kind": "slower"}
    return {"text": f"{1 / ratio:.1f}{TIMES} faster than {usual_text}", "kind": "faster"}
