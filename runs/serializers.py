"""RunRequest (input) and RunRecord (output), seed 001's field tables."""

from __future__ import annotations

import math
import shlex
import uuid
from typing import Any

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from runs import conf
from runs.models import LogLevel, RetryStrategy, Run, RunAttempt, RunEvent
from runs.plan import (
    PlanError,
    RetryPolicy,
    check_env_vars,
    interpreter_for,
    resolve_script,
    resolve_working_dir,
)

# Seed 001 RunRequest fields that later issues implement. Sent with a non-default
# value they are refused, never silently ignored.
UNSUPPORTED_FIELDS = (
    "enable_visualizer",
    "visualizer_format",
    "history_db",
    "performance_gates",
    "junit_output",
    "save_baseline",
    "load_baseline",
    "alerts",
    "slack_webhook",
    "enable_code_analysis",
    "enable_secret_scanning",
    "enable_dependency_scanning",
    "enable_cost_tracking",
)
_DEFAULTS_OF_UNSUPPORTED: dict[str, Any] = {"visualizer_format": "text"}


def _is_default_of_unsupported(name: str, value: Any) -> bool:
    """True if ``value`` asks for nothing: null, empty, false (also "false" from a form)."""
    if value in (None, False, [], {}, "") or value == _DEFAULTS_OF_UNSUPPORTED.get(name):
        return True
    hashable = isinstance(value, (str, int, float))
    return name.startswith("enable_") and hashable and value in serializers.BooleanField.FALSE_VALUES


MAX_ARGS = 1000
MAX_ARG_LENGTH = 32 * 1024


@extend_schema_field(
    {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}], "default": []}
)
class ArgsField(serializers.Field):  # type: ignore[type-arg]
    """A list of arguments; a single string is split like a shell would (no shell runs)."""

    default_error_messages = {
        "invalid": "args must be a list of strings (or one string of arguments).",
        "too_many": f"At most {MAX_ARGS} arguments.",
        "too_long": f"An argument is longer than {MAX_ARG_LENGTH} characters.",
        "nul": "An argument contains a NUL byte.",
        "unbalanced": "args could not be split: {error}.",
    }

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            try:
                data = shlex.split(data)
            except ValueError as exc:
                self.fail("unbalanced", error=exc)
        if not isinstance(data, list):
            self.fail("invalid")
        out: list[str] = []
        for item in data:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.fail("invalid")
            text = str(item)
            if "\x00" in text:
                self.fail("nul")
            if len(text) > MAX_ARG_LENGTH:
                self.fail("too_long")
            out.append(text)
        if len(out) > MAX_ARGS:
            self.fail("too_many")
        return out

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


class FiniteFloatField(serializers.FloatField):
    """A float that is a real number: "nan", "inf", 1e400 and booleans are refused.

    DRF's FloatField accepts them; NaN then fails the NOT NULL columns (stored as NULL
    by SQLite) and infinity cannot be rendered as strict JSON: both were 500s.
    """

    default_error_messages = {"not_finite": "A finite number is required."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        return float(value)


class RunRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Validates a run request. Unknown fields and unsupported options are 400s."""

    script_path = serializers.CharField(max_length=4096, trim_whitespace=False)
    args = ArgsField(required=False, default=list)
    timeout = FiniteFloatField(required=False, allow_null=True, default=None, min_value=0.1)
    log_level = serializers.ChoiceField(choices=LogLevel.choices, default=LogLevel.INFO)
    retry_on_failure = serializers.BooleanField(default=False)
    retry_max_attempts = serializers.IntegerField(default=3, min_value=1, max_value=100)
    retry_strategy = serializers.ChoiceField(choices=RetryStrategy.choices, default=RetryStrategy.EXPONENTIAL)
    retry_initial_delay = FiniteFloatField(default=1.0, min_value=0.0, max_value=86400)
    retry_max_delay = FiniteFloatField(default=60.0, min_value=0.0, max_value=86400)
    retry_multiplier = FiniteFloatField(default=2.0, min_value=1.0, max_value=100)
    retry_max_time = FiniteFloatField(default=300.0, min_value=0.0, max_value=7 * 86400)
    working_dir = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default=None, max_length=4096
    )
    stream_output = serializers.BooleanField(default=False)
    monitor_interval = FiniteFloatField(default=0.1, min_value=0.02, max_value=3600)
    env_vars = serializers.DictField(child=serializers.JSONField(), default=dict)
    enable_history = serializers.BooleanField(default=True)
    dry_run = serializers.BooleanField(default=False)

    aliases = {"path": "script_path"}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Expected a JSON object with the run request's fields."]}
            )
        # A form-encoded body is a QueryDict, whose dict() holds lists: take single values.
        data = data.dict() if isinstance(data, QueryDict) else dict(data)
        data.pop("csrfmiddlewaretoken", None)  # an HTML form's CSRF field is not a run option
        for alias, name in self.aliases.items():
            if alias in data and name not in data:
                data[name] = data.pop(alias)
        errors: dict[str, list[str]] = {}
        for name in UNSUPPORTED_FIELDS:
            if name in data:
                value = data.pop(name)
                if not _is_default_of_unsupported(name, value):
                    errors[name] = [f"{name} is not supported yet."]
        unknown = sorted(set(data) - set(self.fields))
        for name in unknown:
            errors[name] = [f"Unknown field {name!r}."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate_env_vars(self, value: dict[str, Any]) -> dict[str, str]:
        try:
            return check_env_vars(value, settings.ENV_DENY)
        except PlanError as exc:
            raise serializers.ValidationError(exc.message) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        roots = conf.allowed_roots()
        try:
            script = resolve_script(attrs["script_path"], roots)
            cwd = resolve_working_dir(attrs.get("working_dir"), script, roots)
            command = interpreter_for(script, python=settings.SCRIPT_PYTHON)
        except PlanError as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}, code=exc.code) from exc
        if attrs["retry_max_delay"] < attrs["retry_initial_delay"]:
            raise serializers.ValidationError(
                {"retry_max_delay": ["retry_max_delay must be at least retry_initial_delay."]}
            )
        attrs["script_path"] = str(script)
        attrs["_plan"] = {"command": command + attrs["args"], "cwd": str(cwd)}
        return attrs

    def run_params(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        data.pop("_plan", None)
        data.pop("dry_run", None)
        return data

    def execution_plan(self) -> dict[str, Any]:
        """What ``dry_run`` answers: nothing is started."""
        data = self.validated_data
        policy = RetryPolicy(
            enabled=data["retry_on_failure"],
            max_attempts=data["retry_max_attempts"],
            strategy=data["retry_strategy"],
            initial_delay=data["retry_initial_delay"],
            max_delay=data["retry_max_delay"],
            multiplier=data["retry_multiplier"],
            max_time=data["retry_max_time"],
        )
        base = ["PATH", "HOME", "LANG", "TZ", "SCRIPTOPS_RUN_ID", "SCRIPTOPS_CORRELATION_ID"]
        base.append("SCRIPTOPS_LOG_LEVEL")
        return {
            "dry_run": True,
            "valid": True,
            "script_path": data["script_path"],
            "command": data["_plan"]["command"],
            "cwd": data["_plan"]["cwd"],
            "env": sorted(base + list(data["env_vars"])),
            "timeout": data["timeout"],
            "stop_grace": settings.STOP_GRACE,
            "max_attempts": data["retry_max_attempts"] if data["retry_on_failure"] else 1,
            "retry_delays": policy.schedule(),
            "retry_strategy": data["retry_strategy"] if data["retry_on_failure"] else None,
        }


class RunSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """The RunRecord. Environment variable values are never returned, only names."""

    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    env_vars = serializers.SerializerMethodField()
    system_env = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(source="duration", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "status",
            "run_status",
            "paused",
            "script_path",
            "resolved_path",
            "args",
            "env_vars",
            "system_env",
            "working_dir",
            "timeout",
            "log_level",
            "stream_output",
            "monitor_interval",
            "enable_history",
            "retry_on_failure",
            "retry_max_attempts",
            "retry_strategy",
            "retry_initial_delay",
            "retry_max_delay",
            "retry_multiplier",
            "retry_max_time",
            "source",
            "correlation_id",
            "created_at",
            "started_at",
            "finished_at",
            "exit_code",
            "attempts",
            "error_summary",
            "duration",
            "duration_seconds",
            "cpu_time",
            "peak_rss",
            "avg_cpu",
            "max_children",
            "output_bytes",
            "output_lines",
            "output_truncated",
            "control",
            "host",
            "pid",
            "heartbeat_at",
            "worker_pid",
            "restarted_from",
            "created_by",
            "script",
            "wait_reason",
            "concurrency_key",
            "concurrency_limit",
        ]
        read_only_fields = fields

    def get_env_vars(self, obj: Run) -> dict[str, str]:
        return {name: "********" for name in (obj.env_vars or {})}

    def get_system_env(self, obj: Run) -> list[str]:
        """Only the names: a webhook payload may hold secrets."""
        return sorted(obj.system_env or {})


_record_serializer: RunSerializer | None = None


def run_record(run: Run) -> dict[str, Any]:
    """The RunRecord of ``run``, as ``RunSerializer(run).data`` gives it.

    Built by one serializer kept for the process: building a RunSerializer's ~50 fields
    from the model costs ~1.5 ms per instance, rendering a run with them ~0.1 ms, and
    every launch answers with a RunRecord. Sharing is safe because no field of it uses
    the serializer's context or state (no request, no hyperlinks) — keep it so.
    """
    global _record_serializer
    if _record_serializer is None:
        shared = RunSerializer()
        shared.fields  # noqa: B018 - build (and bind) the fields once, before sharing
        _record_serializer = shared
    return dict(_record_serializer.to_representation(run))


class RunEventSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = RunEvent
        fields = ["id", "kind", "timestamp", "data"]


class RunAttemptSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = RunAttempt
        fields = [
            "number",
            "started_at",
            "finished_at",
            "exit_code",
            "run_status",
            "duration",
            "cpu_time",
            "peak_rss",
        ]


class RunUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Multipart upload: ``file`` plus any RunRequest field (JSON-encoded values accepted)."""

    file = serializers.FileField()


class BulkDeleteSerializer(serializers.ListSerializer):  # type: ignore[type-arg]
    """The body of ``DELETE /api/runs``: a non-empty JSON list of run ids (strings)."""

    MAX_IDS = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.UUIDField())
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: Any) -> list[uuid.UUID]:
        # One readable error naming the bad ids, rather than DRF's list of per-item errors.
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError({"ids": ["Send a non-empty JSON list of run ids."]})
        if len(data) > self.MAX_IDS:
            raise serializers.ValidationError({"ids": [f"At most {self.MAX_IDS} ids at a time."]})
        out: list[uuid.UUID] = []
        bad: list[str] = []
        for item in data:
            try:
                if not isinstance(item, str):
                    raise ValueError(item)
                out.append(uuid.UUID(item))
            except ValueError:
                bad.append(repr(item)[:80])
        if bad:
            shown = ", ".join(bad[:10]) + (" …" if len(bad) > 10 else "")
            raise serializers.ValidationError({"ids": [f"Not valid run ids (UUIDs): {shown}."]})
        return out
