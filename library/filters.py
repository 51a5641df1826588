"""Filters for the library lists (API and dashboard): one FilterSet per resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django_filters.widgets import QueryArrayWidget
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

from library.models import Script, ScriptStatus, Tag
from library.selectors import CHECK_FILTERS, scripts_by_check

MAX_VALUES = 100


class MultiValueField(forms.Field):
    """A repeatable query parameter (``?x=a&x=b``), each value coerced and checked."""

    widget = QueryArrayWidget

    def __init__(self, *, coerce: Callable[[str], Any] = str, **kwargs: Any) -> None:
        self.coerce = coerce
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[Any]:
        if value in self.empty_values:
            return []
        values = value if isinstance(value, (list, tuple)) else [value]
        cleaned = [str(v).strip() for v in values if str(v).strip()]
        if len(cleaned) > MAX_VALUES:
            raise forms.ValidationError(f"At most {MAX_VALUES} values.")
        try:
            return [self.coerce(v) for v in cleaned]
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"Not a valid value: {exc}.") from exc


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class MultiValueFilter(django_filters.Filter):  # type: ignore[misc]  # django-filter ships no type information
    """``field IN (values)``; repeat the parameter for several values."""

    field_class = MultiValueField

    def filter(self, qs: QuerySet[Any], value: list[Any]) -> QuerySet[Any]:
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


def _int64(value: str) -> int:
    """An integer a database column can hold: SQLite raises OverflowError (a 500) past 64 bits."""
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"{value} is out of range")
    return number


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class MultiIntFilter(MultiValueFilter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(coerce=_int64, **kwargs)


class ScriptFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    """Filters of the scripts list. Free-text ``search`` and ``ordering`` are the view's
    (DRF's SearchFilter and :class:`StableOrderingFilter`)."""

    language = MultiValueFilter(help_text="Repeatable: any of the languages.")
    # distinct=False: one row per script anyway; DISTINCT made SQLite sort every row.
    status = django_filters.MultipleChoiceFilter(choices=ScriptStatus.choices, distinct=False)
    root_id = MultiIntFilter(field_name="root_id", help_text="Repeatable: any of the roots.")
    owner = MultiValueFilter(help_text="Repeatable: any of the owners (exact).")
    environment = MultiValueFilter(help_text="Repeatable: any of the environments (exact).")
    tag = MultiValueFilter(
        method="filter_tag",
        help_text="A tag id or name (any case). Repeatable: scripts with all of the tags.",
    )
    missing = django_filters.BooleanFilter(method="filter_missing", help_text="Missing from disk.")
    check = django_filters.ChoiceFilter(
        method="filter_check",
        choices=[(value, value) for value in CHECK_FILTERS],
        error_messages={
            "invalid_choice": "Unknown check filter %(value)s; one of: " + ", ".join(CHECK_FILTERS) + "."
        },
        help_text=(
            "The latest pre-run check: clean (nothing found), findings (anything found), secret "
            "(a secret found), high (a high or critical finding, secrets included), error (a tool "
            "gave no answer), not_checked (never checked)."
        ),
    )
    duplicates = django_filters.ChoiceFilter(
        method="filter_duplicates",
        choices=[("name", "name"), ("content", "content")],
        help_text="Only scripts in a duplicate group: same name+size+lines, or same SHA-256.",
    )

    class Meta:
        model = Script
        fields = [
            "language",
            "status",
            "root_id",
            "owner",
            "environment",
            "tag",
            "missing",
            "check",
            "duplicates",
        ]

    def filter_tag(self, qs: QuerySet[Script], name: str, value: list[str]) -> QuerySet[Script]:
        through = Script.tags.through.objects
        for raw in value:
            match = Q(name__iexact=raw)
            if raw.isdigit():
                match |= Q(pk=int(raw))
            # A subquery per tag (not a join): no duplicate rows, no DISTINCT needed.
            tagged = through.filter(tag__in=Tag.objects.filter(match).values("pk")).values("script_id")
            qs = qs.filter(pk__in=tagged)
        return qs

    @extend_schema_field(OpenApiTypes.BOOL)
    def filter_missing(
        self,
        qs: QuerySet[Script],
        name: str,
        value: bool | None,  # noqa: FBT001 (django-filter's)
    ) -> QuerySet[Script]:
        if value is None:
            return qs
        return qs.filter(missing_since__isnull=not value)

    def filter_check(self, qs: QuerySet[Script], name: str, value: str) -> QuerySet[Script]:
        return scripts_by_check(qs, value) if value else qs

    def filter_duplicates(self, qs: QuerySet[Script], name: str, value: str) -> QuerySet[Script]:
        if value == "name":
            twin = Script.objects.filter(
                name=OuterRef("name"), size=OuterRef("size"), line_count=OuterRef("line_count")
            )
        elif value == "content":
            qs = qs.exclude(sha256="")
            twin = Script.objects.filter(sha256=OuterRef("sha256"))
        else:
            return qs
        return qs.filter(Exists(twin.exclude(pk=OuterRef("pk"))))


class TagFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tag
        fields = ["name"]


class StableOrderingFilter(OrderingFilter):
    """DRF's ordering, with the primary key as the last key so that pages never
    repeat or skip rows that tie on the ordered field."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if ordering and not any(f.lstrip("-") in ("pk", "id") for f in ordering):
            ordering.append("-pk" if ordering[-1].startswith("-") else "pk")
        return ordering
