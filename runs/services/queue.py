"""The runs' task queue: how a queued run reaches a runner host.

Runs travel through django-q2's broker like every other task (the database by default,
Redis at scale), but on a queue of their own (``settings.RUNS_QUEUE``): the django-q2
cluster's workers never take them; the runner processes (``manage.py runner``,
:mod:`runs.host`) do, as many at once as ``SCRIPTOPS_MAX_RUNS`` allows. In django-q2's
sync mode (tests) the task runs at once, in the caller's thread.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from core import bus

EXECUTE_RUN = "runs.tasks.execute_run"
# Published once runs are queued: runner hosts on the database broker take them at once
# instead of polling the queue table (Redis hands tasks over itself: BLPOP).
QUEUED_CHANNEL = "scriptops:queued"

_broker: Broker | None = None


def runs_broker() -> Broker:
    """The process's broker for the runs queue. Without one, async_task builds a broker
    per call: with Redis, a new connection (TCP connect and handshake) for every run."""
    global _broker
    if _broker is None:
        _broker = get_broker(settings.RUNS_QUEUE)
    return _broker


def _queue_task(run_id: str, broker: Broker | _Packs) -> None:
    async_task(EXECUTE_RUN, run_id, task_name=f"run {run_id}", hook=None, broker=broker)


class _Packs:
    """Stands for the broker in ``async_task``: keeps the signed packages it is given."""

    def __init__(self, list_key: str):
        self.list_key = list_key
        self.packs: list[str] = []

    def enqueue(self, pack: str) -> None:
        self.packs.append(pack)


def runs_queue_rows(run_ids: list[str]) -> list[OrmQ]:
    """The database broker's queue rows for these runs, unsaved: the packages
    ``async_task`` signs, in the rows the ORM broker's ``enqueue`` writes — for a caller
    that writes them in the transaction that creates the runs (and calls
    :func:`runs_queued_announce` in it)."""
    broker = runs_broker()
    packs = _Packs(broker.list_key)
    for run_id in run_ids:
        _queue_task(run_id, packs)
    key = broker.list_key or Conf.CLUSTER_NAME
    return [OrmQ(key=key, payload=pack, lock=timezone.now()) for pack in packs.packs]


def runs_queue(run_ids: list[str]) -> None:
    """Queue one task per run for the runner hosts (each run is claimed by exactly one:
    :func:`runs.services.concurrency.run_claim` is a compare-and-set)."""
    broker = runs_broker()
    for run_id in run_ids:
        _queue_task(run_id, broker)
    if run_ids and not wakes_by_itself(broker):
        runs_queued_announce()


def wakes_by_itself(broker: Broker) -> bool:
    """Whether the runner hosts' wait on this broker ends when a task comes (Redis's
    BLPOP): then no "queued" wake-up is needed. Looked up, not imported: importing the
    Redis broker loads the redis package into every process that imports this module
    (measured, 200 runs on the default install: PSS max 346-349 -> 355-358 MB)."""
    redis_broker = sys.modules.get("django_q.brokers.redis_broker")
    return redis_broker is not None and isinstance(broker, redis_broker.Redis)


def runs_queued_announce() -> None:
    """Wake the runner hosts once the caller's transaction commits (the database broker's
    tasks are rows of that transaction)."""
    transaction.on_commit(lambda: bus.publish(QUEUED_CHANNEL, "q"))
