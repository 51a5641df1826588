"""The library API (seed 001's paths): thin views that call services and selectors.

Folder roots and their scans, scripts (curation, content, tags, runs), tags,
duplicates and statistics. ``GET /api/browse`` (seed 003) is in :mod:`library.views_browse`.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Lower
from django.http import HttpResponse, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import page_of
from core.permissions import caller, effective_role
from core.roles import Capability, role_allows
from library.filters import ScriptFilter, StableOrderingFilter, TagFilter
from library.models import SCAN_ACTIVE, FolderRoot, Scan, Script, Tag
from library.selectors import (
    DUPLICATE_KINDS,
    duplicate_groups,
    highlight,
    library_stats,
    script_check_badges,
    script_content,
)
from library.serializers import (
    DuplicatesSerializer,
    FolderRootSerializer,
    RootDeletedSerializer,
    ScanSerializer,
    ScanStartedSerializer,
    ScriptChangeSerializer,
    ScriptDetailSerializer,
    ScriptNotesSerializer,
    ScriptRunSerializer,
    ScriptSerializer,
    ScriptTagsSerializer,
    ScriptUpdateSerializer,
    TagDeletedSerializer,
    TagSerializer,
)
from library.services import (
    root_delete,
    scan_start,
    script_enqueue,
    script_run_check,
    script_tag_attach,
    script_tag_detach,
    tag_delete,
)
from runs.request import dry_run_answer
from runs.serializers import RunSerializer, run_record, run_request_from


def attach_scans(roots: list[FolderRoot]) -> list[FolderRoot]:
    """Give each root its ``last_scan_row`` and ``active_scan_row`` in one query."""
    wanted: set[Any] = set()
    for root in roots:
        wanted.update(
            filter(None, (getattr(root, "last_scan_id", None), getattr(root, "active_scan_id", None)))
        )
    found: dict[Any, Scan] = {scan.pk: scan for scan in Scan.objects.filter(pk__in=wanted)} if wanted else {}
    for root in roots:
        root.last_scan_row = found.get(getattr(root, "last_scan_id", None))  # type: ignore[attr-defined]  # a per-request annotation the serializer reads, not a model field
        root.active_scan_row = found.get(getattr(root, "active_scan_id", None))  # type: ignore[attr-defined]  # a per-request annotation the serializer reads, not a model field
    return roots


def _scan_id(raw: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise exceptions.NotFound(f"No scan {raw}.") from exc


class ListFiltersOnlyMixin(viewsets.GenericViewSet[Any]):
    """Filters, search and ordering apply to the list only: DRF would also apply them when
    looking up one object, so ``GET …/scripts/7?owner=x`` would be a 404."""

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if getattr(self, "action", None) != "list":
            return queryset
        return super().filter_queryset(queryset)


def _with_id(*actions: str) -> Any:
    """The ``id`` path parameter (an integer) on the actions of one object."""
    return extend_schema_view(**{name: extend_schema(parameters=[ID]) for name in actions})


ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)


@_with_id("retrieve", "partial_update", "destroy", "scan", "scan_detail", "scans")
class FolderRootViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[FolderRoot],
):
    """Folder roots: registered by admins, inside ``SCRIPTOPS_ALLOWED_ROOTS`` only."""

    serializer_class = FolderRootSerializer
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]  # no PUT: PATCH edits
    filter_backends: list[Any] = []
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "scans": Capability.READ,
        "scan_detail": Capability.READ,
        "scan": Capability.WRITE,
        "create": Capability.ADMIN,
        "partial_update": Capability.ADMIN,
        "destroy": Capability.ADMIN,
    }

    def get_queryset(self) -> QuerySet[FolderRoot]:
        roots = FolderRoot.objects.order_by("name")
        if self.action not in ("list", "retrieve", "partial_update"):
            return roots
        scans = Scan.objects.filter(root=OuterRef("pk")).order_by("-created_at").values("pk")
        return roots.annotate(
            script_count=Count("scripts"),
            missing_count=Count("scripts", filter=Q(scripts__missing_since__isnull=False)),
            last_scan_id=Subquery(scans.exclude(state__in=SCAN_ACTIVE)[:1]),
            active_scan_id=Subquery(scans.filter(state__in=SCAN_ACTIVE)[:1]),
        )

    def get_object(self) -> FolderRoot:
        root: FolderRoot = super().get_object()
        if self.action in ("retrieve", "partial_update"):
            attach_scans([root])
        return root

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None  # paginated by settings
        data = self.get_serializer(attach_scans(list(page)), many=True).data
        return self.get_paginated_response(data)

    @extend_schema(responses={200: RootDeletedSerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Remove the root and its scripts from the library; nothing on disk is touched."""
        removed = root_delete(root=self.get_object())
        return Response({"deleted": True, "scripts_removed": removed})

    @extend_schema(request=None, responses={202: ScanStartedSerializer})
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, pk: str | None = None) -> Response:
        """Start a background scan; while one is active, the answer joins it (``joined``)."""
        started, joined = scan_start(root=self.get_object(), user=caller(request))
        started.refresh_from_db()
        body = {"scan_id": started.pk, "joined": joined, "scan": started}
        return Response(ScanStartedSerializer(body).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("scan_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: ScanSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"scan/(?P<scan_id>[0-9a-fA-F-]{32,36})",
        url_name="scan-detail",
    )
    def scan_detail(self, request: Request, pk: str | None = None, scan_id: str | None = None) -> Response:
        """Poll one scan of this root (404 if the scan belongs to another root)."""
        root = self.get_object()
        scan = get_object_or_404(Scan, pk=_scan_id(scan_id), root=root)
        return Response(ScanSerializer(scan).data)

    @extend_schema(responses={200: ScanSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"])
    def scans(self, request: Request, pk: str | None = None) -> Response:
        """The scans of this root, newest first."""
        root = self.get_object()
        page = page_of(self, Scan.objects.filter(root=root).order_by("-created_at", "-pk"))
        return self.get_paginated_response(ScanSerializer(page, many=True).data)


class ContentFormat(serializers.Serializer[Any]):
    format = serializers.ChoiceField(
        choices=["text", "json", "html"],
        default="text",
        help_text="text: the raw file (text/plain); json: {content}; html: Pygments-highlighted.",
    )


@_with_id(
    "retrieve",
    "partial_update",
    "status",
    "notes",
    "history",
    "content",
    "tag_attach",  # also documents tag_detach: a DELETE mapped onto the same route
    "run",
    "runs",
)
class ScriptViewSet(
    ListFiltersOnlyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Script],
):
    """Scripts found by scans: list and search, curate, read, tag and run."""

    serializer_class = ScriptSerializer
    lookup_value_regex = r"\d+"
    filterset_class = ScriptFilter
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]
    # A script's name is the end of its relpath: searching relpath covers it, and each
    # field dropped is one LIKE less per row and term (the search reads every row).
    search_fields = ["relpath", "description"]
    ordering_fields = ["name", "relpath", "size", "line_count", "mtime", "language", "status", "updated_at"]
    ordering = ["relpath"]
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "notes": Capability.READ,
        "history": Capability.READ,
        "content": Capability.READ,
        "runs": Capability.READ,
        "partial_update": Capability.WRITE,
        "status": Capability.WRITE,
        "tag_attach": Capability.WRITE,
        "tag_detach": Capability.WRITE,
        "run": Capability.EXECUTE,
    }

    def get_queryset(self) -> QuerySet[Script]:
        if self.action == "list":
            # No join: the count and the page read the scripts table alone (roots' names
            # are added to the page below, tags come in one query).
            return Script.objects.prefetch_related("tags")
        return Script.objects.select_related("root").prefetch_related("tags")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page: Sequence[Script] | None
        if request.query_params.get(SearchFilter.search_param, "").strip():
            page = self._search_page(queryset)
        else:
            page = self.paginate_queryset(queryset)
        assert page is not None  # paginated by settings
        root_ids = {script.root_id for script in page}
        names = dict(FolderRoot.objects.filter(pk__in=root_ids).values_list("pk", "name"))
        badges = script_check_badges(paths=[script.path for script in page])
        for script in page:
            script.root_name = names.get(script.root_id, "")  # type: ignore[attr-defined]  # a per-request annotation the serializer reads, not a model field
            script.check_badge = badges[script.path]  # type: ignore[attr-defined]  # as root_name
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def _search_page(self, queryset: QuerySet[Script]) -> builtins.list[Script]:
        """One page of a free-text search, reading the table once instead of twice.

        A search has to read every row (``LIKE '%term%'``); paginating the queryset
        would do so twice, once for the count and once for the page. Here the ordered
        ids of all matches come from one scan, the count is their number, and the page's
        rows are fetched by primary key.
        """
        ids = list(queryset.values_list("pk", flat=True))
        page_ids = self.paginate_queryset(ids)
        assert page_ids is not None
        rows = {
            script.pk: script
            for script in queryset.model.objects.filter(pk__in=page_ids).prefetch_related("tags")
        }
        return [rows[pk] for pk in page_ids if pk in rows]

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        if self.action == "list":
            return ScriptSerializer
        return ScriptDetailSerializer

    def perform_content_negotiation(
        self,
        request: Request,
        force: bool = False,  # noqa: FBT001, FBT002 (DRF's signature)
    ) -> tuple[BaseRenderer, str]:
        # ``format`` of the content action is its own parameter (text|json|html), not
        # DRF's renderer override: answers are JSON (or a plain HttpResponse for text).
        if getattr(self, "action", None) == "content":
            renderer = JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def _curate(self, request: Request) -> Response:
        script = self.get_object()
        serializer = ScriptUpdateSerializer(
            script, data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(ScriptDetailSerializer(self.get_object()).data)

    @extend_schema(request=ScriptUpdateSerializer, responses={200: ScriptDetailSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change curated fields (status, owner, environment, notes, max_concurrent); audited."""
        return self._curate(request)

    @extend_schema(request=ScriptUpdateSerializer, responses={200: ScriptDetailSerializer})
    @action(detail=True, methods=["put"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        """Seed 001's ``PUT …/status``: the same partial update of the curated fields."""
        return self._curate(request)

    @extend_schema(responses={200: ScriptNotesSerializer})
    @action(detail=True, methods=["get"])
    def notes(self, request: Request, pk: str | None = None) -> Response:
        return Response(ScriptNotesSerializer(self.get_object()).data)

    @extend_schema(responses={200: ScriptChangeSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """The audit trail of curated fields and tags, newest first."""
        script = self.get_object()
        page = page_of(self, script.changes.select_related("user").order_by("-at", "-id"))
        return self.get_paginated_response(ScriptChangeSerializer(page, many=True).data)

    @extend_schema(
        parameters=[ContentFormat],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="The file, UTF-8."),
            (200, "application/json"): OpenApiTypes.OBJECT,
            (409, "application/json"): OpenApiResponse(description="Now outside its root."),
            (410, "application/json"): OpenApiResponse(description="Gone from disk."),
            (413, "application/json"): OpenApiResponse(description="Larger than the content cap."),
            (415, "application/json"): OpenApiResponse(description="Binary, not UTF-8 text."),
        },
    )
    @action(detail=True, methods=["get"])
    def content(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """The file's text, read fresh from disk, only while it is inside its root.

        ``format=text`` (default) answers ``text/plain; charset=utf-8``; ``json`` answers
        ``{id, path, size, language, content}``; ``html`` answers the Pygments-highlighted
        ``{id, path, language, lexer, html, css}``.
        """
        query = ContentFormat(data=request.query_params)
        query.is_valid(raise_exception=True)
        script = self.get_object()
        text = script_content(script)
        fmt = query.validated_data["format"]
        if fmt == "text":
            return HttpResponse(text, content_type="text/plain; charset=utf-8")
        base = {"id": script.pk, "path": script.path, "language": script.language}
        if fmt == "json":
            return Response({**base, "size": len(text.encode()), "content": text})
        return Response({**base, **highlight(script, text)})

    def _tags(self, script: Script) -> Response:
        tags = script.tags.order_by(Lower("name"), "pk")
        return Response(ScriptTagsSerializer({"tags": tags}).data)

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("tag_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: ScriptTagsSerializer},
    )
    @action(detail=True, methods=["post"], url_path=r"tags/(?P<tag_id>\d+)", url_name="tag")
    def tag_attach(self, request: Request, pk: str | None = None, tag_id: str | None = None) -> Response:
        """Attach a tag (nothing changes if it is attached already); answers the script's tags."""
        script = self.get_object()
        script_tag_attach(script=script, tag=get_object_or_404(Tag, pk=tag_id), user=caller(request))
        return self._tags(script)

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("tag_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: ScriptTagsSerializer},
    )
    @tag_attach.mapping.delete
    def tag_detach(self, request: Request, pk: str | None = None, tag_id: str | None = None) -> Response:
        """Detach a tag (nothing changes if it was not attached); answers the script's tags."""
        script = self.get_object()
        script_tag_detach(script=script, tag=get_object_or_404(Tag, pk=tag_id), user=caller(request))
        return self._tags(script)

    @extend_schema(
        request=ScriptRunSerializer,
        responses={
            202: RunSerializer,
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="dry_run: the plan"),
            403: OpenApiResponse(description="force=true by a non-admin."),
            409: OpenApiResponse(description="Archived (without force), or missing from disk."),
        },
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Queue a run of the script with the options of ``POST /api/run`` (its own path).

        ``force=true`` (admins only) runs an archived script. The script's
        ``max_concurrent`` holds across every worker: runs beyond it wait queued, in order,
        with ``wait_reason`` set.
        """
        script = self.get_object()
        data = request.data.dict() if isinstance(request.data, QueryDict) else request.data
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Expected a JSON object with the run request's fields."]}
            )
        for name in ("script_path", "path"):
            if name in data:
                raise serializers.ValidationError(
                    {name: ["Not allowed here: the library script's own path is used."]}
                )
        try:
            raw_force: Any = data.get("force", False)
            force = serializers.BooleanField().to_internal_value(raw_force)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"force": exc.detail}) from exc
        if force and not role_allows(effective_role(request) or "", Capability.ADMIN):
            raise exceptions.PermissionDenied("Only an admin may force a run (force=true).")
        script_run_check(script=script, force=force)
        options = {name: value for name, value in data.items() if name != "force"}
        run_request = run_request_from({**options, "script_path": script.path})
        if run_request.dry_run:
            return Response({**dry_run_answer(run_request), "script": script.pk})
        run = script_enqueue(
            script=script, params=run_request.run_fields(), user=caller(request), force=force
        )
        return Response(run_record(run), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: RunSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """The runs launched from this script, newest first."""
        script = self.get_object()
        runs = script.runs.select_related("created_by").order_by("-created_at")
        page = page_of(self, runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)


@_with_id("retrieve", "partial_update", "destroy")
class TagViewSet(
    ListFiltersOnlyMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Tag],
):
    """Coloured tags; names are unique whatever their case."""

    serializer_class = TagSerializer
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]  # no PUT: PATCH edits
    filterset_class = TagFilter
    filter_backends = [DjangoFilterBackend, StableOrderingFilter]
    ordering_fields = ["name", "created_at", "script_count"]
    ordering = None  # the queryset's: by name, whatever its case
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "create": Capability.WRITE,
        "partial_update": Capability.WRITE,
        "destroy": Capability.WRITE,
    }

    def get_queryset(self) -> QuerySet[Tag]:
        return Tag.objects.annotate(script_count=Count("scripts")).order_by(Lower("name"), "pk")

    @extend_schema(responses={200: TagDeletedSerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Delete the tag; it is detached from its scripts first (recorded on each)."""
        detached = tag_delete(tag=self.get_object(), user=caller(request))
        return Response({"deleted": True, "detached_from": detached})


class DuplicatesQuery(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=[*DUPLICATE_KINDS, "all"], default="name")


class DuplicatesView(APIView):
    """``GET /api/library/duplicates``: groups of scripts that look like copies."""

    required_capability = Capability.READ

    @extend_schema(parameters=[DuplicatesQuery], responses={200: DuplicatesSerializer})
    def get(self, request: Request) -> Response:
        """``kind=name``: same name, size and line count (seed 001); ``content``: same
        SHA-256; ``all``: both lists. Largest groups first, each with its members."""
        query = DuplicatesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        kind = query.validated_data["kind"]
        groups: list[dict[str, Any]] = []
        for each in DUPLICATE_KINDS if kind == "all" else (kind,):
            groups += duplicate_groups(kind=each)
        return Response({"kind": kind, "groups": groups, "group_count": len(groups)})


class StatsView(APIView):
    """``GET /api/library/stats``: counts by language, status, root and tag; totals; duplicates."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(library_stats())
