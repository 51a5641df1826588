from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduler.models import ScheduledTask, TaskEvent, TaskRun
from scheduler.services import TaskError, task_clean, task_enable, task_pause, task_update

# Edited here; the run options and the script are edited through the API (they are
# validated as a run request against the allowed roots there).
EDITABLE = (
    "name",
    "description",
    "enabled",
    "owner",
    "schedule_type",
    "interval_seconds",
    "cron",
    "timezone",
    "depends_on",
    "overlap_policy",
    "max_concurrent",
    "misfire_policy",
)


class TaskAdminForm(forms.ModelForm[ScheduledTask]):
    """Checks a change with the same rules as the API (schedule, dependency cycles, …)."""

    class Meta:
        model = ScheduledTask
        fields = EDITABLE

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        data = self.service_data()
        try:
            task_clean(task=self.instance if self.instance.pk else None, data=data)
        except TaskError as exc:
            for name, problems in exc.errors.items():
                target = name if name in self.fields else None
                for problem in problems:
                    self.add_error(target, problem)
        return cleaned

    def service_data(self) -> dict[str, Any]:
        data = {name: self.cleaned_data.get(name) for name in EDITABLE if name in self.cleaned_data}
        if "depends_on" in data:
            data["depends_on"] = [t.pk for t in data["depends_on"] or []]
        return data


class TaskEventInline(admin.TabularInline[TaskEvent, ScheduledTask]):
    model = TaskEvent
    extra = 0


@admin.register(ScheduledTask)
class ScheduledTaskAdmin(admin.ModelAdmin[ScheduledTask]):
    """Tasks are created through the API or the dashboard (the script and its run options
    are checked against the allowed roots there); here they can be edited and toggled."""

    form = TaskAdminForm
    list_display = (
        "name",
        "enabled",
        "schedule_type",
        "schedule_text",
        "overlap_policy",
        "next_run_at",
        "owner",
        "updated_at",
    )
    list_filter = ("enabled", "schedule_type", "overlap_policy", "misfire_policy", "timezone", "owner")
    search_fields = ("name", "description", "script_path", "events__name")
    readonly_fields = ("script", "script_path", "next_run_at", "created_at", "updated_at", "has_webhook")
    filter_horizontal = ("depends_on",)
    inlines = [TaskEventInline]
    actions = ["enable_tasks", "disable_tasks"]
    list_select_related = ("owner",)
    ordering = ("name",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(boolean=True)
    def has_webhook(self, obj: ScheduledTask) -> bool:
        return bool(obj.webhook_hash)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's signature)
        task_update(task=obj, **form.service_data())

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:  # noqa: FBT001 (Django's signature)
        # depends_on was saved by task_update; only the inline events are left.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        for task in queryset:
            task_enable(task=task)
        self.message_user(request, f"Enabled {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        for task in queryset:
            task_pause(task=task)
        self.message_user(request, f"Disabled {queryset.count()} task(s).", messages.SUCCESS)


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin[TaskRun]):
    """The history: read-only (it is written by the scheduler only)."""

    list_display = ("fired_at", "task", "trigger", "event", "outcome", "run", "due_at", "reason")
    list_filter = ("trigger", "outcome", "downstream_handled", "fired_at")
    search_fields = ("task__name", "run__id", "event", "reason")
    date_hierarchy = "fired_at"
    list_select_related = ("task", "run")
    ordering = ("-fired_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in TaskRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
