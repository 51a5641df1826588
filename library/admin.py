"""The library in Django's admin. Writes go through the services, as from the API:
roots are checked against the allowed roots, curated fields and tags are audited."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from core.permissions import caller
from library.models import FolderRoot, Preset, Scan, Script, ScriptChange, Tag
from library.services import (
    LibraryError,
    root_create,
    root_delete,
    root_path_check,
    root_update,
    scan_start,
    script_tag_attach,
    script_tag_detach,
    script_update,
    tag_delete,
)
from library.services.presets import preset_masked
from library.services.roots import _patterns
from library.services.scripts import CURATED_FIELDS, HEX_COLOR


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FolderRootForm(forms.ModelForm[FolderRoot]):
    class Meta:
        model = FolderRoot
        fields = ["name", "path", "include_patterns", "exclude_patterns", "recursive"]

    def clean_path(self) -> str:
        if self.instance.pk:
            return self.instance.path  # never changes (read-only in the form)
        try:
            return str(root_path_check(self.cleaned_data.get("path", "")))
        except LibraryError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("include_patterns", "exclude_patterns"):
            if name in data:
                try:
                    data[name] = _patterns(data[name], name)
                except LibraryError as exc:
                    self.add_error(name, exc.message)
        return data


@admin.register(FolderRoot)
class FolderRootAdmin(admin.ModelAdmin[FolderRoot]):
    form = FolderRootForm
    list_display = ("name", "path", "recursive", "script_count", "missing_count", "created_at")
    list_filter = ("recursive",)
    search_fields = ("name", "path")
    actions = ["rescan"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FolderRoot]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                scripts_n=Count("scripts"),
                missing_n=Count("scripts", filter=Q(scripts__missing_since__isnull=False)),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("path", "created_at", "created_by") if obj is not None else ()

    @admin.display(description="scripts", ordering="scripts_n")
    def script_count(self, root: FolderRoot) -> int:
        return int(getattr(root, "scripts_n", 0))

    @admin.display(description="missing", ordering="missing_n")
    def missing_count(self, root: FolderRoot) -> int:
        return int(getattr(root, "missing_n", 0))

    def save_model(self, request: HttpRequest, obj: FolderRoot, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's)
        data = form.cleaned_data
        if change:
            editable = ("name", "include_patterns", "exclude_patterns", "recursive")
            root_update(root=obj, **{k: data[k] for k in form.changed_data if k in editable})
            return
        created = root_create(
            name=data["name"],
            path=data["path"],
            user=caller(request),
            include_patterns=data.get("include_patterns"),
            exclude_patterns=data.get("exclude_patterns"),
            recursive=data.get("recursive", True),
        )
        obj.pk, obj.path, obj.created_at = created.pk, created.path, created.created_at

    def delete_model(self, request: HttpRequest, obj: FolderRoot) -> None:
        root_delete(root=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FolderRoot]) -> None:
        for root in queryset:
            root_delete(root=root)

    @admin.action(description="Rescan selected roots")
    def rescan(self, request: HttpRequest, queryset: QuerySet[FolderRoot]) -> None:
        started = joined = 0
        for root in queryset:
            _, was_joined = scan_start(root=root, user=caller(request))
            joined += was_joined
            started += not was_joined
        self.message_user(
            request,
            f"Scans started for {started} root(s); {joined} already had a scan running.",
            messages.SUCCESS,
        )


@admin.register(Scan)
class ScanAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "root",
        "state",
        "phase",
        "files_seen",
        "files_added",
        "files_updated",
        "files_missing",
        "files_removed",
        "error_count",
        "created_at",
        "duration",
    )
    list_filter = ("state", "root", "created_at")
    search_fields = ("id", "root__name", "root__path", "message")
    list_select_related = ("root",)
    date_hierarchy = "created_at"


class MissingFilter(admin.SimpleListFilter):
    title = "missing from disk"
    parameter_name = "missing"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Missing"), ("no", "On disk")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(missing_since__isnull=self.value() == "no")
        return queryset


@admin.register(Script)
class ScriptAdmin(admin.ModelAdmin[Script]):
    """Scripts come from scans; only the curated fields and tags are edited (audited)."""

    list_display = (
        "relpath",
        "root",
        "language",
        "status",
        "owner",
        "environment",
        "size",
        "line_count",
        "missing_since",
    )
    list_filter = ("language", "status", "root", "tags", MissingFilter)
    search_fields = ("name", "path", "description")
    filter_horizontal = ("tags",)
    list_select_related = ("root",)
    fields = (
        "root",
        "path",
        "relpath",
        "language",
        "shebang",
        "size",
        "line_count",
        "sha256",
        "description",
        "parameters",
        "is_binary",
        "read_error",
        "parse_error",
        "first_seen",
        "last_scanned_at",
        "missing_since",
        *CURATED_FIELDS,
        "tags",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f not in (*CURATED_FIELDS, "tags"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Script, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's)
        changes = {k: form.cleaned_data[k] for k in form.changed_data if k in CURATED_FIELDS}
        if changes:
            # The form has already set the new values on ``obj``: compare with the row.
            script_update(script=Script.objects.get(pk=obj.pk), user=caller(request), **changes)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:  # noqa: FBT001 (Django's)
        script = form.instance
        wanted = set(form.cleaned_data.get("tags", []))
        current = set(script.tags.all())
        for tag in wanted - current:
            script_tag_attach(script=script, tag=tag, user=caller(request))
        for tag in current - wanted:
            script_tag_detach(script=script, tag=tag, user=caller(request))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class TagForm(forms.ModelForm[Tag]):
    class Meta:
        model = Tag
        fields = ["name", "color", "description"]

    def clean_color(self) -> str:
        color = str(self.cleaned_data.get("color", ""))
        if not HEX_COLOR.match(color):
            raise forms.ValidationError("Use #rrggbb, e.g. #3b82f6.")
        return color.lower()


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin[Tag]):
    form = TagForm
    list_display = ("name", "color", "description", "script_count")
    search_fields = ("name", "description")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(scripts_n=Count("scripts"))

    @admin.display(description="scripts", ordering="scripts_n")
    def script_count(self, tag: Tag) -> int:
        return int(getattr(tag, "scripts_n", 0))

    def delete_model(self, request: HttpRequest, obj: Tag) -> None:
        tag_delete(tag=obj, user=caller(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        for tag in queryset:
            tag_delete(tag=tag, user=caller(request))


@admin.register(ScriptChange)
class ScriptChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "script", "user", "action", "changes")
    list_filter = ("action", "at")
    search_fields = ("script__relpath", "user__username")
    list_select_related = ("script", "user")
    date_hierarchy = "at"


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin[Preset]):
    """Presets are made and changed through the API (which checks them); here they are
    listed, with environment values masked, and can be deleted."""

    list_display = ("name", "script", "owner", "updated_at")
    list_filter = ("updated_at",)
    search_fields = ("name", "script__relpath", "owner__username")
    list_select_related = ("script", "owner")
    fields = ("name", "script", "owner", "options_shown", "created_by", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="options")
    def options_shown(self, obj: Preset) -> str:
        return json.dumps(preset_masked(obj.options), indent=2, sort_keys=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
