"""Analytics: the metrics every finished run records, and what is learned from them.

A *series* is one metric of one script (``duration_seconds`` of ``/srv/scripts/a.py``);
its *points* are one value per run. Points are narrow rows under one composite index
(series, recorded_at), so a chart or an analysis over a million rows reads one index
range. Nothing here is a foreign key to a run: history outlives the run records (runs are
deleted by people and by retention; history by ``cleanup``), and runs sit on a floor
above this app (``runs`` imports ``analytics``, never the other way round).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

# The metrics every run records (seed 001 / issue 12); ``cost`` only with cost tracking.
BUILTIN_METRICS = (
    "duration_seconds",
    "cpu_time_seconds",
    "peak_rss_mb",
    "avg_cpu_percent",
    "exit_code",
    "output_bytes",
    "attempts",
    "cost",
)


def path_key(script_path: str) -> str:
    """The indexed key of a script path (paths may be longer than an index entry)."""
    return hashlib.sha256(script_path.encode("utf-8", "surrogatepass")).hexdigest()


class Series(models.Model):
    """One metric of one script."""

    script_path = models.TextField()
    path_key = models.CharField(max_length=64, db_index=True)
    metric = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["path_key", "metric"], name="analytics_series_path_metric")
        ]

    def __str__(self) -> str:
        return f"{self.metric} of {self.script_path}"


class Point(models.Model):
    """One value of a series: the metric of one finished run.

    ``status`` and ``source`` are the run's (its final status; api, schedule, ...), copied
    so that history filters never join the runs table."""

    id = models.BigAutoField(primary_key=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="points")
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    recorded_at = models.DateTimeField(db_index=True)
    value = models.FloatField()
    status = models.CharField(max_length=12)
    source = models.CharField(max_length=20, blank=True)

    class Meta:
        indexes = [models.Index(fields=["series", "recorded_at"], name="analytics_point_series_time")]

    def __str__(self) -> str:
        return f"{self.value} @ {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class Baseline(models.Model):
    """A named baseline of one script: per metric, its statistics (``{metric: {stat: value}}``;
    stats are p50, p90, p95, p99, mean, std, and q1, q3, iqr, lower, upper for ``iqr``).

    Saved by ``GET /api/analytics/baseline?...&save=<name>`` (``method`` percentile, iqr,
    intelligent) or by a run's ``save_baseline`` (``method`` ``run``: that run's values,
    every stat equal to the value)."""

    name = models.CharField(max_length=100)
    script_path = models.TextField()
    path_key = models.CharField(max_length=64, db_index=True)
    method = models.CharField(max_length=20)
    days = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict)
    run_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["path_key", "name"], name="analytics_baseline_path_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.script_path})"


class Benchmark(models.Model):
    """A named, versioned snapshot of a script's metrics over a window
    (``metrics``: ``{metric: {n, mean, p50, p95, min, max}}``). Versions count up per name."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    script_path = models.TextField()
    path_key = models.CharField(max_length=64, db_index=True)
    days = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="analytics_benchmark_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class RunAnalysis(models.Model):
    """What analytics made of one finished run, shown in its record and on its page:
    ``metrics`` (every value recorded, custom ones included), ``gates`` (each gate with the
    value and whether it passed), ``comparison`` (with ``load_baseline``), ``cost`` and the
    JUnit report. Removed with the run (``runs`` deletes it), unlike the history points."""

    run_id = models.UUIDField(primary_key=True)
    metrics = models.JSONField(default=dict)
    gates = models.JSONField(default=list)
    comparison = models.JSONField(null=True, blank=True)
    cost = models.JSONField(null=True, blank=True)
    junit = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "run analyses"

    def __str__(self) -> str:
        return f"analysis of {self.run_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    THROTTLED = "throttled"
    REFUSED = "refused"  # the URL is not on the allowlist any more


class AlertDelivery(models.Model):
    """One alert sent (or not) to one channel for one run: append-only, the outcome of
    each attempt kept (``attempts``, ``response_code``, ``error``)."""

    run_id = models.UUIDField(db_index=True)
    script_path = models.TextField()
    rule = models.CharField(max_length=100)
    severity = models.CharField(max_length=20, default="warning")
    channel = models.CharField(max_length=20)  # webhook | slack
    url = models.TextField()
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"

    def __str__(self) -> str:
        return f"{self.rule} → {self.channel} [{self.status}]"


class AlertState(models.Model):
    """The last time a rule of a script fired (its ``cooldown``), keyed by
    sha256(script path + NUL + rule name)."""

    key = models.CharField(max_length=64, unique=True)
    script_path = models.TextField()
    rule = models.CharField(max_length=100)
    last_fired_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.rule} of {self.script_path}"
