import django_filters
from django.db.models import QuerySet

from scheduler.models import Outcome, ScheduledTask, ScheduleType, TaskRun, Trigger


class TaskFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    """Filters for the task list (API and dashboard). ``search`` and ``ordering`` come from
    the view's SearchFilter and OrderingFilter."""

    enabled = django_filters.BooleanFilter()
    schedule_type = django_filters.MultipleChoiceFilter(choices=ScheduleType.choices)
    event = django_filters.CharFilter(field_name="events__name", distinct=True)
    owner = django_filters.CharFilter(field_name="owner__username")
    has_webhook = django_filters.BooleanFilter(method="filter_has_webhook")

    class Meta:
        model = ScheduledTask
        fields = ["enabled", "schedule_type", "event", "owner", "has_webhook"]

    def filter_has_webhook(
        self,
        queryset: QuerySet[ScheduledTask],
        name: str,
        value: bool | None,  # noqa: FBT001 (django-filter calls it positionally)
    ) -> QuerySet[ScheduledTask]:
        if value is None:
            return queryset
        return queryset.exclude(webhook_hash="") if value else queryset.filter(webhook_hash="")


class TaskRunFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    """Filters for a task's history."""

    trigger = django_filters.MultipleChoiceFilter(choices=Trigger.choices)
    outcome = django_filters.MultipleChoiceFilter(choices=Outcome.choices)

    class Meta:
        model = TaskRun
        fields = ["trigger", "outcome"]
