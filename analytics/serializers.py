"""The analytics API's input checks (query strings and bodies) and its saved-row shapes.

Every parameter is checked here, so a bad one is a 400 naming it, never a 500 further
down: metric names by the regex custom metrics use, ``days`` 1..3650, methods by the
names :mod:`analytics.stats` knows, thresholds positive and finite, ``limit`` 1..10000.
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from analytics.metrics import METRIC_NAME
from analytics.models import Baseline, Benchmark
from analytics.stats import ANOMALY_METHODS, BASELINE_METHODS

# A saved baseline's or a benchmark's name: what a run's save_baseline/load_baseline accept.
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
NAME_HELP = "Letters, digits and ._- (at most 100, starting with a letter or digit)."
MAX_PATH = 4096
MAX_DAYS = 3650
MAX_LIMIT = 10_000
MAX_SPARKLINES = 100


def _metric(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(
        METRIC_NAME,
        max_length=64,
        error_messages={
            "invalid": "A metric name: a letter or _, then letters, digits and _.- (at most 64)."
        },
        **kwargs,
    )


def _name(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(
        NAME, max_length=100, error_messages={"invalid": NAME_HELP}, **{"help_text": NAME_HELP, **kwargs}
    )


def _days(default: int | None, **kwargs: Any) -> serializers.IntegerField:
    if default is None:
        return serializers.IntegerField(min_value=1, max_value=MAX_DAYS, required=False, **kwargs)
    return serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=default, **kwargs)


def _script_path(*, required: bool = True) -> serializers.CharField:
    return serializers.CharField(
        max_length=MAX_PATH, required=required, help_text="The script's path, as run."
    )


class PositiveFloatField(serializers.FloatField):
    """A float that is finite and above 0 (``inf``/``nan`` parse as floats)."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value) or value <= 0:
            raise serializers.ValidationError("Must be a positive number.")
        return value


# -- query strings ---------------------------------------------------------------------------


class HistoryQuerySerializer(serializers.Serializer[Any]):
    script_path = _script_path(required=False)
    metric = _metric(required=False)
    days = _days(30, help_text="Points of the last days (1..3650).")
    status = serializers.RegexField(
        r"^[a-z_]{1,12}$", required=False, help_text="completed, failed, cancelled"
    )
    source = serializers.RegexField(  # type: ignore[assignment]  # the stubs take it for Field.source
        r"^[A-Za-z0-9_.:-]{1,20}$", required=False, help_text="api, schedule, ..."
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=100)
    offset = serializers.IntegerField(min_value=0, default=0)


class ExportQuerySerializer(serializers.Serializer[Any]):
    """The history filters (no paging) and the file format. ``days`` absent: everything."""

    format = serializers.ChoiceField(choices=["json", "csv"], default="csv")
    script_path = _script_path(required=False)
    metric = _metric(required=False)
    days = _days(None, help_text="Points of the last days (1..3650); absent: all of them.")
    status = serializers.RegexField(r"^[a-z_]{1,12}$", required=False)
    source = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,20}$", required=False)  # type: ignore[assignment]  # the stubs take it for Field.source


class SeriesQuerySerializer(serializers.Serializer[Any]):
    """One series over a window: trends."""

    script_path = _script_path()
    metric = _metric(default="duration_seconds")
    days = _days(30)


class AnomalyQuerySerializer(SeriesQuerySerializer):
    method = serializers.ChoiceField(choices=list(ANOMALY_METHODS), default="iqr")
    threshold = PositiveFloatField(
        required=False, help_text="k for iqr (default 1.5), the score limit for zscore (3) and mad (3.5)."
    )


class BaselineQuerySerializer(serializers.Serializer[Any]):
    script_path = _script_path()
    metric = _metric(required=False, help_text="Absent: every metric of the script.")
    days = _days(30)
    method = serializers.ChoiceField(choices=list(BASELINE_METHODS), default="percentile")


class BaselineCreateSerializer(BaselineQuerySerializer):
    name = _name()


class BaselineListQuerySerializer(serializers.Serializer[Any]):
    script_path = _script_path(required=False)


class ChartQuerySerializer(SeriesQuerySerializer):
    since = serializers.DateTimeField(required=False, help_text="Zoom: from this time (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Zoom: up to this time (ISO 8601).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "since" in attrs and "until" in attrs and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": ["until is before since."]})
        return attrs


class OverviewQuerySerializer(serializers.Serializer[Any]):
    days = _days(30)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="Scripts per list.")


class SparklineQuerySerializer(serializers.Serializer[Any]):
    script_path = serializers.ListField(
        child=serializers.CharField(max_length=MAX_PATH),
        min_length=1,
        max_length=MAX_SPARKLINES,
        help_text="Repeat for each script (at most 100).",
    )


class ScriptSummaryQuerySerializer(serializers.Serializer[Any]):
    script_path = _script_path()


class BenchmarkQuerySerializer(serializers.Serializer[Any]):
    name = _name(required=False, help_text="A benchmark's name: its versions, newest first.")


class BenchmarkCreateSerializer(serializers.Serializer[Any]):
    name = _name()
    script_path = _script_path()
    days = _days(30)
    metrics = serializers.ListField(
        child=_metric(),
        required=False,
        max_length=100,
        help_text="Absent or empty: every metric of the script.",
    )


class RegressionQuerySerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(min_value=1, required=False, help_text="Default: the latest.")
    threshold = PositiveFloatField(default=10.0, help_text="% a metric's mean may grow before it is flagged.")


class CleanupQuerySerializer(serializers.Serializer[Any]):
    days = _days(90, help_text="Delete points recorded more than this many days ago.")


# -- rows ------------------------------------------------------------------------------------


class BaselineSerializer(serializers.ModelSerializer[Baseline]):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Baseline
        fields = [
            "id",
            "name",
            "script_path",
            "method",
            "days",
            "metrics",
            "run_id",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class BenchmarkSerializer(serializers.ModelSerializer[Benchmark]):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Benchmark
        fields = ["id", "name", "version", "script_path", "days", "metrics", "created_at", "created_by"]
        read_only_fields = fields


class HistoryRowSerializer(serializers.Serializer[Any]):
    """The shape of one history row (documentation: rows are built as dicts)."""

    run_id = serializers.UUIDField(allow_null=True)
    script_path = serializers.CharField()
    metric = serializers.CharField()
    value = serializers.FloatField()
    status = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # the stubs take it for Field.source
    recorded_at = serializers.DateTimeField()
