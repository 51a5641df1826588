"""``GET /api/audit`` (and ``/api/audit/export``): the audit log, for admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from audit.models import AuditEvent
from audit.selectors import CSV_COLUMNS, audit_csv, audit_events
from core.errors import InvalidInput
from core.roles import Capability


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_name", read_only=True)
    actor_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_id",
            "action",
            "object_type",
            "object_id",
            "summary",
            "data",
            "ip",
            "user_agent",
            "request_id",
        ]
        read_only_fields = fields


class _FormatIsTheFile(DefaultContentNegotiation):
    """``?format=csv`` names the download's format, not one of DRF's renderers (whose
    format override would answer 404 for it)."""

    def filter_renderers(self, renderers: Iterable[BaseRenderer], format: str) -> list[BaseRenderer]:
        renderers = list(renderers)
        return [r for r in renderers if r.format == format] or renderers


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


async def _pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """One chunk at a time under ASGI, each made on the request's sync thread (which holds
    the generator's database cursor): daphne would otherwise read it all into memory."""
    step = sync_to_async(_next_chunk, thread_sensitive=True)
    try:
        while (chunk := await step(chunks)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


FILTER_PARAMETERS = [
    OpenApiParameter("actor", OpenApiTypes.STR, description="Username (or user id) of who acted."),
    OpenApiParameter(
        "action", OpenApiTypes.STR, description="Exact action, or a prefix ending in '.' (run.)."
    ),
    OpenApiParameter("object_type", OpenApiTypes.STR),
    OpenApiParameter("object_id", OpenApiTypes.STR),
    OpenApiParameter("since", OpenApiTypes.STR, description="ISO date or date-time (inclusive)."),
    OpenApiParameter("until", OpenApiTypes.STR, description="ISO date or date-time (a date: its whole day)."),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
    OpenApiParameter("page", OpenApiTypes.INT),
    OpenApiParameter("page_size", OpenApiTypes.INT),
]


BAD_FILTER = OpenApiResponse(description="A filter is invalid: error invalid, details name it.")
CSV = OpenApiResponse(OpenApiTypes.STR, description="CSV: " + ",".join(CSV_COLUMNS))


class AuditView(mixins.ListModelMixin, generics.GenericAPIView[AuditEvent]):
    """``GET /api/audit``: the audit log, newest first, paginated; ``?format=csv`` streams
    every matching event as CSV. Admins only; nobody can change it through the API."""

    required_capability = Capability.ADMIN
    serializer_class = AuditEventSerializer
    filter_backends: list[Any] = []  # the filters are the selector's (audit_events)
    content_negotiation_class = _FormatIsTheFile
    formats: tuple[str, ...] = ("json", "csv")

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            return AuditEvent.objects.none()
        return audit_events(filters=self.request.query_params.dict())

    def _format(self, request: Request) -> str:
        wanted = request.query_params.get("format") or self.formats[0]
        if wanted not in self.formats:
            raise InvalidInput("format", f"'format' must be one of: {', '.join(self.formats)}.")
        return wanted

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "application/json"): AuditEventSerializer(many=True),
            (200, "text/csv"): CSV,
            400: BAD_FILTER,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if self._format(request) == "json":
            return self.list(request, *args, **kwargs)
        chunks = audit_csv(self.get_queryset())
        body: Any = _pulled(chunks) if isinstance(request._request, ASGIRequest) else chunks
        response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="scriptops-audit.csv"'
        response["Cache-Control"] = "no-store"
        return response


class AuditExportView(AuditView):
    """``GET /api/audit/export``: the matching events as a CSV download (all of them,
    streamed; the same filters as ``GET /api/audit``)."""

    formats = ("csv",)
    pagination_class = None

    @extend_schema(
        parameters=[p for p in FILTER_PARAMETERS if p.name not in ("page", "page_size", "format")]
        + [OpenApiParameter("format", OpenApiTypes.STR, enum=["csv"])],
        responses={(200, "text/csv"): CSV, 400: BAD_FILTER},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return super().get(request, *args, **kwargs)
