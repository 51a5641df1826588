"""The library's API shapes: folder roots, scans, scripts, tags, the audit trail.

Writes go through :mod:`library.services`; these serializers only check the shape of
the input (types, lengths, unknown fields); a service's :class:`LibraryError` reaches
the client as a 400 naming the field through the one exception handler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from library.models import FolderRoot, Scan, Script, ScriptChange, ScriptStatus, Tag
from library.selectors import script_check_badges
from library.services import (
    root_create,
    root_update,
    script_update,
    tag_create,
    tag_update,
)
from runs.serializers import RunRequestSerializer


class StrictFieldsMixin(serializers.Serializer[Any]):
    """Unknown fields are a 400 naming each of them, never silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(str(k) for k in data if k not in writable and k != "csrfmiddlewaretoken")
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown or read-only field {name!r}."] for name in unknown}
                )
        return super().to_internal_value(data)


# Choice fields named like another app's (``status``, ``kind``, ``type``) would make
# drf-spectacular rename the existing enum components (and warn): the library's are
# documented as patterns instead, and checked by the field (or by the service).
@extend_schema_field(
    {"type": "string", "pattern": "^(" + "|".join(ScriptStatus.values) + ")$", "example": "active"}
)
class ScriptStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ScriptStatus.choices, **kwargs)


# -- scans ---------------------------------------------------------------------------------


class ScanSerializer(serializers.ModelSerializer[Scan]):
    """One scan of a root: state, phase, progress, counters, errors, timings."""

    root_id = serializers.IntegerField(read_only=True)
    progress = serializers.SerializerMethodField(
        help_text="Percent of the found files processed; null while the folder is still being walked."
    )
    duration = serializers.FloatField(read_only=True, allow_null=True, help_text="Seconds (so far).")

    class Meta:
        model = Scan
        fields = [
            "id",
            "root_id",
            "state",
            "phase",
            "progress",
            "files_total",
            "files_processed",
            "files_seen",
            "files_added",
            "files_updated",
            "files_unchanged",
            "files_missing",
            "files_removed",
            "files_skipped",
            "error_count",
            "errors",
            "timings",
            "message",
            "created_at",
            "started_at",
            "finished_at",
            "duration",
        ]
        read_only_fields = fields

    def get_progress(self, scan: Scan) -> int | None:
        if scan.state == "completed":
            return 100
        if scan.files_total is None:
            return None
        if scan.files_total == 0:
            return 100
        return min(100, int(100 * scan.files_processed / scan.files_total))


# -- folder roots --------------------------------------------------------------------------


class FolderRootSerializer(StrictFieldsMixin, serializers.ModelSerializer[FolderRoot]):
    """A folder root. ``path`` is set when the root is created and never changes.

    ``last_scan`` is the newest finished scan, ``active_scan`` the queued or running one.
    """

    name = serializers.CharField(max_length=200)
    path = serializers.CharField(max_length=4096, trim_whitespace=False)
    include_patterns = serializers.ListField(child=serializers.CharField(max_length=500), required=False)
    exclude_patterns = serializers.ListField(child=serializers.CharField(max_length=500), required=False)
    recursive = serializers.BooleanField(required=False, default=True)
    script_count = serializers.IntegerField(read_only=True, default=0)
    missing_count = serializers.IntegerField(read_only=True, default=0)
    last_scan = serializers.SerializerMethodField()
    active_scan = serializers.SerializerMethodField()

    class Meta:
        model = FolderRoot
        fields = [
            "id",
            "name",
            "path",
            "include_patterns",
            "exclude_patterns",
            "recursive",
            "created_at",
            "script_count",
            "missing_count",
            "last_scan",
            "active_scan",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_path(self, value: str) -> str:
        if self.instance is not None and value != self.instance.path:
            raise serializers.ValidationError(
                "The path of a folder root cannot change: register a new root instead."
            )
        return value

    @extend_schema_field(ScanSerializer(allow_null=True))
    def get_last_scan(self, root: FolderRoot) -> dict[str, Any] | None:
        scan = getattr(root, "last_scan_row", None)
        return ScanSerializer(scan).data if scan is not None else None

    @extend_schema_field(ScanSerializer(allow_null=True))
    def get_active_scan(self, root: FolderRoot) -> dict[str, Any] | None:
        scan = getattr(root, "active_scan_row", None)
        return ScanSerializer(scan).data if scan is not None else None

    def create(self, validated_data: dict[str, Any]) -> FolderRoot:
        return root_create(user=self.context["request"].user, **validated_data)

    def update(self, instance: FolderRoot, validated_data: dict[str, Any]) -> FolderRoot:
        validated_data.pop("path", None)  # unchanged (validate_path)
        return root_update(root=instance, **validated_data)


class ScanStartedSerializer(serializers.Serializer[Any]):
    """The answer to ``POST …/scan``: the scan started or joined."""

    scan_id = serializers.UUIDField()
    joined = serializers.BooleanField(help_text="True when a scan of the root was already active.")
    scan = ScanSerializer()


class RootDeletedSerializer(serializers.Serializer[Any]):
    deleted = serializers.BooleanField()
    scripts_removed = serializers.IntegerField()


# -- tags ----------------------------------------------------------------------------------


class TagBriefSerializer(serializers.ModelSerializer[Tag]):
    class Meta:
        model = Tag
        fields = ["id", "name", "color"]
        read_only_fields = fields


class TagSerializer(StrictFieldsMixin, serializers.ModelSerializer[Tag]):
    """A tag. Names are unique whatever their case; ``color`` is ``#rrggbb``."""

    name = serializers.CharField(max_length=64)
    # Lengths are checked by the service, whose messages say what a colour looks like.
    color = serializers.CharField(max_length=100, required=False, help_text="#rrggbb")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    script_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Tag
        fields = ["id", "name", "color", "description", "created_at", "script_count"]
        read_only_fields = ["id", "created_at"]

    def create(self, validated_data: dict[str, Any]) -> Tag:
        return tag_create(**validated_data)

    def update(self, instance: Tag, validated_data: dict[str, Any]) -> Tag:
        return tag_update(tag=instance, **validated_data)


class TagDeletedSerializer(serializers.Serializer[Any]):
    deleted = serializers.BooleanField()
    detached_from = serializers.IntegerField(help_text="Scripts the tag was detached from.")


class ScriptTagsSerializer(serializers.Serializer[Any]):
    tags = TagBriefSerializer(many=True)


# -- scripts -------------------------------------------------------------------------------


class ScriptSerializer(serializers.ModelSerializer[Script]):
    """A script as listed: what the scan read, the curated fields, its tags."""

    root_id = serializers.IntegerField(read_only=True)
    root_name = serializers.SerializerMethodField()
    mtime = serializers.SerializerMethodField(help_text="The file's modification time (ISO 8601).")
    tags = TagBriefSerializer(many=True, read_only=True)
    status = ScriptStatusField(read_only=True)
    missing = serializers.SerializerMethodField(help_text="The file was not found by the last scan.")
    parameters_count = serializers.SerializerMethodField()
    check = serializers.SerializerMethodField(
        help_text='The latest pre-run check: "secret found", "2 high", "1 medium", "clean", '
        '"error: <tools>" (a tool gave no answer) or "not checked".'
    )

    class Meta:
        model = Script
        fields = [
            "id",
            "root_id",
            "root_name",
            "path",
            "relpath",
            "name",
            "extension",
            "language",
            "size",
            "line_count",
            "sha256",
            "mtime",
            "description",
            "status",
            "owner",
            "environment",
            "max_concurrent",
            "tags",
            "missing",
            "missing_since",
            "parameters_count",
            # Non-empty when the file does not parse (a Python syntax error): not healthy.
            "parse_error",
            "check",
        ]
        read_only_fields = fields

    def get_root_name(self, script: Script) -> str:
        # Annotated by the list's queryset (no join per row); the detail loads the root.
        name = getattr(script, "root_name", None)
        return str(name) if name is not None else script.root.name

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_mtime(self, script: Script) -> str | None:
        if not script.mtime:
            return None
        return datetime.fromtimestamp(script.mtime, tz=UTC).isoformat()

    def get_missing(self, script: Script) -> bool:
        return script.missing_since is not None

    def get_parameters_count(self, script: Script) -> int:
        return len(script.parameters) if isinstance(script.parameters, list) else 0

    def get_check(self, script: Script) -> str:
        # Set for a whole page in one query by the list; one script's page reads its own.
        badge = getattr(script, "check_badge", None)
        if badge is None:
            badge = script_check_badges(paths=[script.path])[script.path]
        return str(badge)


class ScriptLastRunSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class ScriptDetailSerializer(ScriptSerializer):
    """A script's page: the list item plus what the scan read in full and its runs."""

    run_count = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()

    class Meta(ScriptSerializer.Meta):
        fields = [
            *ScriptSerializer.Meta.fields,
            "shebang",
            "is_binary",
            "read_error",
            "notes",
            "parameters",
            "first_seen",
            "last_scanned_at",
            "updated_at",
            "run_count",
            "last_run",
        ]
        read_only_fields = fields

    def get_run_count(self, script: Script) -> int:
        return script.runs.count()

    @extend_schema_field(ScriptLastRunSerializer(allow_null=True))
    def get_last_run(self, script: Script) -> Any:
        return script.runs.order_by("-created_at").values("id", "status", "created_at").first()


class ScriptUpdateSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """The curated fields (all optional); every change is audited with the user."""

    status = ScriptStatusField(required=False)
    owner = serializers.CharField(max_length=150, required=False, allow_blank=True)
    environment = serializers.CharField(max_length=64, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=100_000, required=False, allow_blank=True, trim_whitespace=False)
    max_concurrent = serializers.IntegerField(
        min_value=1,
        max_value=10_000,
        required=False,
        allow_null=True,
        help_text="Runs of this script at once across all workers; null = unlimited, 1 = exclusive.",
    )

    def update(self, instance: Script, validated_data: dict[str, Any]) -> Script:
        return script_update(script=instance, user=self.context["request"].user, **validated_data)


class ScriptNotesSerializer(serializers.ModelSerializer[Script]):
    class Meta:
        model = Script
        fields = ["id", "notes"]
        read_only_fields = fields


class ScriptChangeSerializer(serializers.ModelSerializer[ScriptChange]):
    """One audit entry: ``changes`` is ``{field: [old, new]}`` or ``{tag: name}``."""

    user: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = ScriptChange
        fields = ["id", "at", "user", "action", "changes"]
        read_only_fields = fields


class ScriptRunSerializer(RunRequestSerializer):
    """``POST /api/library/scripts/{id}/run``: the options of ``POST /api/run`` plus ``force``
    (the OpenAPI shape; the view cleans the request with ``runs.request``).

    The script's own path is used: the view fills ``script_path`` in, and refuses a
    ``script_path`` or ``path`` sent by the client.
    """

    force = serializers.BooleanField(
        default=False, help_text="Run even if the script is archived (admins only)."
    )


class DuplicateGroupSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="name | content")
    key = serializers.DictField(help_text="{name, size, line_count} or {sha256}.")
    count = serializers.IntegerField()
    scripts = serializers.ListField(child=serializers.DictField())


class DuplicatesSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="name | content | all")
    groups = DuplicateGroupSerializer(many=True)
    group_count = serializers.IntegerField()


class BrowseItemSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    path = serializers.CharField()
    type = serializers.CharField(help_text="file | folder")
    size = serializers.IntegerField(required=False, help_text="Files only: bytes.")
    mtime = serializers.FloatField(allow_null=True, help_text="Seconds since the epoch.")


class BrowseSerializer(serializers.Serializer[Any]):
    success = serializers.BooleanField()
    path = serializers.CharField(allow_null=True)
    parent = serializers.CharField(allow_null=True, help_text="Null at an allowed root.")  # type: ignore[assignment]  # the stubs type every Field.parent as a serializer; here it is the API field "parent"
    items = BrowseItemSerializer(many=True)
    total = serializers.IntegerField(required=False, help_text="Entries in the folder.")
    truncated = serializers.BooleanField(
        required=False, help_text="True when only the first 2,000 entries (folders first) are listed."
    )
