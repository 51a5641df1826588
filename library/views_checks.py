"""On-demand pre-run checks of library scripts (issue 13): queue a check of a script or of
a path inside the roots (a django-q2 task, polled like a scan), and read the latest results.

``POST /api/library/scripts/{id}/check`` and ``POST /api/library/check`` (``{"path"}``)
answer 202 with the job; ``GET /api/library/checks/{job_id}`` polls it (queued → running →
done, with counts); ``GET /api/library/scripts/{id}/check`` is the script's latest result.
Queuing a check is a write, as a scan is (users and admins); reading is for everyone.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import caller
from core.roles import Capability
from library.models import Script
from prechecks.models import CheckJob
from prechecks.selectors import check_latest
from prechecks.services import check_job_start
from runs.conf import allowed_roots
from runs.plan import PlanError, resolve_script

KINDS = ("code", "secret", "dependency")


class CheckRequest(serializers.Serializer[Any]):
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=KINDS),
        default=list(KINDS),
        allow_empty=False,
        help_text="What to check: code, secret, dependency (default: all three).",
    )


class PathCheckRequest(CheckRequest):
    path = serializers.CharField(help_text="A script's absolute path inside the allowed roots.")


class CheckJobSerializer(serializers.ModelSerializer[CheckJob]):
    class Meta:
        model = CheckJob
        fields = [
            "id",
            "state",
            "kinds",
            "total",
            "checked",
            "with_findings",
            "blocked",
            "errors",
            "result_ids",
            "message",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


LATEST_SCHEMA = inline_serializer(
    name="CheckLatest",
    fields={
        "checked": serializers.BooleanField(),
        "result_id": serializers.IntegerField(allow_null=True),
        "status": serializers.CharField(allow_null=True),
        "kinds": serializers.ListField(child=serializers.CharField()),
        "checked_at": serializers.DateTimeField(allow_null=True),
        "findings": serializers.ListField(child=serializers.DictField()),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


def _root_of(path: Path) -> Path | None:
    return next((root for root in allowed_roots() if path.is_relative_to(root)), None)


def _queue(request: Request, path: Path, kinds: list[str]) -> Response:
    job = check_job_start(targets=[(path, _root_of(path))], kinds=frozenset(kinds), by=caller(request))
    job.refresh_from_db()  # django-q2's sync mode (tests) has run it already
    return Response(CheckJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def latest_of(path: str) -> dict[str, Any]:
    """The latest check of ``path`` as the API shows it (no secret: masked by the tools)."""
    result = check_latest(path=path)
    if result is None:
        return {"checked": False, "result_id": None, "status": None, "kinds": [], "checked_at": None}
    findings = result.findings.values(
        "tool", "rule_id", "severity", "confidence", "file", "line", "message", "kind"
    )
    return {
        "checked": True,
        "result_id": result.pk,
        "status": result.status,
        "kinds": result.kinds.split(","),
        "checked_at": result.finished_at,
        "findings": list(findings),
        "errors": result.errors,
    }


class ScriptCheckView(APIView):
    """``/api/library/scripts/{id}/check``: POST queues a check, GET the latest result."""

    required_capability = {"get": Capability.READ, "post": Capability.WRITE}

    @extend_schema(responses={200: LATEST_SCHEMA})
    def get(self, request: Request, pk: str) -> Response:
        script = get_object_or_404(Script, pk=pk)
        return Response(latest_of(script.path))

    @extend_schema(request=CheckRequest, responses={202: CheckJobSerializer})
    def post(self, request: Request, pk: str) -> Response:
        script = get_object_or_404(Script, pk=pk)
        body = CheckRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            path = resolve_script(script.path, allowed_roots())
        except PlanError as exc:
            raise serializers.ValidationError({"script": [exc.message]}) from exc
        return _queue(request, path, body.validated_data["kinds"])


class PathCheckView(APIView):
    """``POST /api/library/check``: check a script by path (inside the allowed roots)."""

    required_capability = Capability.WRITE

    @extend_schema(request=PathCheckRequest, responses={202: CheckJobSerializer})
    def post(self, request: Request) -> Response:
        body = PathCheckRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            path = resolve_script(body.validated_data["path"], allowed_roots())
        except PlanError as exc:
            raise serializers.ValidationError({"path": [exc.message]}) from exc
        return _queue(request, path, body.validated_data["kinds"])


class CheckJobView(APIView):
    """``GET /api/library/checks/{id}``: poll an on-demand check."""

    required_capability = Capability.READ

    @extend_schema(responses={200: CheckJobSerializer}, parameters=[])
    def get(self, request: Request, job_id: str) -> Response:
        try:
            pk = uuid.UUID(job_id)
        except ValueError:
            raise NotFound("No such check.") from None
        return Response(CheckJobSerializer(get_object_or_404(CheckJob, pk=pk)).data)
