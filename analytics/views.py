"""Analytics API (issue 12; seed 001's analytics table): thin views over the selectors,
the history services and :mod:`analytics.stats`. Reads need READ, saving baselines and
benchmarks WRITE, cleanup ADMIN. Every query parameter is checked by a serializer first
(a 400 naming it); an unknown script or metric is an empty answer (n 0), not an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.selectors import HistoryFilter
from analytics.serializers import (
    AnomalyQuerySerializer,
    BaselineCreateSerializer,
    BaselineListQuerySerializer,
    BaselineQuerySerializer,
    BaselineSerializer,
    BenchmarkCreateSerializer,
    BenchmarkQuerySerializer,
    BenchmarkSerializer,
    ChartQuerySerializer,
    CleanupQuerySerializer,
    ExportQuerySerializer,
    HistoryQuerySerializer,
    HistoryRowSerializer,
    OverviewQuerySerializer,
    RegressionQuerySerializer,
    ScriptSummaryQuerySerializer,
    SeriesQuerySerializer,
    SparklineQuerySerializer,
)
from analytics.services.history import (
    baseline_delete,
    baseline_save,
    benchmark_create,
    benchmark_regressions,
    history_cleanup,
    history_export_csv,
    history_export_json,
)
from core.errors import InvalidInput, NotFound
from core.permissions import caller
from core.roles import Capability

OBJECT = OpenApiTypes.OBJECT
BAD_PARAMETER = OpenApiResponse(
    description="A parameter is invalid: error validation_error, details name it."
)


def _query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (a form or an empty body: its fields)."""
    data = request.data
    if isinstance(data, QueryDict):
        return data.dict()
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return data


def _stats_call(field: str, compute: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a stats-backed selector; its ValueError (bad method/threshold) is a 400."""
    try:
        result: dict[str, Any] = compute(**kwargs)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from exc
    return result


class HistoryPagination(LimitOffsetPagination):
    """``limit``/``offset`` paging of history rows (``limit`` is checked 1..10000 first)."""

    default_limit = 100
    max_limit = 10_000


class HistoryView(APIView):
    """``GET /api/analytics/history``: recorded points, newest first."""

    required_capability = Capability.READ
    pagination_class = HistoryPagination  # read by the schema generator too

    @extend_schema(
        parameters=[HistoryQuerySerializer],
        responses={200: HistoryRowSerializer(many=True), 400: BAD_PARAMETER},
    )
    def get(self, request: Request) -> Response:
        query = _query(HistoryQuerySerializer, request)
        filters = HistoryFilter(
            script_path=query.get("script_path"),
            metric=query.get("metric"),
            days=query["days"],
            status=query.get("status"),
            source=query.get("source"),
        )
        paginator = self.pagination_class()
        rows: Any = selectors.history_list(filters)  # tuples: the stubs expect model rows
        page: list[tuple[Any, ...]] | None = paginator.paginate_queryset(rows, request, view=self)
        assert page is not None  # default_limit is set
        return paginator.get_paginated_response(selectors.history_page_rows(page))


class HistoryStatsView(APIView):
    """``GET /api/analytics/history/stats``: row counts, date range, metrics per script,
    database size."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OBJECT})
    def get(self, request: Request) -> Response:
        return Response(selectors.history_stats())


class TrendsView(APIView):
    """``GET /api/analytics/trends``: least-squares trend of a metric over ``days``."""

    required_capability = Capability.READ

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        query = _query(SeriesQuerySerializer, request)
        return Response(selectors.trend_report(**query))


class AnomaliesView(APIView):
    """``GET /api/analytics/anomalies``: values outside the usual range (iqr, zscore, mad)."""

    required_capability = Capability.READ

    @extend_schema(parameters=[AnomalyQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        query = _query(AnomalyQuerySerializer, request)
        query.setdefault("threshold", None)
        return Response(_stats_call("threshold", selectors.anomaly_report, **query))


class BaselineView(APIView):
    """``GET /api/analytics/baseline``: a script's baseline, computed now;
    ``POST``: computed and saved under a name (``load_baseline`` of a run uses it)."""

    required_capability = {"get": Capability.READ, "post": Capability.WRITE}

    @extend_schema(parameters=[BaselineQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        query = _query(BaselineQuerySerializer, request)
        query.setdefault("metric", None)
        return Response(_stats_call("method", selectors.baseline_report, **query))

    @extend_schema(
        request=BaselineCreateSerializer,
        responses={
            201: BaselineSerializer,
            400: OpenApiResponse(
                description="A field is invalid, or the script has no history in the window."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = BaselineCreateSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        saved = baseline_save(**body.validated_data, user=caller(request))
        return Response(BaselineSerializer(saved).data, status=status.HTTP_201_CREATED)


class BaselineListView(APIView):
    """``GET /api/analytics/baselines``: saved baselines (of one script with ``script_path``)."""

    required_capability = Capability.READ

    @extend_schema(parameters=[BaselineListQuerySerializer], responses={200: BaselineSerializer(many=True)})
    def get(self, request: Request) -> Response:
        query = _query(BaselineListQuerySerializer, request)
        return Response(
            BaselineSerializer(selectors.baselines(script_path=query.get("script_path")), many=True).data
        )


@extend_schema(parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)])
class BaselineDetailView(APIView):
    """``DELETE /api/analytics/baselines/{id}``."""

    required_capability = {"delete": Capability.WRITE}

    @extend_schema(responses={204: None, 404: OpenApiResponse(description="No such baseline.")})
    def delete(self, request: Request, pk: str) -> Response:
        baseline_delete(baseline_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class _FormatIsTheFile(DefaultContentNegotiation):
    """``?format=csv`` names the export's file format, not one of DRF's renderers (whose
    format override would answer 404 for it): an unknown format keeps every renderer, for
    the error answers."""

    def filter_renderers(self, renderers: Iterable[BaseRenderer], format: str) -> list[BaseRenderer]:
        renderers = list(renderers)
        return [r for r in renderers if r.format == format] or renderers


EXPORT_PARAMETERS = [ExportQuerySerializer]
EXPORT_ANSWER = {
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR, description="CSV: recorded_at,script_path,run_id,status,source,metric,value"
    ),
    (200, "application/json"): OpenApiResponse(
        HistoryRowSerializer(many=True), description="A JSON array of history rows."
    ),
    400: BAD_PARAMETER,
}


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


async def _pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks of a sync generator, one at a time, each made on the request's own
    sync thread (thread-sensitive: the generator holds that thread's database cursor)."""
    step = sync_to_async(_next_chunk, thread_sensitive=True)
    try:
        while (chunk := await step(chunks)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)  # a generator: its cursor is closed now
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


def _stream(request: Request, chunks: Iterator[bytes]) -> Iterator[bytes] | AsyncIterator[bytes]:
    """What to stream for this server. Under ASGI (daphne, what ``serve`` runs) Django
    reads a *sync* iterator to its end before sending a byte, a million rows in memory:
    there it gets an async iterator pulling one chunk at a time. Under WSGI (and the
    sync test client) the generator itself."""
    if isinstance(request._request, ASGIRequest):
        return _pulled(chunks)
    return chunks


class ExportView(APIView):
    """``GET|POST /api/analytics/export``: the filtered history as a CSV or JSON download,
    streamed oldest first (a million rows never sit in memory). POST takes the same
    fields as a JSON body; ``days`` absent exports everything."""

    required_capability = Capability.READ
    content_negotiation_class = _FormatIsTheFile

    def _export(self, request: Request, data: Any) -> HttpResponseBase:
        query = ExportQuerySerializer(data=data)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        filters = HistoryFilter(
            script_path=params.get("script_path"),
            metric=params.get("metric"),
            days=params.get("days"),
            status=params.get("status"),
            source=params.get("source"),
        )
        if params["format"] == "csv":
            chunks, content_type = history_export_csv(filters), "text/csv; charset=utf-8"
        else:
            chunks, content_type = history_export_json(filters), "application/json"
        response = StreamingHttpResponse(_stream(request, chunks), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="scriptops-history.{params["format"]}"'
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(parameters=EXPORT_PARAMETERS, responses=EXPORT_ANSWER)
    def get(self, request: Request) -> HttpResponseBase:
        return self._export(request, request.query_params)

    @extend_schema(
        request=ExportQuerySerializer,
        responses=EXPORT_ANSWER,
        description="The same as GET, with the filters in a JSON body (or the query string).",
    )
    def post(self, request: Request) -> HttpResponseBase:
        return self._export(request, {**request.query_params.dict(), **_body(request)})


BENCHMARK_NAMES = inline_serializer(
    "BenchmarkNames",
    {
        "names": inline_serializer(
            "BenchmarkName",
            {
                "name": serializers.CharField(),
                "latest_version": serializers.IntegerField(),
                "script_path": serializers.CharField(),
                "created_at": serializers.DateTimeField(),
            },
            many=True,
        )
    },
)


class BenchmarksView(APIView):
    """``GET /api/analytics/benchmarks``: the names (``{"names": [...]}``), or with
    ``name`` the versions of one (``{"name", "versions": [...]}``, newest first);
    ``POST``: snapshot a script's metrics as the name's next version."""

    required_capability = {"get": Capability.READ, "post": Capability.WRITE}

    @extend_schema(
        parameters=[BenchmarkQuerySerializer],
        responses={
            200: OpenApiResponse(BENCHMARK_NAMES, description="Names; with name: {name, versions: [...]}"),
            404: OpenApiResponse(description="No benchmark of that name."),
        },
    )
    def get(self, request: Request) -> Response:
        query = _query(BenchmarkQuerySerializer, request)
        name = query.get("name")
        if name is None:
            return Response({"names": selectors.benchmark_names()})
        versions = list(selectors.benchmark_versions(name=name))
        if not versions:
            raise NotFound(f"No benchmark {name!r}.")
        return Response({"name": name, "versions": BenchmarkSerializer(versions, many=True).data})

    @extend_schema(
        request=BenchmarkCreateSerializer,
        responses={
            201: BenchmarkSerializer,
            400: OpenApiResponse(
                description="A field is invalid, or the script has no history in the window."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = BenchmarkCreateSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        made = benchmark_create(**body.validated_data, user=caller(request))
        return Response(BenchmarkSerializer(made).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH)])
class RegressionsView(APIView):
    """``GET /api/analytics/benchmarks/{name}/regressions``: a version against the one
    before it; metrics whose mean grew by more than ``threshold`` % are regressions."""

    required_capability = Capability.READ

    @extend_schema(
        parameters=[RegressionQuerySerializer],
        responses={
            200: OBJECT,
            400: BAD_PARAMETER,
            404: OpenApiResponse(description="No such benchmark/version."),
        },
    )
    def get(self, request: Request, name: str) -> Response:
        query = _query(RegressionQuerySerializer, request)
        return Response(
            benchmark_regressions(name=name, version=query.get("version"), threshold=query["threshold"])
        )


class CleanupView(APIView):
    """``DELETE /api/analytics/cleanup?days=90``: delete older history (admins)."""

    required_capability = {"delete": Capability.ADMIN}

    @extend_schema(
        parameters=[CleanupQuerySerializer],
        responses={
            200: inline_serializer("Cleanup", {"deleted": serializers.IntegerField()}),
            400: BAD_PARAMETER,
        },
    )
    def delete(self, request: Request) -> Response:
        query = _query(CleanupQuerySerializer, request)
        return Response({"deleted": history_cleanup(days=query["days"])})


class ChartView(APIView):
    """``GET /api/analytics/chart``: the Analytics page's chart of one series."""

    required_capability = Capability.READ

    @extend_schema(parameters=[ChartQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        return Response(selectors.chart_data(**_query(ChartQuerySerializer, request)))


class OverviewView(APIView):
    """``GET /api/analytics/overview``: slowest, most failing, most regressed scripts."""

    required_capability = Capability.READ

    @extend_schema(parameters=[OverviewQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        return Response(selectors.overview(**_query(OverviewQuerySerializer, request)))


class SparklinesView(APIView):
    """``GET /api/analytics/sparklines?script_path=a&script_path=b``: the last 20
    durations of each script, oldest first."""

    required_capability = Capability.READ

    @extend_schema(parameters=[SparklineQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        query = _query(SparklineQuerySerializer, request)
        return Response(selectors.sparklines(script_paths=query["script_path"]))


class ExpectedDurationsView(APIView):
    """``GET /api/analytics/expected?script_path=a&script_path=b``: p50/p95 of each
    script's last 30 successful durations and how many there were (``null`` with fewer
    than 3): what a running run's progress, "about 2 min left" and "running longer than
    usual" are measured against."""

    required_capability = Capability.READ

    @extend_schema(parameters=[SparklineQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        query = _query(SparklineQuerySerializer, request)
        return Response(selectors.expected_durations(script_paths=query["script_path"]))


class ScriptSummaryView(APIView):
    """``GET /api/analytics/scripts/summary``: a script's last 30 runs, trend, success rate."""

    required_capability = Capability.READ

    @extend_schema(parameters=[ScriptSummaryQuerySerializer], responses={200: OBJECT, 400: BAD_PARAMETER})
    def get(self, request: Request) -> Response:
        return Response(selectors.script_summary(**_query(ScriptSummaryQuerySerializer, request)))
