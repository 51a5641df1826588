"""RunRequest (input) and RunRecord (output), seed 001's field tables.

A run request's rules are :func:`runs.request.run_request_clean`'s, whoever asks (the API,
a library script's run, a scheduled task); the serializers here adapt HTTP to it and back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.fields import empty

from prechecks.selectors import run_check
from runs.models import LogLevel, RetryStrategy, Run, RunAttempt, RunEvent
from runs.request import (
    REQUEST_FIELDS,
    FieldProblems,
    RunRequest,
    RunRequestInvalid,
    dry_run_answer,
    launch_check,
    run_request_clean,
)
from runs.selectors import run_analytics


@extend_schema_field(
    {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}], "default": []}
)
class ArgsField(serializers.Field[Any, Any, list[str], Any]):
    """A list of arguments; a single string is split like a shell would (no shell runs).
    Documents ``args``: :func:`runs.request.run_request_clean` checks it."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


def _request_fields() -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """The run request's fields as the API documents them (OpenAPI, the browsable API) and
    renders them: fresh instances on each call. The rules are run_request_clean's."""
    return {
        "script_path": serializers.CharField(max_length=4096, trim_whitespace=False),
        "args": ArgsField(required=False, default=list),
        "timeout": serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.1),
        "log_level": serializers.ChoiceField(choices=LogLevel.choices, default=LogLevel.INFO),
        "retry_on_failure": serializers.BooleanField(default=False),
        "retry_max_attempts": serializers.IntegerField(default=3, min_value=1, max_value=100),
        "retry_strategy": serializers.ChoiceField(
            choices=RetryStrategy.choices, default=RetryStrategy.EXPONENTIAL
        ),
        "retry_initial_delay": serializers.FloatField(default=1.0, min_value=0.0, max_value=86400),
        "retry_max_delay": serializers.FloatField(default=60.0, min_value=0.0, max_value=86400),
        "retry_multiplier": serializers.FloatField(default=2.0, min_value=1.0, max_value=100),
        "retry_max_time": serializers.FloatField(default=300.0, min_value=0.0, max_value=7 * 86400),
        "working_dir": serializers.CharField(
            required=False, allow_null=True, allow_blank=True, default=None, max_length=4096
        ),
        "stream_output": serializers.BooleanField(default=False),
        "monitor_interval": serializers.FloatField(default=0.1, min_value=0.02, max_value=3600),
        "env_vars": serializers.DictField(child=serializers.JSONField(), default=dict),
        "enable_history": serializers.BooleanField(default=True),
        "history_db": serializers.CharField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Null only: run history lives in the main database (GET /api/analytics/history).",
        ),
        "performance_gates": serializers.ListField(
            child=serializers.DictField(),
            default=list,
            max_length=50,
            help_text="[{metric, max_value?, min_value?}]: checked when the run ends; a violation "
            "fails the run even if the script exited 0.",
        ),
        "junit_output": serializers.BooleanField(
            default=False, help_text="Keep a JUnit XML report: GET /api/runs/{id}/junit."
        ),
        "save_baseline": serializers.CharField(
            required=False,
            allow_null=True,
            default=None,
            max_length=100,
            help_text="Save this run's metrics as a named baseline.",
        ),
        "load_baseline": serializers.CharField(
            required=False,
            allow_null=True,
            default=None,
            max_length=100,
            help_text="Compare with a saved baseline, by name.",
        ),
        "alerts": serializers.ListField(
            child=serializers.DictField(),
            default=list,
            help_text="[{name, condition?, channels, severity?, when?, scheduled_only?, cooldown?}].",
        ),
        "slack_webhook": serializers.CharField(
            required=False,
            allow_null=True,
            default=None,
            help_text="For alert channel slack; never returned.",
        ),
        "enable_cost_tracking": serializers.BooleanField(default=False),
        "enable_code_analysis": serializers.BooleanField(
            default=False, help_text="Bandit (Python) / ShellCheck (shell) before the script starts."
        ),
        "enable_secret_scanning": serializers.BooleanField(
            default=False, help_text="detect-secrets before the script starts (secrets never returned)."
        ),
        "enable_dependency_scanning": serializers.BooleanField(
            default=False, help_text="Pinned requirements against OSV advisories before the script starts."
        ),
        "dry_run": serializers.BooleanField(default=False),
    }


def run_option_fields(names: Iterable[str]) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """The run request fields ``names``, declared as ``POST /api/run`` declares them, for a
    resource that stores run options (a scheduled task): to render them and document them.
    Its service checks the values with :func:`runs.request.run_request_clean`."""
    fields = _request_fields()
    return {name: fields[name] for name in names}


def _error_detail(problems: FieldProblems) -> list[ErrorDetail] | dict[str, list[ErrorDetail]]:
    if isinstance(problems, dict):
        return {key: [ErrorDetail(p.message, code=p.code) for p in items] for key, items in problems.items()}
    return [ErrorDetail(p.message, code=p.code) for p in problems]


def request_validation_error(exc: RunRequestInvalid) -> serializers.ValidationError:
    """The 400 a refused run request answers: each field's messages, with their codes."""
    return serializers.ValidationError({name: _error_detail(ps) for name, ps in exc.problems.items()})


def run_request_from(data: Any) -> RunRequest:
    """:func:`runs.request.run_request_clean` for a request body (a form's too): its
    problems as DRF's ValidationError, the API's 400."""
    if isinstance(data, QueryDict):
        data = data.dict()  # a form-encoded body: its dict() holds lists; take single values
    if isinstance(data, dict):
        data = dict(data)
        data.pop("csrfmiddlewaretoken", None)  # an HTML form's CSRF field is not a run option
    try:
        request = run_request_clean(data)
        launch_check(request)  # the higher apps' checks (the script's own parameters)
    except RunRequestInvalid as exc:
        raise request_validation_error(exc) from exc
    return request


class RunRequestSerializer(serializers.Serializer[Any]):
    """Validates a run request. Unknown fields and unsupported options are 400s."""

    # (The docstring above is the OpenAPI description.) An adapter over
    # runs.request.run_request_clean, which checks the request; the fields document it. A
    # subclass may declare more (a library run's ``force``), checked after the request.
    # ``validated_data``: the Run's fields, ``dry_run``, the subclass's fields and
    # ``_request`` (the RunRequest).

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**_request_fields(), **super().get_fields()}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # A subclass's declared fields only: building the request's documented fields
        # (``self.fields``) cost ~0.4 ms a launch, for nothing (run_request_clean checks).
        extra = {name: f for name, f in super().get_fields().items() if name not in REQUEST_FIELDS}
        given: dict[str, Any] = {}
        if extra and isinstance(data, dict):
            data = data.dict() if isinstance(data, QueryDict) else dict(data)
            given = {name: data.pop(name) for name in extra if name in data}
        request = run_request_from(data)
        out: dict[str, Any] = {**request.run_fields(), "dry_run": request.dry_run}
        errors: dict[str, Any] = {}
        for name, declared in extra.items():
            try:
                out[name] = declared.run_validation(given.get(name, empty))
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except serializers.SkipField:
                pass
        if errors:
            raise serializers.ValidationError(errors)
        out["_request"] = request
        return out

    def run_validators(self, value: Any) -> None:
        # DRF's would build every documented field (``self.fields``, ~1.2 ms a launch) to
        # look for read-only defaults; there are none, and no serializer-level validators.
        if self.validators:
            super().run_validators(value)

    @property
    def run_request(self) -> RunRequest:
        request: RunRequest = self.validated_data["_request"]
        return request

    def run_params(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        data.pop("_request", None)
        data.pop("dry_run", None)
        return data

    def execution_plan(self) -> dict[str, Any]:
        """What ``dry_run`` answers: nothing is started."""
        return dry_run_answer(self.run_request)


MASKED = "********"


class RunAnalyticsSerializer(serializers.Serializer[Any]):
    """The ``analytics`` block of a run's record (documentation: built by a selector)."""

    metrics = serializers.DictField(child=serializers.FloatField())
    gates = serializers.ListField(child=serializers.DictField())
    comparison = serializers.DictField(allow_null=True)
    cost = serializers.DictField(allow_null=True)
    junit_url = serializers.CharField(allow_null=True)
    alerts = serializers.ListField(child=serializers.DictField())
    usual = serializers.DictField(allow_null=True, help_text="{metric, p50, n, ratio}")


# The ``checks`` block of a run's record (``prechecks.selectors.run_check``), for the schema
# only: inline, since a declared field named ``errors`` would shadow ``Serializer.errors``.
# Findings name the tool, rule, severity, file and line; never a secret (masked).
RUN_CHECKS_SCHEMA = inline_serializer(
    name="RunChecks",
    fields={
        "status": serializers.ChoiceField(choices=["clean", "findings", "error"]),
        "blocked": serializers.BooleanField(),
        "cached": serializers.BooleanField(),
        "reason": serializers.CharField(),
        "kinds": serializers.ListField(child=serializers.CharField()),
        "findings": serializers.ListField(
            child=serializers.DictField(),
            help_text="[{tool, rule_id, severity, confidence, file, line, message, kind, "
            "fingerprint, accepted, blocking}]",
        ),
        "errors": serializers.ListField(child=serializers.DictField(), help_text="[{tool, message}]"),
        "notes": serializers.ListField(child=serializers.CharField()),
        "duration_ms": serializers.FloatField(),
    },
    allow_null=True,
)


class RunSerializer(serializers.ModelSerializer[Run]):
    """The RunRecord. Environment variable values are never returned, only names."""

    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    env_vars = serializers.SerializerMethodField()
    system_env = serializers.SerializerMethodField()
    slack_webhook = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(source="duration", read_only=True)
    analytics = serializers.SerializerMethodField()
    checks = serializers.SerializerMethodField()

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
            "performance_gates",
            "junit_output",
            "save_baseline",
            "load_baseline",
            "alerts",
            "slack_webhook",
            "enable_cost_tracking",
            "enable_code_analysis",
            "enable_secret_scanning",
            "enable_dependency_scanning",
            "source",
            "task_name",
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
            "analytics",
            "checks",
        ]
        read_only_fields = fields

    def get_env_vars(self, obj: Run) -> dict[str, str]:
        return {name: "********" for name in (obj.env_vars or {})}

    def get_system_env(self, obj: Run) -> list[str]:
        """Only the names: a webhook payload may hold secrets."""
        return sorted(obj.system_env or {})

    def get_slack_webhook(self, obj: Run) -> str | None:
        """Masked: a Slack webhook URL is a credential."""
        return MASKED if obj.slack_webhook else None

    @extend_schema_field(RunAnalyticsSerializer(allow_null=True))
    def get_analytics(self, obj: Run) -> dict[str, Any] | None:
        """What analytics made of the run: filled in by ``run_record(run, analytics=True)``
        for a run's own record (GET /api/runs/{id}); null in lists (a few queries a run)."""
        return None

    @extend_schema_field(RUN_CHECKS_SCHEMA)
    def get_checks(self, obj: Run) -> dict[str, Any] | None:
        """The pre-run checks' outcome: filled in by ``run_record(run, analytics=True)``
        for a run's own record (GET /api/runs/{id}); null in lists and when none ran."""
        return None


_record_serializer: RunSerializer | None = None


def run_record(run: Run, *, analytics: bool = False) -> dict[str, Any]:
    """The RunRecord of ``run``, as ``RunSerializer(run).data`` gives it.

    Built by one serializer kept for the process: building a RunSerializer's ~50 fields
    from the model costs ~1.5 ms per instance, rendering a run with them ~0.1 ms, and
    every launch answers with a RunRecord. ``analytics``: with the run's analytics block
    (``runs.selectors.run_analytics``, a few queries: a run's own page, not lists).
    Sharing is safe because no field of it uses
    the serializer's context or state (no request, no hyperlinks) — keep it so.
    """
    global _record_serializer
    if _record_serializer is None:
        shared = RunSerializer()
        shared.fields  # noqa: B018 - build (and bind) the fields once, before sharing
        _record_serializer = shared
    record = dict(_record_serializer.to_representation(run))
    if analytics:
        record["analytics"] = run_analytics(run)
        record["checks"] = run_check(run_id=str(run.pk))
    return record


class RunEventSerializer(serializers.ModelSerializer[RunEvent]):
    class Meta:
        model = RunEvent
        fields = ["id", "kind", "timestamp", "data"]


class RunAttemptSerializer(serializers.ModelSerializer[RunAttempt]):
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


class RunUploadSerializer(serializers.Serializer[Any]):
    """Multipart upload: ``file`` plus any RunRequest field (JSON-encoded values accepted)."""

    file = serializers.FileField()


class BulkDeleteSerializer(serializers.ListSerializer[Any]):
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
