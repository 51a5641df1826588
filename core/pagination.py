"""The API's page-number pagination (``?page=`` and ``?page_size=`` up to 1,000)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.pagination import PageNumberPagination

if TYPE_CHECKING:  # DRF's generics import this module (DEFAULT_PAGINATION_CLASS)
    from rest_framework.generics import GenericAPIView

M = TypeVar("M", bound=Model)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


def page_of(view: GenericAPIView[Any], items: QuerySet[M]) -> list[M]:
    """One page of another model's rows than the view's own (a root's scans, a script's
    runs), with the view's paginator; ``view.get_paginated_response`` then answers it."""
    paginator = view.paginator
    assert paginator is not None  # DEFAULT_PAGINATION_CLASS is set
    page: list[M] | None = paginator.paginate_queryset(items, view.request, view=view)
    assert page is not None
    return page
