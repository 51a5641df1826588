"""Statements compiled once, for checks, reads and writes made many times a second.

Building a queryset and compiling it costs Django far more than the indexed read it
becomes (a runner's control poll and scheduler tick, 10 to 20 times a second, almost always
finding nothing). :func:`exists_statement` compiles the ``EXISTS`` of some querysets
once; the caller keeps the SQL and its parameters and executes them each time.
:func:`values_statement` does the same for a ``.values()`` read with parameters.
:func:`inserts_prepared` compiles the INSERTs of new objects *before* the write
transaction that runs them: SQLite has one writer, and Python's work done while holding
the write lock makes every other writer wait; the text of an INSERT is built once per
shape. :func:`update_rows` is ``filter(...).update(...)`` with an UPDATE built once per
shape (the runner's writes at a run's start and end).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    FloatField,
    ForeignKey,
    IntegerField,
    Model,
    OneToOneField,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    QuerySet,
    SmallAutoField,
    SmallIntegerField,
    TextField,
    UUIDField,
)
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
class KeptRead:
    """A ``.values()`` read made many times with different values, compiled by
    :func:`values_statement` the first time it is made on a connection and kept there
    (:func:`per_connection`).

    ``queryset`` builds it from keyword values; ``samples`` are the values it is compiled
    with, one per slot (any value no other parameter has). A slot whose sample is a list is
    compared with ``IN``: the samples are at least ``IN_KEPT_UP_TO`` distinct values and
    the read is compiled once per list length; an empty or longer list goes through the
    ORM. ``fields`` names the field that prepares a slot's values for the database
    (a UUID primary key, a datetime): :meth:`rows` takes Python values."""

    key: str
    queryset: Callable[..., QuerySet[Any]]
    samples: Mapping[str, Any]
    fields: Mapping[str, Field[Any, Any]] = field(default_factory=dict)
    # The slots compared with ``IN`` (their samples are lists).
    lists: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        lists = tuple(name for name, sample in self.samples.items() if isinstance(sample, list))
        object.__setattr__(self, "lists", lists)

    def rows(self, connection: BaseDatabaseWrapper, **values: Any) -> list[dict[str, Any]]:
        """The rows ``queryset(**values).values(...)`` gives on ``connection``."""
        lengths = tuple(len(values[name]) for name in self.lists)
        if any(length == 0 or length > IN_KEPT_UP_TO for length in lengths):
            return list(self.queryset(**values).using(connection.alias))
        key = ".".join([self.key, *map(str, lengths)])
        statement = per_connection(connection, key, partial(self._compile, lengths))
        return statement.rows(**self._slots(values, connection))

    def _prepare(self, name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
        found = self.fields.get(name)
        return value if found is None else found.get_db_prep_value(value, connection)

    def _compile(self, lengths: tuple[int, ...], connection: BaseDatabaseWrapper) -> ValuesStatement:
        samples = {
            **self.samples,
            **{name: self.samples[name][:n] for name, n in zip(self.lists, lengths, strict=True)},
        }
        slots = self._slots(samples, connection)
        return values_statement(self.queryset(**samples), connection=connection, slots=slots)

    def _slots(self, values: Mapping[str, Any], connection: BaseDatabaseWrapper) -> dict[str, Any]:
        """Each slot's database value (``<name>0``, ``<name>1``, … for a list)."""
        slots: dict[str, Any] = {}
        for name, value in values.items():
            if name in self.lists:
                slots.update(in_slots(name, [self._prepare(name, item, connection) for item in value]))
            else:
                slots[name] = self._prepare(name, value, connection)
        return slots


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


# -- a value as an INSERT gets it ---------------------------------------------------------
#
# What ``SQLInsertCompiler`` does for each value (``pre_save_val``, then ``prepare_value``:
# ``get_db_prep_save`` -> ``get_db_prep_value`` -> ``get_prep_value`` -> ``to_python``)
# is a dozen calls a field; a run's row has ~60 fields, and every launch, attempt and
# finish writes rows. For the stock field classes below and a value of the type they
# keep (or None), the chain returns the value itself or one adapter's answer, so that is
# what a preparer returns. Any other value (an expression, a string for a UUID, a naive
# datetime that Django warns about) goes Django's way, and so does every value of a field
# of another class, subclasses included (a subclass may prepare differently).
# ``tests/core/test_precompiled.py`` checks every field of every model against Django's
# chain.

_Prepare = Callable[[Any], Any]
_INTEGERS = (
    IntegerField,
    BigIntegerField,
    SmallIntegerField,
    PositiveIntegerField,
    PositiveBigIntegerField,
    PositiveSmallIntegerField,
)


def _value_preparer(f: Field[Any, Any], connection: BaseDatabaseWrapper) -> _Prepare | None:
    """value -> what ``f.get_db_prep_save(value, connection)`` gives, for the values it
    knows; None (the field's class is not one of these) or, called, ``NotImplemented``
    for another value: the caller asks Django."""
    cls = type(f)
    if cls in (CharField, TextField):  # a str subclass (a TextChoices member) as it is
        return lambda v: v if isinstance(v, str) or v is None else NotImplemented
    if cls in _INTEGERS:
        adapt, kind = connection.ops.adapt_integerfield_value, f.get_internal_type()
        return lambda v: adapt(v, kind) if type(v) is int else None if v is None else NotImplemented
    if cls is BooleanField:
        return lambda v: v if type(v) is bool or v is None else NotImplemented
    if cls is FloatField:
        return lambda v: v if type(v) is float or v is None else NotImplemented
    if cls is UUIDField:
        native = connection.features.has_native_uuid_field
        return (
            lambda v: (v if native else v.hex)
            if type(v) is uuid.UUID
            else None
            if v is None
            else NotImplemented
        )
    if cls is DateTimeField:
        if f.auto_now or f.auto_now_add:  # type: ignore[attr-defined]  # DateTimeField's own
            return None  # its pre_save sets the value
        adapt_dt = connection.ops.adapt_datetimefield_value
        return lambda v: (
            adapt_dt(v)
            if type(v) is datetime.datetime and v.utcoffset() is not None
            else None
            if v is None
            else NotImplemented
        )
    if cls in (AutoField, BigAutoField, SmallAutoField):
        validate = connection.ops.validate_autopk_value
        return lambda v: validate(v) if type(v) is int else None if v is None else NotImplemented
    if cls in (ForeignKey, OneToOneField):
        target = _value_preparer(f.target_field, connection)  # type: ignore[attr-defined]  # a related field's
        if target is None:
            return None
        return lambda v: None if v is None else target(v) if v != "" else NotImplemented
    return None


# By (alias, field): its preparer (None: Django's way).
_FIELD_PREPARERS: dict[tuple[str, Field[Any, Any]], _Prepare | None] = {}


def _field_preparer(connection: BaseDatabaseWrapper, f: Field[Any, Any]) -> _Prepare | None:
    key = (connection.alias, f)
    if key not in _FIELD_PREPARERS:
        _FIELD_PREPARERS[key] = _value_preparer(f, connection)
    return _FIELD_PREPARERS[key]


# By (alias, model, field names): a preparer per field (None: Django's way).
_PREPARERS: dict[tuple[str, type[Model], tuple[str, ...]], list[_Prepare | None]] = {}


def _preparers(
    connection: BaseDatabaseWrapper, model: type[Model], fields: Sequence[Field[Any, Any]]
) -> list[_Prepare | None]:
    key = (connection.alias, model, tuple(f.attname for f in fields))
    found = _PREPARERS.get(key)
    if found is None:
        found = _PREPARERS[key] = [_field_preparer(connection, f) for f in fields]
    return found


def _row(
    compiler: Any, fields: Sequence[Field[Any, Any]], preparers: list[_Prepare | None], obj: Model
) -> list[Any]:
    row = []
    for f, prepare in zip(fields, preparers, strict=True):
        if prepare is not None:
            value = prepare(getattr(obj, f.attname))
            if value is not NotImplemented:
                row.append(value)
                continue
        row.append(compiler.prepare_value(f, compiler.pre_save_val(f, obj)))
    return row


# The SQL of an INSERT of ``n`` rows of these fields, by (alias, model, fields, n): the
# statement's text depends on nothing else (``get_placeholder`` fields and expression
# values, whose SQL depends on the value, are compiled each time). Only batches of up
# to _SHAPES_UP_TO rows are kept, so the cache stays a few hundred strings.
_SHAPES: dict[tuple[str, type[Model], tuple[str, ...], int], str] = {}
_SHAPES_UP_TO = 64


def _insert_statements(
    connection: BaseDatabaseWrapper,
    model: type[Model],
    fields: Sequence[Field[Any, Any]],
    objs: Sequence[Model],
) -> list[tuple[str, tuple[Any, ...]]]:
    """The INSERT(s) of ``objs`` that ``bulk_create`` would run, as (sql, params)."""
    query = InsertQuery(model)
    query.insert_values(fields, list(objs), raw=False)
    compiler = query.get_compiler(connection=connection)
    key = (connection.alias, model, tuple(field.attname for field in fields), len(objs))
    sql = _SHAPES.get(key)
    if sql is None and (len(objs) > _SHAPES_UP_TO or any(hasattr(f, "get_placeholder") for f in fields)):
        return [(sql, tuple(params)) for sql, params in compiler.as_sql()]
    # What SQLInsertCompiler.as_sql does for each value, without building the statement.
    preparers = _preparers(connection, model, fields)
    rows = [_row(compiler, fields, preparers, obj) for obj in objs]
    if any(hasattr(value, "as_sql") for row in rows for value in row):
        return [(sql, tuple(params)) for sql, params in compiler.as_sql()]
    if sql is None:
        compiled = compiler.as_sql()
        if len(compiled) != 1:  # one statement a row (no bulk insert): not kept
            return [(sql, tuple(params)) for sql, params in compiled]
        sql, params = compiled[0]
        _SHAPES[key] = sql
        return [(sql, tuple(params))]
    # The parameters as the vendor lays them out (row by row; on PostgreSQL, one array a
    # column for several rows: INSERT … SELECT * FROM UNNEST), as as_sql does.
    _, param_rows = compiler.assemble_as_sql(fields, rows)
    return [(sql, tuple(param for params in param_rows for param in params))]


# By model: the fields an INSERT writes, with the primary key and without an AutoField.
_FIELDS: dict[type[Model], tuple[list[Field[Any, Any]], list[Field[Any, Any]]]] = {}


def _insert_fields(model: type[Model]) -> tuple[list[Field[Any, Any]], list[Field[Any, Any]]]:
    found = _FIELDS.get(model)
    if found is None:
        fields = [f for f in model._meta.concrete_fields if not f.generated]
        found = _FIELDS[model] = (fields, [f for f in fields if not isinstance(f, AutoField)])
    return found


def inserts_prepared(groups: Iterable[Sequence[Model]]) -> PreparedInserts:
    """The INSERTs that ``bulk_create`` would run for each group of new objects (one
    model per group), compiled now: field defaults, ``auto_now_add`` values and related
    ids are filled in, values prepared for the database, batched as ``bulk_create``
    batches. Objects whose primary key the database assigns (an ``AutoField``) do not
    get it back: use this only where nobody reads it (``bulk_create`` otherwise). The
    statement's text is built once per shape (model, fields, rows); only the values are
    prepared each time (a launch's four INSERTs: 0.84 -> 0.57 ms of CPU)."""
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
        fields, fields_without_pk = _insert_fields(model)
        with_pk = [obj for obj in objs if obj.pk is not None]
        without_pk = [obj for obj in objs if obj.pk is None]
        for part, part_fields in ((with_pk, fields), (without_pk, fields_without_pk)):
            if not part:
                continue
            size = max(connection.ops.bulk_batch_size(part_fields, part), 1)
            for start in range(0, len(part), size):
                for sql, params in _insert_statements(
                    connection, model, part_fields, part[start : start + size]
                ):
                    statements.append((alias, sql, params))
        saved.extend((alias, obj) for obj in with_pk)
    return PreparedInserts(tuple(statements), tuple(saved))


# ``UPDATE … SET … WHERE …`` by (alias, model, set fields, where shape).
_UPDATES: dict[tuple[str, type[Model], tuple[str, ...], tuple[str | tuple[str, int], ...]], str] = {}
_DELETES: dict[tuple[str, type[Model], tuple[str | tuple[str, int], ...]], str] = {}
# Where a list is compared (``IN``), statements are kept for lists of up to this many.
IN_KEPT_UP_TO = 16

Where = Sequence[str | tuple[str, int]]


def where_shape(where: Mapping[str, Any]) -> tuple[str | tuple[str, int], ...]:
    """The shape of a WHERE of :func:`update_rows`: a name compared with ``=``, or (name,
    n) for a list of n values compared with ``IN``."""
    return tuple(
        (name, len(value)) if isinstance(value, list | tuple) else name for name, value in where.items()
    )


def update_sql(
    connection: BaseDatabaseWrapper, model: type[Model], names: Sequence[str], where: Where
) -> str:
    """``UPDATE <table> SET <name> = %s, … WHERE <where> = %s AND …`` (names or attnames
    of concrete fields; a where item (name, n) is ``<name> IN (%s, …)``), built once per
    shape. Its parameters: :func:`update_params`."""
    key = (connection.alias, model, tuple(names), tuple(where))
    sql = _UPDATES.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        assignments = ", ".join(f"{qn(_concrete(model, name).column)} = %s" for name in names)
        conditions = _conditions(connection, model, where)
        sql = f"UPDATE {qn(model._meta.db_table)} SET {assignments} WHERE {conditions}"
        if _kept(where):
            _UPDATES[key] = sql  # a longer list's statement is built each time
    return sql


def _conditions(connection: BaseDatabaseWrapper, model: type[Model], where: Where) -> str:
    qn = connection.ops.quote_name
    conditions: list[str] = []
    for item in where:
        if isinstance(item, str):
            conditions.append(f"{qn(_concrete(model, item).column)} = %s")
        else:
            name, count = item
            conditions.append(f"{qn(_concrete(model, name).column)} IN ({', '.join(['%s'] * count)})")
    return " AND ".join(conditions)


def _kept(where: Where) -> bool:
    return all(isinstance(item, str) or item[1] <= IN_KEPT_UP_TO for item in where)


def update_params(
    connection: BaseDatabaseWrapper,
    model: type[Model],
    values: Mapping[str, Any],
    where: Mapping[str, Any],
) -> list[Any]:
    """The parameters of :func:`update_sql`'s statement, prepared as ``QuerySet.update``
    prepares values (``get_db_prep_save``) and an ``exact``/``in`` filter its values. Plain
    values only: an expression, a model instance or a ``None`` to compare with is refused
    (their SQL is not ``= %s``)."""
    params: list[Any] = []
    for name, value in values.items():
        if hasattr(value, "resolve_expression") or isinstance(value, Model):
            raise TypeError(f"{name}: only plain values, not {type(value).__name__}")
        field = _concrete(model, name)
        prepare = _field_preparer(connection, field)  # as get_db_prep_save, for what it knows
        prepared = NotImplemented if prepare is None else prepare(value)
        params.append(field.get_db_prep_save(value, connection) if prepared is NotImplemented else prepared)
    for name, value in where.items():
        field = _concrete(model, name)
        prepare = _field_preparer(connection, field)
        for one in value if isinstance(value, list | tuple) else [value]:
            if one is None or hasattr(one, "resolve_expression") or isinstance(one, Model):
                raise TypeError(f"{name}: a WHERE value must be plain and not None, not {one!r}")
            # For a value that is not None, get_db_prep_save is get_db_prep_value(prepared=False).
            prepared = NotImplemented if prepare is None else prepare(one)
            if prepared is NotImplemented:
                prepared = field.get_db_prep_value(one, connection, prepared=False)
            params.append(prepared)
    return params


def update_rows(model: type[Model], *, values: Mapping[str, Any], where: Mapping[str, Any]) -> int:
    """``model.objects.filter(**where).update(**values)`` — ``=`` on concrete fields, or
    ``IN`` where a value is a list; plain values — with a statement built once per shape
    (the ORM compiles the update each time: ~0.4 ms where executing it takes ~0.1).
    Returns the rows changed."""
    if any(isinstance(value, list | tuple) and not value for value in where.values()):
        return 0  # IN (): nothing matches (the ORM does not run it either)
    connection = connections[router.db_for_write(model)]
    sql = update_sql(connection, model, list(values), where_shape(where))
    params = update_params(connection, model, values, where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def delete_rows(model: type[Model], *, where: Mapping[str, Any]) -> int:
    """``DELETE FROM <table> WHERE …`` (the shapes of :func:`update_rows`), built once per
    shape. No cascade and no signal: only for rows nothing refers to (a queue's tasks).
    Returns the rows deleted."""
    if any(isinstance(value, list | tuple) and not value for value in where.values()):
        return 0
    connection = connections[router.db_for_write(model)]
    shape = where_shape(where)
    key = (connection.alias, model, shape)
    sql = _DELETES.get(key)
    if sql is None:
        table = connection.ops.quote_name(model._meta.db_table)
        sql = f"DELETE FROM {table} WHERE {_conditions(connection, model, shape)}"
        if _kept(shape):
            _DELETES[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, update_params(connection, model, {}, where))
        return int(cursor.rowcount)


def in_slots(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    """Slots of :func:`values_statement` for a list compared with ``IN``: ``<prefix>0``,
    ``<prefix>1``, … (compile the queryset with distinct sample values, one statement per
    list length, kept for lengths up to ``IN_KEPT_UP_TO``)."""
    return {f"{prefix}{i}": value for i, value in enumerate(values)}


def _concrete(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete or field.generated:
        raise ValueError(f"{model.__name__}.{name} is not a concrete field")
    return field
