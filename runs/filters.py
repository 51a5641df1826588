import django_filters

from runs.models import Run, RunnerStatus, RunStatus


class RunFilter(django_filters.FilterSet):
    """Filters for the runs list (API and dashboard)."""

    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    run_status = django_filters.MultipleChoiceFilter(choices=RunnerStatus.choices)
    script_path = django_filters.CharFilter(lookup_expr="icontains")
    created_by = django_filters.CharFilter(field_name="created_by__username")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    correlation_id = django_filters.UUIDFilter()
    source = django_filters.CharFilter()
    paused = django_filters.BooleanFilter()
    script = django_filters.NumberFilter(field_name="script_id", help_text="Library script id.")

    class Meta:
        model = Run
        fields = [
            "status",
            "run_status",
            "script_path",
            "created_by",
            "created_after",
            "created_before",
            "correlation_id",
            "source",
            "paused",
            "script",
        ]
