"""Dashboard page of the analytics app: ``/analytics/``.

Like the other pages, the view renders a shell: the scripts with history and their
metrics (for the pickers, one query) and what the address asks for (script, metric,
window). ``static/js/analytics.js`` then draws the chart, the summary, the overview
and the benchmarks from ``/api/analytics/*`` with the session, like any client.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

from analytics.models import BUILTIN_METRICS
from analytics.selectors import DURATION, history_scripts
from dashboard.pages.base import page

WINDOWS = (1, 7, 30, 90, 365)  # the window choices, in days


def _days(raw: str | None) -> int:
    try:
        days = int(raw or 30)
    except ValueError:
        return 30
    return days if 1 <= days <= 3650 else 30


@login_required
@ensure_csrf_cookie
def analytics_page(request: HttpRequest) -> HttpResponse:
    """A script's metric over time (trend, anomalies, baseline band, zoom), its summary,
    the overview across scripts, benchmarks and their regressions, the export links."""
    scripts = history_scripts()
    known = {entry["script_path"]: entry["metrics"] for entry in scripts}
    wanted = request.GET.get("script_path") or ""
    script_path = wanted if wanted in known else (scripts[0]["script_path"] if scripts and not wanted else "")
    metrics = known.get(script_path, [])
    metric = request.GET.get("metric") or ""
    if metric not in metrics:
        metric = DURATION if DURATION in metrics else (metrics[0] if metrics else "")
    days = _days(request.GET.get("days"))
    return page(
        request,
        "analytics/analytics.html",
        "analytics",
        scripts=scripts,
        analytics_state={
            "scripts": scripts,
            "script_path": script_path,
            "requested_script": wanted,
            "metric": metric,
            "days": days,
            "builtin_metrics": list(BUILTIN_METRICS),
        },
        script_path=script_path,
        requested_script=wanted,
        metrics=metrics,
        metric=metric,
        days=days,
        windows=sorted({*WINDOWS, days}),
    )
