"""INSERTs compiled before the write transaction (``core.precompiled.inserts_prepared``)
write exactly the rows ``bulk_create`` writes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from core.precompiled import inserts_prepared
from runs.models import EventKind, Run, RunEvent

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
