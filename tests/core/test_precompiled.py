"""INSERTs compiled before the write transaction (``core.precompiled.inserts_prepared``)
write exactly the rows ``bulk_create`` writes; UPDATEs built once per shape
(``update_rows``) change exactly what ``QuerySet.update`` changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.models import (
    BigAutoField,
    BooleanField,
    CharField,
    DateTimeField,
    F,
    FloatField,
    ForeignKey,
    IntegerField,
    PositiveIntegerField,
    TextField,
    UUIDField,
)
from django.db.models.functions import Now
from django.db.models.sql import InsertQuery
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from core.precompiled import (
    IN_KEPT_UP_TO,
    KeptRead,
    _value_preparer,
    delete_rows,
    inserts_prepared,
    update_rows,
)
from library.models import Preset
from runs.models import EventKind, Run, RunAttempt, RunEvent, RunStatus

pytestmark = pytest.mark.django_db

SKIP = {"id", "run_id", "correlation_id", "created_at", "timestamp", "at"}


def _runs(n: int, user: Any, tag: str) -> list[Run]:
    return [
        Run(
            script_path=f"/srv/{tag}{i}.sh",
            args=[str(i), "x y"],
            env_vars={"A": "1"},
            created_by=user,
            source="api",
        )
        for i in range(n)
    ]


def _rows(queryset: Any) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k not in SKIP} for row in queryset.order_by("script_path").values()
    ]


def test_the_rows_are_those_bulk_create_writes(user_for: Any) -> None:
    alice = user_for("executor")
    bulk = Run.objects.bulk_create(_runs(3, alice, "a"))
    prepared = _runs(3, alice, "b")
    events = [RunEvent(run=run, kind=EventKind.QUEUED, data={"source": "api", "n": 1.5}) for run in prepared]
    audits = [
        AuditEvent(actor=alice, actor_name="alice", action="run.launch", data={"k": [1]}) for _ in range(2)
    ]

    inserts = inserts_prepared([prepared, events, audits])
    assert Run.objects.filter(script_path__startswith="/srv/b").count() == 0  # compiled, not run
    with transaction.atomic():
        inserts.execute()

    ours = _rows(Run.objects.filter(script_path__startswith="/srv/b"))
    theirs = _rows(Run.objects.filter(script_path__startswith="/srv/a"))
    assert [dict(r, script_path=r["script_path"].replace("/srv/b", "/srv/a")) for r in ours] == theirs
    # Primary keys made in Python are the rows'; the objects are saved ones now.
    for run in prepared:
        assert not run._state.adding
        run.refresh_from_db()
        assert run.created_by_id == alice.pk
        assert list(run.events.values_list("kind", "data")) == [
            (EventKind.QUEUED, {"source": "api", "n": 1.5})
        ]
    assert Run.objects.get(pk=bulk[0].pk).args == ["0", "x y"]
    assert (
        list(AuditEvent.objects.filter(action="run.launch").values_list("actor_id", "data"))
        == [(alice.pk, {"k": [1]})] * 2
    )


def test_more_rows_than_one_statement_holds_are_batched_as_bulk_create_batches(user_for: Any) -> None:
    fields = [f for f in Run._meta.concrete_fields if not f.generated]
    over = connection.ops.bulk_batch_size(fields, [None] * 1000) + 7  # SQLite: 999 variables a statement
    runs = _runs(min(over, 1007), user_for("executor"), "c")
    per_statement = connection.ops.bulk_batch_size(fields, runs)  # PostgreSQL: all in one
    inserts = inserts_prepared([runs])
    expected = -(-len(runs) // per_statement)
    assert len(inserts.statements) == expected
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        inserts.execute()
    assert sum(q["sql"].startswith("INSERT") for q in queries.captured_queries) == expected
    assert Run.objects.filter(script_path__startswith="/srv/c").count() == len(runs)


def test_a_rolled_back_transaction_leaves_nothing(user_for: Any) -> None:
    runs = _runs(2, user_for("executor"), "d")
    inserts = inserts_prepared([runs, [RunEvent(run=run, kind=EventKind.QUEUED) for run in runs]])

    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        inserts.execute()
        assert Run.objects.filter(script_path__startswith="/srv/d").count() == 2
        raise Refused
    assert Run.objects.filter(script_path__startswith="/srv/d").count() == 0
    assert RunEvent.objects.filter(run_id__in=[run.pk for run in runs]).count() == 0


def test_an_unsaved_related_object_is_refused_as_bulk_create_refuses_it() -> None:
    run = Run(script_path="/srv/e.sh")
    event = RunEvent(run=run, kind=EventKind.QUEUED)
    event.run = Run(script_path="/srv/e.sh", id=None)  # no primary key: cannot be referred to
    with pytest.raises(ValueError, match="unsaved related object 'run'"):
        inserts_prepared([[event]])


def test_a_statement_kept_from_an_earlier_call_writes_the_new_values(user_for: Any) -> None:
    alice = user_for("executor")
    first, second = _runs(1, alice, "f"), _runs(1, alice, "g")
    second[0].args, second[0].env_vars = ["other"], {"B": "2"}
    for runs in (first, second):  # the same shape: the second call reuses the first's SQL
        with transaction.atomic():
            inserts_prepared(
                [runs, [RunEvent(run=runs[0], kind=EventKind.QUEUED, data={"n": len(runs)})]]
            ).execute()
    stored = Run.objects.get(pk=second[0].pk)
    assert (stored.script_path, stored.args, stored.env_vars) == ("/srv/g0.sh", ["other"], {"B": "2"})
    assert Run.objects.get(pk=first[0].pk).args == ["0", "x y"]
    assert RunEvent.objects.filter(run__in=[first[0], second[0]]).count() == 2


def test_a_kept_statement_of_several_rows_gets_its_values_as_the_database_takes_them(user_for: Any) -> None:
    # On PostgreSQL several rows are one array a column (INSERT … SELECT * FROM UNNEST).
    runs = _runs(2, user_for("executor"), "k")
    with transaction.atomic():
        inserts_prepared([runs]).execute()
        for n in (1, 2):  # the second call reuses the first's statement
            events = [
                RunEvent(run=run, kind=EventKind.QUEUED, data={"n": n, "i": i}) for i, run in enumerate(runs)
            ]
            inserts_prepared([events]).execute()
    assert sorted(RunEvent.objects.filter(run__in=runs).values_list("data__n", "data__i")) == [
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
    ]


def test_an_expression_value_is_compiled_as_bulk_create_compiles_it(user_for: Any) -> None:
    run = _runs(1, user_for("executor"), "h")[0]
    with transaction.atomic():
        inserts_prepared([[run]]).execute()
        inserts_prepared([[RunEvent(run=run, kind=EventKind.QUEUED, timestamp=Now())]]).execute()
    assert RunEvent.objects.get(run=run).timestamp is not None


def _started(tag: str, user: Any) -> list[Run]:
    runs = _runs(2, user, tag)
    Run.objects.bulk_create(runs)
    Run.objects.filter(pk__in=[run.pk for run in runs]).update(status=RunStatus.RUNNING)
    return runs


def test_update_rows_changes_what_the_querysets_update_changes(user_for: Any) -> None:
    ours, theirs = _started("u", user_for("executor"))
    values = {
        "status": RunStatus.COMPLETED,
        "exit_code": 0,
        "duration": 1.25,
        "peak_rss": None,
        "output_truncated": True,
        "error_summary": None,
        "env_vars": {"K": "v"},
        "finished_at": Run.objects.get(pk=ours.pk).created_at,
    }
    running = {"status": RunStatus.RUNNING}
    assert update_rows(Run, values=values, where={"pk": ours.pk, **running}) == 1
    assert Run.objects.filter(pk=theirs.pk, **running).update(**values) == 1
    [mine], [reference] = _rows(Run.objects.filter(pk=ours.pk)), _rows(Run.objects.filter(pk=theirs.pk))
    assert mine == dict(reference, script_path=mine["script_path"], args=mine["args"])
    # A compare-and-set that no longer holds changes nothing, as the queryset's.
    assert update_rows(Run, values={"exit_code": 9}, where={"pk": ours.pk, **running}) == 0
    assert Run.objects.get(pk=ours.pk).exit_code == 0


def test_update_rows_filters_by_a_foreign_key_and_another_field(user_for: Any) -> None:
    run = _started("v", user_for("executor"))[0]
    started = Run.objects.get(pk=run.pk).created_at
    RunAttempt.objects.bulk_create([RunAttempt(run=run, number=n, started_at=started) for n in (1, 2)])
    assert update_rows(RunAttempt, values={"exit_code": 3}, where={"run": str(run.pk), "number": 2}) == 1
    assert list(RunAttempt.objects.filter(run=run).values_list("number", "exit_code")) == [(1, None), (2, 3)]


@pytest.mark.parametrize(
    ("values", "where", "error"),
    [
        ({"exit_code": F("exit_code") + 1}, {"pk": "x"}, "only plain values"),
        ({"exit_code": 1}, {"exit_code": None}, "must be plain and not None"),
        ({"events": 1}, {"pk": "x"}, "not a concrete field"),
    ],
)
def test_update_rows_refuses_what_it_cannot_write_as_column_equals_value(
    values: dict[str, Any], where: dict[str, Any], error: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        update_rows(Run, values=values, where=where)


@pytest.mark.parametrize("count", [2, IN_KEPT_UP_TO + 2])  # a kept statement, and one built each time
def test_update_rows_and_delete_rows_compare_a_list_with_in(user_for: Any, count: int) -> None:
    runs = _runs(count + 1, user_for("executor"), "w")
    Run.objects.bulk_create(runs)
    chosen, left = [run.pk for run in runs[:count]], runs[count].pk

    for _ in range(2):  # the second time from the kept statement
        assert (
            update_rows(Run, values={"exit_code": 7}, where={"pk": chosen, "status": RunStatus.QUEUED})
            == count
        )
    assert update_rows(Run, values={"exit_code": 8}, where={"pk": []}) == 0  # IN (): nothing, not an error
    assert Run.objects.filter(exit_code=7).count() == count
    assert Run.objects.get(pk=left).exit_code is None

    RunEvent.objects.bulk_create([RunEvent(run=run, kind=EventKind.QUEUED) for run in runs])
    events = list(RunEvent.objects.filter(run__in=runs).order_by("id").values_list("id", flat=True))
    assert delete_rows(RunEvent, where={"id": events[:count]}) == count
    assert delete_rows(RunEvent, where={"id": []}) == 0
    assert list(RunEvent.objects.filter(run__in=runs).values_list("id", flat=True)) == events[count:]


# -- KeptRead: a .values() read compiled once per connection --------------------------


def _by_ids_and_status(ids: Any, status: Any) -> Any:
    return Run.objects.filter(pk__in=ids, status=status).order_by("script_path").values("id", "script_path")


BY_IDS_AND_STATUS = KeptRead(
    "tests.kept.by_ids_and_status",
    _by_ids_and_status,
    samples={"ids": [uuid.UUID(int=i + 1) for i in range(IN_KEPT_UP_TO)], "status": "sample-status"},
    fields={"ids": Run._meta.pk},
)
SINCE = KeptRead(
    "tests.kept.since",
    lambda at: Run.objects.filter(created_at__gte=at).order_by("script_path").values("script_path"),
    samples={"at": datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)},
    fields={"at": Run._meta.get_field("created_at")},
)


def _kept_keys() -> set[str]:
    return {key for key in getattr(connection, "_scriptops_compiled", {}) if key.startswith("tests.kept.")}


@pytest.mark.parametrize("count", [1, 3, IN_KEPT_UP_TO, IN_KEPT_UP_TO + 1, 40])
def test_a_kept_read_gives_the_rows_the_queryset_gives_for_any_list_length(user_for: Any, count: int) -> None:
    runs = Run.objects.bulk_create(_runs(count + 2, user_for("executor"), "k"))
    Run.objects.filter(pk=runs[1].pk).update(status=RunStatus.RUNNING)
    ids = [str(run.pk) for run in runs[:count]]  # Python values, strings as callers hold them

    for status in (RunStatus.QUEUED, RunStatus.RUNNING, "nothing"):
        got = BY_IDS_AND_STATUS.rows(connection, ids=ids, status=status)
        assert got == list(_by_ids_and_status(ids, status))
    assert len(BY_IDS_AND_STATUS.rows(connection, ids=ids, status=RunStatus.QUEUED)) == count - (count > 1)
    # Compiled once for this list length; a longer list than is kept goes through the ORM.
    assert (f"tests.kept.by_ids_and_status.{count}" in _kept_keys()) is (count <= IN_KEPT_UP_TO)


def test_a_kept_read_of_an_empty_list_matches_nothing(user_for: Any) -> None:
    Run.objects.bulk_create(_runs(2, user_for("executor"), "e"))
    assert BY_IDS_AND_STATUS.rows(connection, ids=[], status=RunStatus.QUEUED) == []


def test_a_kept_read_is_compiled_once_and_reads_fresh_values_each_time(user_for: Any) -> None:
    alice = user_for("executor")
    Run.objects.bulk_create(_runs(2, alice, "old"))
    cutoff = timezone.now()
    assert SINCE.rows(connection, at=cutoff) == []
    kept = connection._scriptops_compiled["tests.kept.since"]  # type: ignore[attr-defined]
    Run.objects.bulk_create(_runs(2, alice, "new"))
    with CaptureQueriesContext(connection) as queries:
        got = SINCE.rows(connection, at=cutoff)
    assert got == [{"script_path": "/srv/new0.sh"}, {"script_path": "/srv/new1.sh"}]
    assert len(queries) == 1
    assert connection._scriptops_compiled["tests.kept.since"] is kept  # type: ignore[attr-defined]
    # A datetime slot is prepared by its field, as the ORM prepares it.
    assert SINCE.rows(connection, at=cutoff - timedelta(days=1)) == list(
        Run.objects.order_by("script_path").values("script_path")
    )


class _Text(str):
    """A str subclass (as a TextChoices member is)."""


def _samples() -> list[Any]:
    aware = datetime(2026, 12, 6, 21, 40, 1, 123456, tzinfo=UTC)
    return [
        None,
        "",
        "x y",
        _Text("safe"),
        0,
        7,
        -3,
        2**40,
        True,
        False,
        1.5,
        0.0,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        str(uuid.UUID("12345678-1234-5678-1234-567812345678")),
        aware,
        aware.astimezone(timezone.get_fixed_timezone(120)),
        aware.replace(tzinfo=None),  # naive: Django warns and makes it aware
        F("id"),
        Now(),
    ]


def _django_prepares(f: Any, value: Any) -> Any:
    """What SQLInsertCompiler does for one value of ``f`` (raw=False)."""
    compiler = InsertQuery(f.model).get_compiler(connection=connection)
    return compiler.prepare_value(f, value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Django's warning for the naive datetime
def test_every_fields_preparer_gives_what_djangos_chain_gives_or_hands_the_value_to_it() -> None:
    """For every concrete field of every model: a preparer's answer, when it gives one, is
    Django's (value and type, on this test run's database); a value it does not know it
    leaves to Django. The stock classes the shortcut covers are all in use."""
    covered: set[type] = set()
    compared = 0
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            prepare = _value_preparer(f, connection)
            if prepare is None:
                continue
            covered.add(type(f))
            for value in _samples():
                ours = prepare(value)
                if ours is NotImplemented:
                    continue
                theirs = _django_prepares(f, value)
                assert (ours, type(ours)) == (theirs, type(theirs)), (model.__name__, f.name, value)
                if value is not None:  # what update_params compares a WHERE value with
                    theirs = f.get_db_prep_value(value, connection, prepared=False)
                    assert (ours, type(ours)) == (theirs, type(theirs)), (model.__name__, f.name, value)
                compared += 1
            # What the shortcut must leave to Django: expressions.
            assert prepare(F("id")) is NotImplemented
            assert prepare(Now()) is NotImplemented
    assert compared > 500
    for kind in (CharField, TextField, IntegerField, PositiveIntegerField, BooleanField, FloatField):
        assert kind in covered, kind
    for kind in (UUIDField, DateTimeField, ForeignKey, BigAutoField):
        assert kind in covered, kind


def test_fields_whose_pre_save_makes_the_value_or_of_other_classes_go_djangos_way() -> None:
    updated = Preset._meta.get_field("updated_at")
    assert updated.auto_now  # type: ignore[attr-defined]
    assert _value_preparer(updated, connection) is None
    assert _value_preparer(Run._meta.get_field("env_vars"), connection) is None  # a JSONField

    class Shouting(CharField):  # a subclass may prepare its own way
        pass

    shouting = Shouting(max_length=5)
    shouting.set_attributes_from_name("shout")
    assert _value_preparer(shouting, connection) is None
