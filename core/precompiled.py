"""Statements compiled once from querysets, for checks made many times a second.

Building a queryset and compiling it costs Django far more than the indexed read it
becomes (a runner's control poll and scheduler tick, 10 to 20 times a second, almost always
finding nothing). :func:`exists_statement` compiles the ``EXISTS`` of some querysets
once; the caller keeps the SQL and its parameters and executes them each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet


def exists_statement(querysets: Sequence[QuerySet[Any]], *, using: str) -> tuple[str, list[Any]]:
    """``SELECT EXISTS(<first>), EXISTS(<second>), …`` and its parameters, in order."""
    parts: list[str] = []
    params: list[Any] = []
    for queryset in querysets:
        sql, part_params = queryset.order_by().values("pk").query.get_compiler(using=using).as_sql()
        parts.append(f"EXISTS({sql})")
        params.extend(part_params)
    return f"SELECT {', '.join(parts)}", params
