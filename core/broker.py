"""The task queue's database broker (the default, when ``SCRIPTOPS_REDIS_URL`` is unset).

django-q2's ORM broker locks the tasks it takes one ``UPDATE`` at a time. On SQLite every
write waits for the one write lock, and the cluster's single pusher is what keeps the
workers fed: when 200 scheduled runs are due together, a write per task (queued behind
the workers' own writes) left workers idle waiting for their next task. This broker takes
up to ``bulk`` tasks (the number of workers) with one write: it looks for waiting tasks
without a transaction (an idle queue costs no write lock), then locks the ones it found
in one transaction — rows that another cluster took meanwhile are skipped (row locks on
PostgreSQL, the single writer on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from time import sleep
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from core.precompiled import (
    IN_KEPT_UP_TO,
    ValuesStatement,
    delete_rows,
    in_slots,
    per_connection,
    values_statement,
)

# The sample values the waiting-tasks statement is compiled with (any: they are slots).
_SAMPLE_QUEUE = "scriptops-sample-queue"
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
_LOCK = OrmQ._meta.get_field("lock")


def _compile_waiting(limit: int, conn: BaseDatabaseWrapper) -> ValuesStatement:
    return values_statement(
        OrmQ.objects.using(conn.alias)
        .filter(key=_SAMPLE_QUEUE, lock__lt=_SAMPLE_TIME)
        .order_by("id")
        .values("id")[:limit],
        connection=conn,
        slots={"key": _SAMPLE_QUEUE, "lock": _LOCK.get_db_prep_value(_SAMPLE_TIME, conn)},
    )


def _takeable(ids: Sequence[int], key: str, now: datetime) -> QuerySet[Any]:
    """Tasks ready to be taken among ``ids`` (locked; on PostgreSQL, those that another
    consumer has locked are skipped)."""
    found: QuerySet[Any] = (
        OrmQ.objects.using(Conf.ORM)
        .select_for_update(skip_locked=True)
        .filter(id__in=ids, key=key, lock__lt=now)
        .order_by("id")
    )
    return found


def _compile_take(count: int, conn: BaseDatabaseWrapper) -> ValuesStatement:
    samples = [-1 - i for i in range(count)]  # no task has these ids: they are slots
    return values_statement(
        _takeable(samples, _SAMPLE_QUEUE, _SAMPLE_TIME).values("id", "payload"),
        connection=conn,
        slots={
            "key": _SAMPLE_QUEUE,
            "lock": _LOCK.get_db_prep_value(_SAMPLE_TIME, conn),
            **in_slots("id", samples),
        },
    )


class DatabaseBroker(ORM):  # type: ignore[misc]  # django-q2 ships no type information
    # Tasks taken per dequeue: the cluster's (its worker count) unless a consumer sets its
    # own (a runner host takes as many runs as it has room for).
    bulk: int | None = None

    def dequeue(self) -> list[tuple[int, str]] | None:
        ids = self.waiting(self.bulk or Conf.BULK)
        if not ids:
            sleep(Conf.POLL)  # an empty queue: spare the CPU
            return None
        with transaction.atomic(using=Conf.ORM):
            now = timezone.now()
            rows = list(_takeable(ids, self.list_key, now).values_list("id", "payload"))
            if rows:
                OrmQ.objects.using(Conf.ORM).filter(id__in=[pk for pk, _ in rows]).update(
                    lock=now + timedelta(seconds=Conf.RETRY)
                )
        return rows or None

    def acknowledge_many(self, task_ids: list[int]) -> None:
        """Delete delivered tasks with one statement (django-q2's acknowledge: one each)."""
        if task_ids:
            OrmQ.objects.using(Conf.ORM).filter(id__in=task_ids).delete()

    def waiting(self, limit: int) -> list[int]:
        """Ids of up to ``limit`` tasks ready to be taken, read without a transaction (an
        idle queue costs no write lock). Asked on every tick of every consumer and almost
        always empty: a statement compiled once per connection and limit (~0.02 ms a read,
        ~0.24 ms through the ORM, in a loop on SQLite)."""
        conn = connections[self.get_connection().db]
        statement = per_connection(conn, f"core.broker.waiting.{limit}", partial(_compile_waiting, limit))
        lock = _LOCK.get_db_prep_value(timezone.now(), conn)
        return [row["id"] for row in statement.rows(key=self.list_key, lock=lock)]

    def take(self, ids: list[int]) -> list[tuple[int, str]]:
        """Inside the caller's transaction: lock these tasks (rows another consumer took
        meanwhile are skipped) and delete them; they are the caller's once it commits, and
        back in the queue if it rolls back. One write for a whole delivery: taking, the
        caller's own work (a runner claims the runs) and acknowledging."""
        if not ids:
            return []
        now = timezone.now()
        if len(ids) > IN_KEPT_UP_TO:
            rows = list(_takeable(ids, self.list_key, now).values_list("id", "payload"))
        else:
            # Statements built once per connection and count: the write lock is held.
            conn = connections[self.get_connection().db]
            count = len(ids)
            statement = per_connection(conn, f"core.broker.take.{count}", partial(_compile_take, count))
            slots = {"key": self.list_key, "lock": _LOCK.get_db_prep_value(now, conn), **in_slots("id", ids)}
            rows = [(row["id"], row["payload"]) for row in statement.rows(**slots)]
        delete_rows(OrmQ, where={"id": [pk for pk, _ in rows]})
        return rows
