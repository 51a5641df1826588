"""Statements compiled once from querysets, for checks and reads made many times a second.

Building a queryset and compiling it costs Django far more than the indexed read it
becomes (a runner's control poll and scheduler tick, 10 to 20 times a second, almost always
finding nothing). :func:`exists_statement` compiles the ``EXISTS`` of some querysets
once; the caller keeps the SQL and its parameters and executes them each time.
:func:`values_statement` does the same for a ``.values()`` read with parameters.
:func:`inserts_prepared` compiles the INSERTs of new objects *before* the write
transaction that runs them: SQLite has one writer, and Python's work done while holding
the write lock makes every other writer wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import AutoField, Model, QuerySet
from django.db.models.sql import InsertQuery
from django.db.models.sql.compiler import SQLCompiler


def exists_statement(querysets: Sequence[QuerySet[Any]], *, using: str) -> tuple[str, list[Any]]:
    """``SELECT EXISTS(<first>), EXISTS(<second>), …`` and its parameters, in order."""
    parts: list[str] = []
    params: list[Any] = []
    for queryset in querysets:
        sql, part_params = queryset.order_by().values("pk").query.get_compiler(using=using).as_sql()
        parts.append(f"EXISTS({sql})")
        params.extend(part_params)
    return f"SELECT {', '.join(parts)}", params


@dataclass(frozen=True)
class ValuesStatement:
    """A ``.values()`` queryset compiled once for one connection: its SQL, its parameters
    (some of them slots the caller fills each time) and the converters Django applies to
    the columns (dates from SQLite's text, JSON, …), so the rows are what ``.values()``
    gives, for a fraction of the cost (a run's state read: ~1 ms through the ORM, ~0.07 ms
    like this)."""

    sql: str
    params: tuple[Any, ...]
    slots: Mapping[str, int]
    names: tuple[str, ...]
    compiler: SQLCompiler
    converters: dict[int, Any]

    def rows(self, **values: Any) -> list[dict[str, Any]]:
        """The rows for these slot values (already prepared for the database, as
        ``Field.get_db_prep_value`` prepares them)."""
        params = list(self.params)
        for name, value in values.items():
            params[self.slots[name]] = value
        with self.compiler.connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            fetched: Iterable[Any] = cursor.fetchall()
        if self.converters:
            fetched = self.compiler.apply_converters(fetched, self.converters)
        return [dict(zip(self.names, row, strict=True)) for row in fetched]


T = TypeVar("T")


def per_connection(connection: BaseDatabaseWrapper, key: str, build: Callable[[BaseDatabaseWrapper], T]) -> T:
    """``build(connection)``, made once per connection (each thread has its own) and
    kept on it under ``key``: where compiled statements live."""
    # getattr/setattr, not __dict__: django.db.connection is a proxy that hands attributes
    # on to the current thread's connection (its own __dict__ would be shared by threads).
    kept: dict[str, Any] | None = getattr(connection, "_scriptops_compiled", None)
    if kept is None:
        kept = {}
        setattr(connection, "_scriptops_compiled", kept)  # noqa: B010 - see above
    if key not in kept:
        kept[key] = build(connection)
    found: T = kept[key]
    return found


def values_statement(
    queryset: QuerySet[Any], *, connection: BaseDatabaseWrapper, slots: Mapping[str, Any]
) -> ValuesStatement:
    """Compile ``queryset`` (a ``.values()`` queryset) for ``connection``. ``slots``: a
    name for each parameter to fill later, with the database value the queryset was built
    with (each must appear exactly once among the compiled parameters)."""
    compiler = queryset.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    positions: dict[str, int] = {}
    for name, sample in slots.items():
        found = [i for i, param in enumerate(params) if param == sample]
        if len(found) != 1:
            raise ValueError(f"slot {name!r}: its sample value is parameter {found} of {list(params)}")
        positions[name] = found[0]
    query = queryset.query
    names = (*query.extra_select, *query.values_select, *query.annotation_select)
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    return ValuesStatement(sql, tuple(params), positions, names, compiler, converters)


@dataclass(frozen=True)
class PreparedInserts:
    """INSERT statements compiled by :func:`inserts_prepared`, run by :meth:`execute`."""

    statements: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (alias, sql, params)
    saved: tuple[tuple[str, Model], ...]  # (alias, object) marked saved once executed

    def execute(self) -> None:
        """Run the statements (inside the caller's transaction) and mark the objects
        that have a primary key saved, as ``bulk_create`` does."""
        for alias, sql, params in self.statements:
            with connections[alias].cursor() as cursor:
                cursor.execute(sql, params)
        for alias, obj in self.saved:
            obj._state.adding = False
            obj._state.db = alias


def inserts_prepared(groups: Iterable[Sequence[Model]]) -> PreparedInserts:
    """The INSERTs that ``bulk_create`` would run for each group of new objects (one
    model per group), compiled now: field defaults, ``auto_now_add`` values and related
    ids are filled in, values prepared for the database, batched as ``bulk_create``
    batches. Objects whose primary key the database assigns (an ``AutoField``) do not
    get it back: use this only where nobody reads it (``bulk_create`` otherwise)."""
    statements: list[tuple[str, str, tuple[Any, ...]]] = []
    saved: list[tuple[str, Model]] = []
    for objs in groups:
        if not objs:
            continue
        model = type(objs[0])
        alias = router.db_for_write(model)
        connection = connections[alias]
        opts = model._meta
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="inserts_prepared")  # type: ignore[attr-defined]  # what bulk_create calls; not in django-stubs
            if obj.pk is None and opts.pk.has_default():
                obj.pk = opts.pk.get_default()
        fields = [f for f in opts.concrete_fields if not f.generated]
        with_pk = [obj for obj in objs if obj.pk is not None]
        without_pk = [obj for obj in objs if obj.pk is None]
        for part, part_fields in (
            (with_pk, fields),
            (without_pk, [f for f in fields if not isinstance(f, AutoField)]),
        ):
            size = max(connection.ops.bulk_batch_size(part_fields, part), 1)
            for start in range(0, len(part), size):
                query = InsertQuery(model)
                query.insert_values(part_fields, part[start : start + size], raw=False)
                for sql, params in query.get_compiler(connection=connection).as_sql():
                    statements.append((alias, sql, tuple(params)))
        saved.extend((alias, obj) for obj in with_pk)
    return PreparedInserts(tuple(statements), tuple(saved))
