from typing import Any

import django_filters
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from runs.models import Run, RunnerStatus, RunStatus


class RunFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
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
    # Bounded to a 64-bit integer: SQLite raises OverflowError (a 500) on a larger one.
    script = django_filters.NumberFilter(
        field_name="script_id", help_text="Library script id.", min_value=-(2**63), max_value=2**63 - 1
    )
    latest_per_script = django_filters.ChoiceFilter(  # a typo is a 400, not "no filter"
        choices=(("true", "true"), ("false", "false")),
        method="filter_latest_per_script",
        help_text="Only each script's newest run among those the other filters keep (group by script).",
    )

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
            "latest_per_script",
        ]

    _form_class: type[Any] | None = None

    def get_form_class(self) -> type[Any]:
        # django-filter builds a new form class, and a form field per filter, on every
        # request (~1 ms of the runs list, which dashboards and clients poll). Its fields
        # depend on the filters declared here only (no request-dependent choices), and
        # each form instance deep-copies them, so one class serves every request.
        form_class: type[Any] | None = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = type(self)._form_class = super().get_form_class()
        assert form_class is not None
        return form_class

    def filter_latest_per_script(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        if value != "true":
            return queryset
        # A row number per script, newest first, over what the other filters kept: one
        # pass over those rows (no index on the path: a path may be longer than an index
        # entry may be on PostgreSQL).
        ranked = Window(
            RowNumber(), partition_by=[F("script_path")], order_by=[F("created_at").desc(), F("id").desc()]
        )
        return queryset.annotate(script_rank=ranked).filter(script_rank=1)
