"""The audit log is append-only: no update, no delete, but for the retention cleanup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent, AuditRefused
from audit.services import audit_prune, prune_schedule_ensure, record
from audit.tasks import prune
from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_event_cannot_be_changed_or_deleted() -> None:
    event = record(action="test.thing", summary="original")
    event.summary = "rewritten"
    with pytest.raises(AuditRefused):
        event.save()
    with pytest.raises(AuditRefused):
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(AuditRefused):
        event.delete()
    with pytest.raises(AuditRefused):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).summary == "original"


def test_a_deleted_user_leaves_its_events_with_its_name() -> None:
    user = UserFactory(username="bob", role=Role.USER)
    event = record(action="test.thing", actor=user)
    user.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_id, event.actor_name) == (None, "bob")


def test_the_retention_cleanup_deletes_only_older_events(settings) -> None:
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    old = record(action="test.old")
    edge = record(action="test.edge")
    fresh = record(action="test.fresh")
    # Back-date through SQL: the model refuses updates, as it should.
    from django.db import connection

    with connection.cursor() as cursor:
        table = AuditEvent._meta.db_table
        cursor.execute(f"UPDATE {table} SET at = %s WHERE id = %s", [now - timedelta(days=31), old.pk])
        cursor.execute(f"UPDATE {table} SET at = %s WHERE id = %s", [now - timedelta(days=29), edge.pk])

    assert audit_prune(now=now) == 1
    assert set(AuditEvent.objects.values_list("pk", flat=True)) == {edge.pk, fresh.pk}
    settings.AUDIT_RETENTION_DAYS = 1
    assert prune() == 1  # the scheduled task: the 29-day-old one goes now
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_the_cleanup_is_scheduled_daily() -> None:
    from django_q.models import Schedule

    # Migration 0002 creates it; a transactional test elsewhere may have flushed the
    # table since, which is what every runner's start-up ensure is for.
    Schedule.objects.filter(name="scriptops.audit.prune").delete()
    prune_schedule_ensure()
    prune_schedule_ensure()  # idempotent
    [schedule] = Schedule.objects.filter(name="scriptops.audit.prune")
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "audit.tasks.prune",
        Schedule.DAILY,
        -1,
    )
