"""Run lifecycle API (seed 001): thin views that call services."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, TooLarge
from core.permissions import caller
from core.roles import Capability
from runs.filters import RunFilter
from runs.models import Control, Run
from runs.selectors import log_bytes, log_page, log_text, run_junit, run_samples, run_stats
from runs.serializers import (
    BulkDeleteSerializer,
    RunAttemptSerializer,
    RunEventSerializer,
    RunRequestSerializer,
    RunSerializer,
    RunUploadSerializer,
    run_record,
)
from runs.services import run_control, run_delete, run_enqueue, run_restart, runs_delete
from runs.services.rerun import run_rerun
from runs.services.uploads import safe_upload_name, upload_discard, upload_store


def _queue_run(request: Request, data: Any, *, source: str) -> Response:
    serializer = RunRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    if serializer.validated_data["dry_run"]:
        return Response(serializer.execution_plan(), status=status.HTTP_200_OK)
    run = run_enqueue(params=serializer.run_params(), user=caller(request), source=source)
    return Response(run_record(run), status=status.HTTP_202_ACCEPTED)


DASHBOARD_HEADER = "X-ScriptOps-Client"


def _api_or_dashboard(request: Request) -> str:
    """``dashboard`` for a launch from the dashboard's form (a signed-in browser session
    whose page says so, not an API key), else ``api``."""
    from_page = request.headers.get(DASHBOARD_HEADER) == "dashboard"
    return "dashboard" if from_page and request.auth is None and request.user.is_authenticated else "api"


class RunCreateView(APIView):
    """``POST /api/run``: queue a script execution (202 with the RunRecord)."""

    required_capability = Capability.EXECUTE

    @extend_schema(
        request=RunRequestSerializer,
        responses={202: RunSerializer, 200: OpenApiResponse(description="dry_run: the plan")},
    )
    def post(self, request: Request) -> Response:
        return _queue_run(request, request.data, source=_api_or_dashboard(request))


class RunUploadView(APIView):
    """``POST /api/run/upload``: store an uploaded ``.py``/``.sh`` script and queue it."""

    required_capability = Capability.EXECUTE
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=RunUploadSerializer, responses={202: RunSerializer})
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise serializers.ValidationError({"file": ["Attach the script as the 'file' field."]})
        if "script_path" in request.data or "path" in request.data:
            raise serializers.ValidationError({"script_path": ["Not allowed with an upload."]})
        name = safe_upload_name(upload.name or "")
        if not name.lower().endswith((".py", ".sh")):
            raise serializers.ValidationError({"file": ["Only .py and .sh scripts can be uploaded."]})
        if not upload.size:
            raise serializers.ValidationError({"file": ["The uploaded file is empty."]})
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise TooLarge(f"The script is {upload.size} bytes; the limit is {settings.MAX_UPLOAD_BYTES}.")
        data: dict[str, Any] = {}
        for key, value in request.data.items():
            if key == "file":
                continue
            if key in ("args", "env_vars") and isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise serializers.ValidationError({key: [f"Invalid JSON: {exc}"]}) from exc
            data[key] = value
        # The request is checked with the stored file like any other script (inside the
        # roots, a regular file), so store first, and remove it again if the request is
        # refused or is only a dry run: nothing is left behind that no run refers to.
        target = upload_store(name=name, chunks=upload.chunks())
        try:
            data["script_path"] = str(target)
            response = _queue_run(request, data, source="upload")
        except BaseException:
            upload_discard(target)
            raise
        if response.status_code != status.HTTP_202_ACCEPTED:  # dry run: nothing will use it
            upload_discard(target)
        return response


class LogsQuerySerializer(serializers.Serializer[Any]):
    stream = serializers.ChoiceField(choices=["all", "stdout", "stderr"], default="all")
    offset = serializers.IntegerField(min_value=0, default=0)
    tail = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    limit = serializers.IntegerField(
        min_value=1,
        max_value=64 * 1024 * 1024,
        required=False,
        help_text="Bytes in text mode; lines (at most 5000) in the numbered-lines mode.",
    )
    # ``format`` is also DRF's renderer override: only "json" is meaningful here.
    format = serializers.ChoiceField(choices=["json"], required=False)
    before = serializers.IntegerField(min_value=1, required=False, help_text="Lines numbered below this.")
    after = serializers.IntegerField(min_value=0, default=0, help_text="With q: matches after this line.")
    q = serializers.CharField(required=False, max_length=500, trim_whitespace=False)
    download = serializers.BooleanField(default=False)
    streams = serializers.CharField(
        required=False,
        max_length=40,
        help_text="Numbered lines only: the streams to show, joined by commas (stdout,stderr,system).",
    )
    first_error = serializers.BooleanField(
        default=False,
        help_text="Numbered lines only: add `first_error`, the first stderr line or line matching "
        "SCRIPTOPS_LOG_ERROR_PATTERN.",
    )

    def validate_streams(self, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - {"stdout", "stderr", "system"})
        if not names or unknown:
            raise serializers.ValidationError("Name one or more of stdout, stderr, system, joined by commas.")
        return ",".join(dict.fromkeys(names))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "q" in attrs and not attrs["q"]:
            raise serializers.ValidationError({"q": ["q must not be empty."]})
        if attrs.get("streams"):
            attrs["stream"] = attrs["streams"]  # the viewer's filter, applied by the server
            attrs["format"] = "json"
        if attrs.get("q") or "before" in attrs or attrs.get("first_error"):
            attrs["format"] = "json"  # numbered lines are the only sensible answer
        if attrs.get("format") == "json":
            attrs["limit"] = min(attrs.get("limit", 500), 5000)
        return attrs


@extend_schema(parameters=[OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Run]):
    """Runs: list, detail, delete, control actions, logs and events."""

    queryset = Run.objects.select_related("created_by").all()
    serializer_class = RunSerializer
    filterset_class = RunFilter
    search_fields = ["script_path", "correlation_id", "error_summary"]
    ordering_fields = ["created_at", "started_at", "finished_at", "duration", "status", "exit_code"]
    ordering = ["-created_at"]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "logs": Capability.READ,
        "events": Capability.READ,
        "attempts": Capability.READ,
        "samples": Capability.READ,
        "junit": Capability.READ,
        "stop": Capability.EXECUTE,
        "kill": Capability.EXECUTE,
        "cancel": Capability.EXECUTE,
        "pause": Capability.EXECUTE,
        "rerun": Capability.EXECUTE,
        "resume": Capability.EXECUTE,
        "restart": Capability.EXECUTE,
        "destroy": Capability.WRITE,
        "bulk_destroy": Capability.WRITE,
    }

    # Actions that read a run's files or child rows, and need of the row only its id and
    # state: loading all ~55 columns and the creator cost ~1 ms per call, and the log
    # viewer and API clients poll these.
    LEAN_ACTIONS = frozenset({"logs", "events", "attempts", "samples", "junit"})

    def get_queryset(self) -> QuerySet[Run]:
        if self.action in self.LEAN_ACTIONS:
            return Run.objects.only("id", "status")
        return super().get_queryset()

    def filter_queryset(self, queryset: QuerySet[Run]) -> QuerySet[Run]:
        # Query-string filters narrow the list; a run is addressed by its id alone (and
        # building the filter set costs a few ms on every detail, logs or control call).
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Rows are rendered by the shared RunRecord serializer: a RunSerializer built per
        # request cost ~2.5 ms before the first row (dashboards and clients poll this).
        runs = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(runs)
        if page is None:
            return Response([run_record(run) for run in runs])
        return self.get_paginated_response([run_record(run) for run in page])

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(run_record(self.get_object(), analytics=True))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        run_delete(run=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="runs_bulk_destroy", request=BulkDeleteSerializer, responses={200: OpenApiTypes.OBJECT}
    )
    def bulk_destroy(self, request: Request) -> Response:
        """``DELETE /api/runs`` with a JSON list of run ids. Active runs: 409, nothing deleted."""
        ids = BulkDeleteSerializer(data=request.data)
        ids.is_valid(raise_exception=True)
        return Response(runs_delete(ids=ids.validated_data))

    def _control(self, request: Request, command: str) -> Response:
        run = run_control(run=self.get_object(), command=command, user=caller(request))
        return Response(run_record(run))

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Graceful stop: SIGTERM to the process group, SIGKILL after the grace period."""
        return self._control(request, Control.STOP)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def kill(self, request: Request, pk: str | None = None) -> Response:
        """SIGKILL to the process group and every descendant."""
        return self._control(request, Control.KILL)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """A queued run never starts; a running one is stopped."""
        return self._control(request, Control.CANCEL)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """SIGSTOP to the process group (time paused does not count towards the timeout)."""
        return self._control(request, Control.PAUSE)

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """SIGCONT to the process group."""
        return self._control(request, Control.RESUME)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str | None = None) -> Response:
        """Queue a fresh run with this run's parameters and the body's changes (run
        options; the original is left alone). ``env_vars`` given is the whole new
        environment: a ``********`` value keeps the original's."""
        data = request.data.dict() if isinstance(request.data, QueryDict) else request.data
        new = run_rerun(run=self.get_object(), changes=data, user=caller(request))
        return Response(run_record(new), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """Cancel if active, then queue a fresh run with the same parameters."""
        new = run_restart(run=self.get_object(), user=caller(request))
        return Response(run_record(new), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: RunEventSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        return Response(RunEventSerializer(run.events.all(), many=True).data)

    @extend_schema(responses={200: RunAttemptSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def attempts(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        return Response(RunAttemptSerializer(run.attempt_set.all(), many=True).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def samples(self, request: Request, pk: str | None = None) -> Response:
        """Resource samples over time: ``{ts, cpu, rss, children, attempt}``, oldest first."""
        return Response(run_samples(self.get_object()))

    @extend_schema(
        responses={
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.STR, description="JUnit XML"),
            404: OpenApiResponse(description="No such run, or it had no junit_output"),
        }
    )
    @action(detail=True, methods=["get"])
    def junit(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """The run's JUnit XML report (a run started with ``junit_output: true``)."""
        run = self.get_object()
        report = run_junit(run)
        if report is None:
            raise NotFound(f"Run {run.pk} has no JUnit report (it was not started with junit_output: true).")
        response = HttpResponse(report, content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-junit.xml"'
        return response

    @extend_schema(
        parameters=[LogsQuerySerializer],
        responses={200: OpenApiResponse(OpenApiTypes.STR, description="text/plain output")},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """Captured output.

        - text/plain (default): ``stream``, ``offset`` (bytes), ``tail`` (lines), ``limit``
          (bytes). Headers: ``X-Next-Offset`` (pass back as ``offset`` to poll),
          ``X-Output-Truncated`` and ``X-Dropped-Bytes`` (the cap dropped the head),
          ``X-Run-Status``.
        - numbered lines (``format=json``, or any of ``before``/``q``): the log viewer's
          pages. Without ``before``: the newest ``limit`` lines; with ``before=N``: the
          ``limit`` lines before line N; with ``q``: lines containing q (case-insensitive)
          after line ``after``. Lines are ``{n, stream, ts, text}``.
        - ``download=1``: the whole stored log as an attachment.
        """
        run = self.get_object()
        query = LogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params["download"]:
            stream = StreamingHttpResponse(
                log_bytes(run, stream=params["stream"]), content_type="text/plain; charset=utf-8"
            )
            suffix = "" if params["stream"] == "all" else f"-{params['stream']}"
            stream["Content-Disposition"] = f'attachment; filename="run-{run.pk}{suffix}.log"'
            return stream
        if params.get("format") == "json":
            return Response(
                log_page(
                    run,
                    before=params.get("before"),
                    limit=params["limit"],
                    stream=params["stream"],
                    query=params.get("q"),
                    after=params["after"],
                    first_error=params["first_error"],
                )
            )
        text = log_text(
            run,
            stream=params["stream"],
            offset=params["offset"],
            limit=params.get("limit"),
            tail=params.get("tail"),
        )
        response = HttpResponse(text.body, content_type="text/plain; charset=utf-8")
        response["X-Next-Offset"] = str(text.next_offset)
        response["X-Output-Truncated"] = "true" if text.dropped_bytes else "false"
        response["X-Dropped-Bytes"] = str(text.dropped_bytes)
        response["X-Run-Status"] = run.status
        return response


class StatsView(APIView):
    """``GET /api/stats``: totals, last 24 h, by status, success rate."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(run_stats())
