"""Scheduler API: thin views that call services (see docs/scheduler.md)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from core.errors import Forbidden, TooLarge
from core.permissions import caller, effective_role
from core.roles import Capability, role_allows
from runs.serializers import RunSerializer, run_record
from scheduler import conf
from scheduler.filters import TaskFilter, TaskRunFilter
from scheduler.models import ScheduledTask, TaskRun
from scheduler.schedules import (
    Schedule,
    ScheduleError,
    cron_clean,
    describe_cron,
    describe_interval,
    interval_clean,
    zone,
)
from scheduler.selectors import due_tasks, last_runs, task_graph, tasks_with_relations
from scheduler.serializers import PreviewQuerySerializer, RunNowSerializer, TaskRunSerializer, TaskSerializer
from scheduler.services import (
    event_fire,
    hook_fire,
    task_delete,
    task_enable,
    task_pause,
    task_run_now,
    task_webhook_remove,
    task_webhook_rotate,
)

WEBHOOK_ANSWER = inline_serializer(
    "WebhookToken", {"webhook_token": serializers.CharField(), "webhook_url": serializers.URLField()}
)


def _run_now_force(request: Request) -> bool:
    """``force`` of a run-now request: from the JSON body, else the query string."""
    body = request.data if request.data is not None else {}
    if isinstance(body, QueryDict):
        body = body.dict()
    if not isinstance(body, dict):
        raise serializers.ValidationError(
            {"non_field_errors": ['Expected a JSON object (empty, or {"force": true}).']}
        )
    data: dict[str, Any] = {}
    if "force" in body:
        data["force"] = body["force"]
    elif "force" in request.query_params:
        data["force"] = request.query_params["force"]
    query = RunNowSerializer(data=data)
    query.is_valid(raise_exception=True)
    return bool(query.validated_data["force"])


def webhook_url(request: Request, raw: str) -> str:
    return request.build_absolute_uri(reverse("scheduler-hook", kwargs={"token": raw}))


@extend_schema(parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)])
class TaskViewSet(viewsets.ModelViewSet[ScheduledTask]):
    """Scheduled tasks: CRUD, run now, enable/pause, webhook token, history."""

    queryset = tasks_with_relations()
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    search_fields = ["name", "description", "script_path", "events__name"]
    ordering_fields = ["name", "created_at", "updated_at", "next_run_at", "enabled", "schedule_type"]
    ordering = ["name"]
    lookup_value_regex = r"\d+"
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "runs": Capability.READ,
        "create": Capability.WRITE,
        "update": Capability.WRITE,
        "partial_update": Capability.WRITE,
        "destroy": Capability.WRITE,
        "enable": Capability.WRITE,
        "pause": Capability.WRITE,
        "webhook_rotate": Capability.WRITE,
        "webhook_remove": Capability.WRITE,
        "run": Capability.EXECUTE,
    }

    def get_queryset(self) -> QuerySet[ScheduledTask]:
        return tasks_with_relations()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        context = {**self.get_serializer_context(), "last_runs": last_runs(rows)}
        data = TaskSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = serializer.save()
        body = dict(TaskSerializer(task, context=self.get_serializer_context()).data)
        raw = serializer.context.get("webhook_token")
        if raw:
            body["webhook_token"] = raw
            body["webhook_url"] = webhook_url(request, raw)
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task_delete(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _task_answer(self, task: ScheduledTask) -> Response:
        fresh = self.get_queryset().get(pk=task.pk)
        return Response(TaskSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        request=RunNowSerializer,
        parameters=[
            OpenApiParameter(
                "force",
                OpenApiTypes.BOOL,
                OpenApiParameter.QUERY,
                description="Same as the body's force (admins only); the body wins if both are given.",
            )
        ],
        responses={
            202: inline_serializer(
                "TaskRunNow",
                {
                    "task_id": serializers.IntegerField(),
                    "run": RunSerializer(),
                    "outcome": serializers.CharField(help_text="Always queued."),
                    "reason": serializers.CharField(
                        help_text="What the overlap policy did (waits for, cancelled), or who forced it."
                    ),
                },
            ),
            400: OpenApiResponse(description="force is not a boolean, or the body is not a JSON object."),
            403: OpenApiResponse(description="force=true by a non-admin."),
            409: OpenApiResponse(
                description=(
                    "error overlap_skipped: a run is active and the overlap policy (skip, or queue "
                    "with one already waiting) skipped this one, recorded in the history; or "
                    "error conflict: the task's library script cannot run."
                )
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run now, under the task's overlap policy like a scheduled fire (see docs/scheduler.md).

        ``force`` (JSON body or query; admins only) bypasses the policy.
        """
        task = self.get_object()
        force = _run_now_force(request)
        if force and not role_allows(effective_role(request) or "", Capability.ADMIN):
            raise Forbidden("Only an admin may force a run (force=true).")
        entry = task_run_now(task=task, user=caller(request), force=force)
        assert entry.run is not None  # task_run_now raises when no run starts
        return Response(
            {
                "task_id": task.pk,
                "run": run_record(entry.run),
                "outcome": entry.outcome,
                "reason": entry.reason,
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(request=None, responses={200: TaskSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str | None = None) -> Response:
        return self._task_answer(task_enable(task=self.get_object()))

    @extend_schema(request=None, responses={200: TaskSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._task_answer(task_pause(task=self.get_object()))

    @extend_schema(request=None, responses={200: WEBHOOK_ANSWER})
    @action(detail=True, methods=["post"], url_path="webhook", url_name="webhook")
    def webhook_rotate(self, request: Request, pk: str | None = None) -> Response:
        """Create or rotate the webhook token: the old one stops working. Shown only here."""
        raw = task_webhook_rotate(task=self.get_object())
        return Response({"webhook_token": raw, "webhook_url": webhook_url(request, raw)})

    @extend_schema(request=None, responses={204: None})
    @webhook_rotate.mapping.delete
    def webhook_remove(self, request: Request, pk: str | None = None) -> Response:
        task_webhook_remove(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("trigger", OpenApiTypes.STR, many=True),
            OpenApiParameter("outcome", OpenApiTypes.STR, many=True),
        ],
        responses={200: TaskRunSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """The task's history, newest first: every trigger, skipped ones with their reason."""
        task = self.get_object()
        history = TaskRun.objects.filter(task=task).select_related("run").order_by("-fired_at", "-id")
        filterset = TaskRunFilter(request.query_params, queryset=history)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        rows = page if page is not None else list(filterset.qs)
        data = TaskRunSerializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)


class EventView(APIView):
    """``POST /api/scheduler/events/{event_name}``: queue every enabled task listening to it."""

    required_capability = Capability.EXECUTE

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, event_name: str) -> Response:
        result = event_fire(name=event_name, user=caller(request))
        return Response(
            {
                "event": result.event,
                "triggered": [
                    {"task_id": task.pk, "task": task.name, "run_id": str(entry.run_id)}
                    for task, entry in result.triggered
                ],
                "skipped": [
                    {"task_id": task.pk, "task": task.name, "reason": reason}
                    for task, reason in result.skipped
                ],
            }
        )


class DueView(APIView):
    """``GET /api/scheduler/due``: enabled tasks whose next due time has passed."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        tasks = list(due_tasks(now=now))
        context = {"request": request, "last_runs": last_runs(tasks)}
        return Response(
            {
                "now": serializers.DateTimeField().to_representation(now),
                "tasks": TaskSerializer(tasks, many=True, context=context).data,
            }
        )


class PreviewView(APIView):
    """``GET /api/scheduler/preview?cron=…&tz=…`` (or ``interval=…``): the next due times."""

    required_capability = Capability.READ

    @extend_schema(parameters=[PreviewQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        query = PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        now = timezone.now()
        try:
            tz = zone(params["tz"])
            if params.get("cron"):
                cron = cron_clean(params["cron"], tz=tz, now=now)
                schedule = Schedule(cron=cron, tz=params["tz"])
                description = describe_cron(cron, params["tz"])
                interval = None
            else:
                interval = interval_clean(params["interval"])
                schedule, cron = Schedule(interval=interval), None
                description = describe_interval(interval)
        except ScheduleError as exc:
            name = {"timezone": "tz", "interval_seconds": "interval"}.get(exc.field, exc.field)
            raise serializers.ValidationError({name: [exc.message]}) from exc
        upcoming = [t.astimezone(tz).isoformat() for t in schedule.upcoming(now, params["count"])]
        return Response(
            {
                "cron": cron,
                "interval": interval,
                "timezone": params["tz"],
                "description": description,
                "next": upcoming,
            }
        )


class GraphView(APIView):
    """``GET /api/scheduler/graph``: tasks and upstream → dependent edges."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(task_graph())


# -- webhooks: the token is the credential ---------------------------------------------------


class TokenIsTheCredential(BasePermission):
    """The hook endpoint needs no login: the secret token in its URL is what authorises."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True


class HookThrottle(SimpleRateThrottle):
    """Per client address; rate ``scheduler_hook`` of DEFAULT_THROTTLE_RATES, else ``anon``."""

    scope = "scheduler_hook"

    def get_rate(self) -> str | None:
        # Read on each request (as core.throttling does): settings may change in tests.
        rates = api_settings.DEFAULT_THROTTLE_RATES
        rate = rates.get(self.scope) or rates.get("anon")
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class HookTokenThrottle(HookThrottle):
    """Per token, whoever calls: many addresses cannot flood one task."""

    scope = "scheduler_hook"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = str(view.kwargs.get("token", ""))
        ident = "token-" + hashlib.sha256(token.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}


class HookView(APIView):
    """``POST /api/scheduler/hooks/{token}``: run the task; its JSON body becomes
    ``SCRIPTOPS_WEBHOOK_PAYLOAD`` (an empty body: ``null``)."""

    authentication_classes: list[Any] = []
    permission_classes = [TokenIsTheCredential]
    throttle_classes = [HookThrottle, HookTokenThrottle]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            202: inline_serializer(
                "HookAccepted",
                {
                    "task_id": serializers.IntegerField(),
                    "run_id": serializers.UUIDField(allow_null=True),
                    "outcome": serializers.CharField(),
                    "reason": serializers.CharField(),
                },
            ),
            404: OpenApiResponse(description="Unknown token"),
            409: OpenApiResponse(description="The task is disabled"),
            413: OpenApiResponse(description="The body is too large"),
        },
    )
    def post(self, request: Request, token: str) -> Response:
        payload = _webhook_payload(request)
        entry = hook_fire(token=token, payload=payload)
        return Response(
            {
                "task_id": entry.task_id,
                "run_id": str(entry.run_id) if entry.run_id else None,
                "outcome": entry.outcome,
                "reason": entry.reason,
            },
            status=status.HTTP_202_ACCEPTED,
        )


def _webhook_payload(request: Request) -> str:
    """The body as JSON text, at most ``SCRIPTOPS_WEBHOOK_MAX_BYTES`` (413 beyond)."""
    limit = conf.webhook_max_bytes()
    too_large = TooLarge(f"The webhook body is larger than {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large  # refused before reading a byte of it
    stream = request.stream
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise too_large
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise serializers.ValidationError({"body": ["The body must be UTF-8 JSON."]}) from exc
    if not text.strip():
        return "null"
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise serializers.ValidationError({"body": [f"The body is not valid JSON: {exc}"[:300]]}) from exc
    return text
