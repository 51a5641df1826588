"""The Task JSON (one serializer for input and output), its history entries, and the small
shapes of the other endpoints."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from runs.serializers import run_option_fields
from scheduler.models import (
    EVENT_NAME,
    EVENT_NAME_MESSAGE,
    RUN_OPTION_FIELDS,
    MisfirePolicy,
    OverlapPolicy,
    ScheduledTask,
    ScheduleType,
    TaskRun,
)
from scheduler.selectors import last_run_of
from scheduler.services import MASKED, task_create, task_update

# Read-only fields of the Task JSON: accepted (and ignored) in a body, so that what GET
# returns can be sent back with PUT; any other unknown field is a 400.
READ_ONLY = (
    "id",
    "schedule_text",
    "depends_on_detail",
    "dependents",
    "has_webhook",
    "next_run_at",
    "last_run",
    "created_at",
    "updated_at",
    "webhook_token",
    "webhook_url",
)


class RelatedIdsField(serializers.ListField):
    """Written as a list of ids; read from a related manager (prefetched)."""

    def to_representation(self, data: Any) -> list[Any]:
        return [item.pk for item in data.all()]


class RelatedNamesField(serializers.ListField):
    """Written as a list of names; read from a related manager (prefetched)."""

    def to_representation(self, data: Any) -> list[Any]:
        return [item.name for item in data.all()]


class TaskRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class LastRunSerializer(serializers.Serializer[Any]):
    run_id = serializers.UUIDField()
    status = serializers.CharField()
    run_status = serializers.CharField(allow_null=True)
    exit_code = serializers.IntegerField(allow_null=True)
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class TaskSerializer(serializers.ModelSerializer[ScheduledTask]):
    """A scheduled task. On create, exactly one of ``script_id`` and ``script_path``;
    ``"webhook": true`` also creates a webhook token (returned once)."""

    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        allow_null=True,
        required=False,
    )
    script_id = serializers.IntegerField(allow_null=True, required=False, min_value=1)
    script_path = serializers.CharField(
        max_length=4096, required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    env_vars = serializers.DictField(child=serializers.JSONField(), required=False)
    schedule_type = serializers.ChoiceField(choices=ScheduleType.choices, required=False)
    interval_seconds = serializers.IntegerField(required=False, allow_null=True)
    cron = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    timezone = serializers.CharField(required=False, max_length=64)
    schedule_text = serializers.CharField(read_only=True)
    depends_on = RelatedIdsField(child=serializers.IntegerField(min_value=1), required=False)
    depends_on_detail = serializers.SerializerMethodField()
    dependents = serializers.SerializerMethodField()
    events = RelatedNamesField(
        child=serializers.RegexField(
            rf"^{EVENT_NAME}$",
            error_messages={"invalid": EVENT_NAME_MESSAGE},
        ),
        required=False,
    )
    overlap_policy = serializers.ChoiceField(choices=OverlapPolicy.choices, required=False)
    max_concurrent = serializers.IntegerField(required=False, allow_null=True)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False)
    has_webhook = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()
    webhook = serializers.BooleanField(write_only=True, required=False)

    class Meta:
        model = ScheduledTask
        fields = [
            "id",
            "name",
            "description",
            "enabled",
            "owner",
            "script_id",
            "script_path",
            *RUN_OPTION_FIELDS,
            "schedule_type",
            "interval_seconds",
            "cron",
            "timezone",
            "schedule_text",
            "depends_on",
            "depends_on_detail",
            "dependents",
            "events",
            "overlap_policy",
            "max_concurrent",
            "misfire_policy",
            "has_webhook",
            "next_run_at",
            "last_run",
            "created_at",
            "updated_at",
            "webhook",
        ]
        read_only_fields = ["id", "next_run_at", "created_at", "updated_at"]
        extra_kwargs = {
            "name": {"required": False, "validators": []},  # the service says what is missing
            "description": {"required": False, "allow_blank": True},
            "enabled": {"required": False},
        }

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # The run options render and are documented as ``POST /api/run`` declares them; their
        # values go to the service as sent (see to_internal_value).
        for name, declared in run_option_fields(RUN_OPTION_FIELDS).items():
            if name == "env_vars":
                continue  # declared above: no default (a PATCH must not reset it)
            declared.required = False
            if self.partial or self.instance is not None:
                declared.default = serializers.empty  # only what the body says changes
            fields[name] = declared
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Expected a JSON object with the task's fields."]}
            )
        data = {key: value for key, value in data.items() if key not in READ_ONLY}
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: [f"Unknown field {name!r}."] for name in unknown})
        if self.instance is not None and "webhook" in data:
            raise serializers.ValidationError(
                {"webhook": ["Use POST (rotate) or DELETE /api/scheduler/tasks/{id}/webhook."]}
            )
        # The run options are checked once, with the script, by the service
        # (runs.request.run_request_clean): passed on as sent. env_vars keeps its own field.
        options = {name: data.pop(name) for name in RUN_OPTION_FIELDS if name != "env_vars" and name in data}
        validated = super().to_internal_value(data)
        validated.update(options)
        return validated

    # -- output --
    def to_representation(self, instance: ScheduledTask) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["script_id"] = instance.script_id
        data["script_path"] = instance.script.path if instance.script is not None else instance.script_path
        data["cron"] = instance.cron or None
        data["env_vars"] = {name: MASKED for name in instance.env_vars or {}}
        data["slack_webhook"] = MASKED if instance.slack_webhook else None  # a credential
        return {name: data[name] for name in self.Meta.fields if name in data}

    @extend_schema_field(TaskRefSerializer(many=True))
    def get_depends_on_detail(self, obj: ScheduledTask) -> list[dict[str, Any]]:
        return [{"id": t.pk, "name": t.name} for t in sorted(obj.depends_on.all(), key=lambda t: t.name)]

    @extend_schema_field(TaskRefSerializer(many=True))
    def get_dependents(self, obj: ScheduledTask) -> list[dict[str, Any]]:
        return [{"id": t.pk, "name": t.name} for t in sorted(obj.dependents.all(), key=lambda t: t.name)]

    def get_has_webhook(self, obj: ScheduledTask) -> bool:
        return bool(obj.webhook_hash)

    @extend_schema_field(LastRunSerializer(allow_null=True))
    def get_last_run(self, obj: ScheduledTask) -> dict[str, Any] | None:
        entry = last_run_of(obj, self.context.get("last_runs"))
        if entry is None or entry.run is None:
            return None
        run = entry.run
        return {
            "run_id": str(run.pk),
            "status": run.status,
            "run_status": run.run_status,
            "exit_code": run.exit_code,
            "trigger": entry.trigger,
            "created_at": serializers.DateTimeField().to_representation(run.created_at),
            "finished_at": serializers.DateTimeField().to_representation(run.finished_at)
            if run.finished_at
            else None,
        }

    # -- writes go through the services --
    def _service_data(self, validated: dict[str, Any]) -> dict[str, Any]:
        data = dict(validated)
        data.pop("webhook", None)
        return data

    def create(self, validated_data: dict[str, Any]) -> ScheduledTask:
        request = self.context.get("request")
        task, raw = task_create(
            user=getattr(request, "user", None),
            webhook=bool(validated_data.get("webhook")),
            **self._service_data(validated_data),
        )
        self.context["webhook_token"] = raw
        return task

    def update(self, instance: ScheduledTask, validated_data: dict[str, Any]) -> ScheduledTask:
        return task_update(task=instance, **self._service_data(validated_data))


class TaskRunRunSerializer(serializers.Serializer[Any]):
    status = serializers.CharField()
    run_status = serializers.CharField(allow_null=True)
    exit_code = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration = serializers.FloatField(allow_null=True)


class TaskRunSerializer(serializers.ModelSerializer[TaskRun]):
    """One entry of a task's history: a trigger and what came of it."""

    run_id = serializers.UUIDField(read_only=True, allow_null=True)
    run = TaskRunRunSerializer(read_only=True, allow_null=True)

    class Meta:
        model = TaskRun
        fields = [
            "id",
            "run_id",
            "trigger",
            "event",
            "due_at",
            "fired_at",
            "outcome",
            "reason",
            "upstream",
            "run",
        ]
        read_only_fields = fields


class PreviewQuerySerializer(serializers.Serializer[Any]):
    cron = serializers.CharField(required=False, allow_blank=True, max_length=200)
    interval = serializers.IntegerField(required=False)
    tz = serializers.CharField(required=False, default="UTC", max_length=64)
    count = serializers.IntegerField(required=False, default=5, min_value=1, max_value=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_cron = bool(attrs.get("cron"))
        if has_cron == ("interval" in attrs):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give either cron (with tz) or interval (seconds)."]}
            )
        return attrs


class RunNowSerializer(serializers.Serializer[Any]):
    """``POST /api/scheduler/tasks/{id}/run``: an optional JSON body (or query string)."""

    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Admins only: run now whatever the overlap policy says (no skip, no cancel, no "
            "waiting); recorded in the history as forced, with who forced it."
        ),
    )
