from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest

from core.errors import Conflict
from core.humanize import human_bytes, human_duration
from core.permissions import caller
from runs.models import RUN_OPTION_FIELDS, Run, RunAttempt, RunEvent, UploadedScript
from runs.services import run_control


class ReadOnlyInline(admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FiguresShown:
    """Durations as durations, sizes as sizes (the model keeps seconds and bytes)."""

    @admin.display(description="duration", ordering="duration")
    def duration_shown(self, obj: Run | RunAttempt) -> str:
        return human_duration(obj.duration)

    @admin.display(description="peak memory", ordering="peak_rss")
    def peak_rss_shown(self, obj: Run | RunAttempt) -> str:
        return human_bytes(obj.peak_rss)


# Fields shown through FiguresShown / RunAdmin's display methods instead of raw numbers.
SHOWN = {"duration": "duration_shown", "peak_rss": "peak_rss_shown", "cpu_time": "cpu_time_shown"}


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    fields = ("timestamp", "kind", "data")
    readonly_fields = fields


class RunAttemptInline(FiguresShown, ReadOnlyInline):
    model = RunAttempt
    fields = (
        "number",
        "started_at",
        "finished_at",
        "exit_code",
        "run_status",
        "duration_shown",
        "peak_rss_shown",
    )
    readonly_fields = fields


@admin.register(Run)
class RunAdmin(FiguresShown, admin.ModelAdmin[Run]):
    """Run records are read-only here: they change only through the runner (a view
    page, no Save button); the cancel action goes through the runs service."""

    list_display = (
        "id",
        "script_path",
        "status",
        "run_status",
        "paused",
        "exit_code",
        "attempts",
        "duration_shown",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "run_status", "paused", "source", "created_at")
    search_fields = ("id", "script_path", "correlation_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = [RunAttemptInline, RunEventInline]
    actions = ["cancel_runs"]
    exclude = tuple(SHOWN)  # shown by the display methods instead
    list_select_related = ("created_by",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The options (inherited from RunOptions, so listed first by Django) after the
        # script they apply to, as a reader expects: id, script, options, state, figures.
        names = [f.name for f in Run._meta.fields]
        options = [name for name in names if name in RUN_OPTION_FIELDS]
        rest = [name for name in names if name not in RUN_OPTION_FIELDS]
        after = rest.index("resolved_path") + 1
        return [SHOWN.get(name, name) for name in (*rest[:after], *options, *rest[after:])]

    @admin.display(description="CPU time", ordering="cpu_time")
    def cpu_time_shown(self, obj: Run) -> str:
        return human_duration(obj.cpu_time)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        done = skipped = 0
        for run in queryset:
            try:
                run_control(run=run, command="cancel", user=caller(request))
                done += 1
            except Conflict:
                skipped += 1
        self.message_user(
            request,
            f"Cancel requested for {done} run(s); {skipped} already finished.",
            messages.SUCCESS if done else messages.WARNING,
        )


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin[RunEvent]):
    list_display = ("timestamp", "kind", "run")
    list_filter = ("kind",)
    search_fields = ("run__id",)
    list_select_related = ("run",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RunAttempt)
class RunAttemptAdmin(FiguresShown, admin.ModelAdmin[RunAttempt]):
    list_display = ("run", "number", "run_status", "exit_code", "duration_shown", "started_at")
    list_filter = ("run_status",)
    search_fields = ("run__id",)
    list_select_related = ("run",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UploadedScript)
class UploadedScriptAdmin(admin.ModelAdmin[UploadedScript]):
    """The database copies of uploaded scripts (hosts sharing no disk), to see what is
    kept. Read-only, and never their content: a script may hold what an admin page should
    not show. No delete either: what nothing refers to goes by itself (``uploads_sweep``),
    and a row deleted by hand would fail the runs and tasks that still name it."""

    list_display = ("id", "name", "path", "size", "sha256", "created_at")
    fields = list_display
    readonly_fields = list_display
    search_fields = ("id", "name", "path", "sha256")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[UploadedScript]:
        # The size from the database: the list never loads the bytes themselves.
        return super().get_queryset(request).defer("content").annotate(content_size=Length("content"))

    @admin.display(description="size (bytes)", ordering="content_size")
    def size(self, obj: UploadedScript) -> int:
        return int(getattr(obj, "content_size", 0) or 0)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
