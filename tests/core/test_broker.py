"""The database broker (core.broker): a batch of tasks per write, never one twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ

from core.broker import DatabaseBroker, kept_limit
from core.precompiled import IN_KEPT_UP_TO

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> DatabaseBroker:
    monkeypatch.setattr(Conf, "BULK", 4)
    monkeypatch.setattr(Conf, "POLL", 0.001)
    return DatabaseBroker(list_key="test-queue")


def test_the_default_configuration_uses_it() -> None:
    if settings.REDIS_URL:
        pytest.skip("SCRIPTOPS_REDIS_URL is set: the Redis broker is used")
    assert settings.Q_CLUSTER["broker_class"] == "core.broker.DatabaseBroker"
    assert isinstance(get_broker(), DatabaseBroker)


def test_dequeue_takes_up_to_bulk_tasks_oldest_first_and_locks_them(broker: DatabaseBroker) -> None:
    ids = [broker.enqueue(f"payload-{i}") for i in range(6)]

    first = broker.dequeue()
    second = broker.dequeue()

    assert first == [(pk, f"payload-{i}") for i, pk in enumerate(ids[:4])]
    assert second == [(pk, f"payload-{i + 4}") for i, pk in enumerate(ids[4:])]
    # Taken tasks stay locked (for the cluster's retry time) until acknowledged.
    soon = timezone.now() + timedelta(days=1)
    assert OrmQ.objects.filter(pk__in=ids, lock__gt=soon).count() == 6
    assert broker.dequeue() is None  # nothing left: none is handed out twice
    broker.acknowledge(ids[0])
    assert not OrmQ.objects.filter(pk=ids[0]).exists()


def test_tasks_locked_elsewhere_and_other_queues_are_left_alone(broker: DatabaseBroker) -> None:
    mine = broker.enqueue("mine")
    taken = broker.enqueue("taken by another cluster")
    OrmQ.objects.filter(pk=taken).update(lock=timezone.now() + timedelta(hours=1))
    DatabaseBroker(list_key="another-queue").enqueue("theirs")

    assert broker.dequeue() == [(mine, "mine")]
    assert broker.dequeue() is None
    assert broker.queue_size() == 0 and broker.lock_size() == 2


def test_waiting_lists_ready_tasks_oldest_first_up_to_the_limit(broker: DatabaseBroker) -> None:
    # A statement compiled once per connection and limit, its queue and time filled in
    # each call: each limit, queue and lock must still be honoured.
    ids = [broker.enqueue(f"payload-{i}") for i in range(5)]
    OrmQ.objects.filter(pk=ids[1]).update(lock=timezone.now() + timedelta(minutes=5))
    DatabaseBroker(list_key="another-queue").enqueue("theirs")

    assert broker.waiting(2) == [ids[0], ids[2]]
    assert broker.waiting(10) == [ids[0], *ids[2:]]
    assert broker.waiting(2) == [ids[0], ids[2]]
    assert DatabaseBroker(list_key="empty-queue").waiting(10) == []
    # Ready again once its lock has passed.
    OrmQ.objects.filter(pk=ids[1]).update(lock=timezone.now() - timedelta(seconds=1))
    assert broker.waiting(10) == ids


def test_waiting_compiles_one_statement_per_power_of_two_of_the_limit(broker: DatabaseBroker) -> None:
    # A runner asks for its free room (up to 100): every value down to 1 as a storm fills
    # the host. Each limit is still honoured, from statements compiled for 1, 2, 4, ... 128.
    ids = [broker.enqueue(f"payload-{i}") for i in range(70)]
    before = kept_statements("core.broker.waiting.")

    for limit in range(100, 0, -1):
        assert broker.waiting(limit) == ids[:limit]

    powers = {f"core.broker.waiting.{2**i}" for i in range(8)}
    assert kept_statements("core.broker.waiting.") - before <= powers
    assert {"core.broker.waiting.1", "core.broker.waiting.128"} <= kept_statements("core.broker.waiting.")
    assert [kept_limit(n) for n in (0, 1, 2, 3, 4, 5, 127, 128, 129)] == [1, 1, 2, 4, 4, 8, 128, 128, 256]


def kept_statements(prefix: str) -> set[str]:
    kept = getattr(connection, "_scriptops_compiled", None) or {}
    return {key for key in kept if key.startswith(prefix)}


@pytest.mark.parametrize("count", [1, 3, IN_KEPT_UP_TO + 4])  # a kept statement, and one built each time
def test_take_deletes_the_ready_tasks_it_returns_and_leaves_the_others(
    broker: DatabaseBroker, count: int
) -> None:
    ids = [broker.enqueue(f"payload-{i}") for i in range(count + 2)]
    locked, other = ids[0], DatabaseBroker(list_key="another-queue").enqueue("theirs")
    OrmQ.objects.filter(pk=locked).update(lock=timezone.now() + timedelta(minutes=5))
    asked = [*ids[:count], other]  # the locked one, ready ones and another queue's

    for _ in range(2):  # the second time the statements are the kept ones
        with transaction.atomic():
            taken = broker.take(asked)
        assert taken == [(pk, f"payload-{i}") for i, pk in enumerate(ids[:count]) if pk != locked]
        assert set(OrmQ.objects.values_list("pk", flat=True)) == {locked, other, *ids[count:]}
        OrmQ.objects.bulk_create(
            [OrmQ(id=pk, key="test-queue", payload=p, lock=timezone.now()) for pk, p in taken]
        )
    with transaction.atomic():
        assert broker.take([]) == []
