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
from functools import cache
from time import sleep
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from core.precompiled import IN_KEPT_UP_TO, KeptRead, delete_rows

# The sample values the waiting-tasks statement is compiled with (any: they are slots).
_SAMPLE_QUEUE = "scriptops-sample-queue"
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
_LOCK = OrmQ._meta.get_field("lock")


def kept_limit(limit: int) -> int:
    """The power of two at or above ``limit`` (at least 1): the limits compiled."""
    return 1 << max(0, limit - 1).bit_length()


@cache
def _waiting(limit: int) -> KeptRead:
    """Ids of up to ``limit`` tasks of a queue not locked at a time, oldest first."""
    return KeptRead(
        f"core.broker.waiting.{limit}",
        lambda key, lock: OrmQ.objects.filter(key=key, lock__lt=lock).order_by("id").values("id")[:limit],
        samples={"key": _SAMPLE_QUEUE, "lock": _SAMPLE_TIME},
        fields={"lock": _LOCK},
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


_TAKE = KeptRead(
    "core.broker.take",
    lambda ids, key, lock: _takeable(ids, key, lock).values("id", "payload"),
    # No task has these ids: they are slots.
    samples={"ids": [-1 - i for i in range(IN_KEPT_UP_TO)], "key": _SAMPLE_QUEUE, "lock": _SAMPLE_TIME},
    fields={"lock": _LOCK},
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
        ~0.24 ms through the ORM, in a loop on SQLite).

        The limit compiled is ``limit`` rounded up to a power of two, the surplus cut here:
        a runner asks for its free room (up to 100 at a time), which takes every value from
        100 down to 1 as a storm fills the host; compiling a statement for each was ~6 % of
        the runner's CPU in a storm of 200 runs on a host with room for 200 (py-spy)."""
        conn = connections[self.get_connection().db]
        kept = _waiting(kept_limit(limit)).rows(conn, key=self.list_key, lock=timezone.now())
        return [row["id"] for row in kept[:limit]]

    def take(self, ids: list[int]) -> list[tuple[int, str]]:
        """Inside the caller's transaction: lock these tasks (rows another consumer took
        meanwhile are skipped) and delete them; they are the caller's once it commits, and
        back in the queue if it rolls back. One write for a whole delivery: taking, the
        caller's own work (a runner claims the runs) and acknowledging."""
        if not ids:
            return []
        # Statements built once per connection and count: the write lock is held.
        conn = connections[self.get_connection().db]
        found = _TAKE.rows(conn, ids=ids, key=self.list_key, lock=timezone.now())
        rows = [(row["id"], row["payload"]) for row in found]
        delete_rows(OrmQ, where={"id": [pk for pk, _ in rows]})
        return rows
