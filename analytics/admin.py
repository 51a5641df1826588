"""Admin of the analytics rows: for looking, not editing.

History is written by runs and removed by ``cleanup``; alert deliveries are a log. So
every model here is read-only (no add, no change); saved baselines, benchmarks and alert
cooldowns may be deleted (the API allows the first; deleting a cooldown lets a rule fire
again). Points run to millions: their list never counts the whole table and is ordered
by the time index. Alert URLs may carry a secret (a token in the query string, Slack's
path, user:password): they are shown masked, never whole.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.contrib import admin
from django.http import HttpRequest

from analytics.models import AlertDelivery, AlertState, Baseline, Benchmark, Point, RunAnalysis, Series

MASK = "***"


def masked_url(url: str) -> str:
    """The URL with anything that may be a secret replaced by ``***``: the query string,
    the fragment, a user:password, and the path of a Slack webhook (its token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host + port
    path = parts.path
    if host.endswith("slack.com") and path.count("/") > 1:
        path = "/".join(path.split("/")[:2]) + "/" + MASK  # /services/<token>
    return urlunsplit(
        (parts.scheme, netloc, path, MASK if parts.query else "", MASK if parts.fragment else "")
    )


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """No add, no change; delete only where a subclass allows it."""

    can_delete_rows = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.can_delete_rows and super().has_delete_permission(request, obj)


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ("script_path", "metric", "created_at")
    list_filter = ("metric",)
    search_fields = ("script_path", "metric")
    ordering = ("script_path", "metric")
    readonly_fields = ("script_path", "path_key", "metric", "created_at")


@admin.register(Point)
class PointAdmin(ReadOnlyAdmin):
    list_display = ("recorded_at", "script_path", "metric", "value", "status", "source", "run_id")
    list_filter = ("status", "source", "series__metric")
    search_fields = ("series__script_path", "=run_id")
    ordering = ("-recorded_at",)
    list_select_related = ("series",)
    show_full_result_count = False  # COUNT(*) of millions of rows on every page
    readonly_fields = ("series", "run_id", "recorded_at", "value", "status", "source")

    @admin.display(description="script", ordering="series__script_path")
    def script_path(self, obj: Point) -> str:
        return obj.series.script_path

    @admin.display(description="metric", ordering="series__metric")
    def metric(self, obj: Point) -> str:
        return obj.series.metric


@admin.register(Baseline)
class BaselineAdmin(ReadOnlyAdmin):
    can_delete_rows = True
    list_display = ("name", "script_path", "method", "days", "created_at", "created_by")
    list_filter = ("method",)
    search_fields = ("name", "script_path")
    ordering = ("script_path", "name")
    list_select_related = ("created_by",)
    readonly_fields = (
        "name",
        "script_path",
        "path_key",
        "method",
        "days",
        "metrics",
        "run_id",
        "created_at",
        "created_by",
    )


@admin.register(Benchmark)
class BenchmarkAdmin(ReadOnlyAdmin):
    can_delete_rows = True
    list_display = ("name", "version", "script_path", "days", "created_at", "created_by")
    list_filter = ("name",)
    search_fields = ("name", "script_path")
    ordering = ("name", "-version")
    list_select_related = ("created_by",)
    readonly_fields = (
        "name",
        "version",
        "script_path",
        "path_key",
        "days",
        "metrics",
        "created_at",
        "created_by",
    )


@admin.register(RunAnalysis)
class RunAnalysisAdmin(ReadOnlyAdmin):
    list_display = ("run_id", "created_at")
    search_fields = ("=run_id",)
    ordering = ("-created_at",)
    readonly_fields = ("run_id", "metrics", "gates", "comparison", "cost", "junit", "created_at")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "rule",
        "channel",
        "status",
        "attempts",
        "response_code",
        "run_id",
        "target",
    )
    list_filter = ("status", "channel", "severity")
    search_fields = ("rule", "script_path", "=run_id")
    ordering = ("-created_at", "-id")
    # ``url`` itself is never shown: only ``target``, masked.
    fields = (
        "created_at",
        "finished_at",
        "run_id",
        "script_path",
        "rule",
        "severity",
        "channel",
        "target",
        "status",
        "attempts",
        "response_code",
        "error",
        "payload",
    )
    readonly_fields = fields

    @admin.display(description="URL")
    def target(self, obj: AlertDelivery) -> str:
        return masked_url(obj.url)


@admin.register(AlertState)
class AlertStateAdmin(ReadOnlyAdmin):
    can_delete_rows = True  # forget a cooldown: the rule may fire again at once
    list_display = ("rule", "script_path", "last_fired_at")
    search_fields = ("rule", "script_path")
    ordering = ("-last_fired_at",)
    readonly_fields = ("key", "script_path", "rule", "last_fired_at")
