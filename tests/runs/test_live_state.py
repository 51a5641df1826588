"""A live view's state read (``runs.live.read_state``): precompiled statements that must
give exactly what the ORM's ``.values()`` gives, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from core.precompiled import values_statement
from runs.live import STATUS_FIELDS, read_state
from runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _orm(run_id: str, after: int) -> tuple[dict[str, object] | None, list[dict[str, object]]]:
    row = Run.objects.filter(pk=run_id).values(*STATUS_FIELDS).first()
    events = list(
        RunEvent.objects.filter(run_id=run_id, id__gt=after)
        .order_by("id")
        .values("id", "kind", "timestamp", "data")
    )
    return row, events


def _a_run() -> Run:
    run = Run.objects.create(
        script_path="/srv/scripts/x.sh",
        status="completed",
        run_status="finished",
        exit_code=3,
        attempts=2,
        output_lines=12,
        started_at=datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=UTC),
        finished_at=datetime(2026, 12, 5, 10, 0, 1, 7, tzinfo=UTC),
        duration=1.000007,
    )
    RunEvent.objects.create(run=run, kind="queued", data={})
    RunEvent.objects.create(
        run=run, kind="start", data={"attempt": 1, "note": "é ☃", "nested": [1, None, True]}
    )
    RunEvent.objects.create(run=run, kind="end", data={"status": "completed"})
    return run


def test_it_reads_what_the_orm_reads() -> None:
    run = _a_run()
    other = _a_run()  # never mixed in
    first_event = run.events.order_by("id").values_list("id", flat=True).first()
    assert first_event is not None
    for after in (0, first_event, first_event + 1, first_event + 2):
        assert read_state(str(run.pk), after_event=after) == _orm(str(run.pk), after)
    row, events = read_state(str(run.pk))
    assert row is not None and row["exit_code"] == 3 and row["started_at"].microsecond == 123456
    assert [e["kind"] for e in events] == ["queued", "start", "end"]
    assert events[1]["data"] == {"attempt": 1, "note": "é ☃", "nested": [1, None, True]}
    assert all(e["id"] not in {x.pk for x in other.events.all()} for e in events)


def test_an_unknown_run_reads_as_none() -> None:
    assert read_state(str(uuid.uuid4())) == (None, [])


def test_a_new_event_is_read_by_the_next_read() -> None:
    run = _a_run()
    _, events = read_state(str(run.pk))
    RunEvent.objects.create(run=run, kind="paused", data={"by": "someone"})
    Run.objects.filter(pk=run.pk).update(paused=True)
    row, newer = read_state(str(run.pk), after_event=int(events[-1]["id"]))
    assert row is not None and row["paused"] is True
    assert [e["kind"] for e in newer] == ["paused"]


def test_each_thread_reads_through_its_own_connection() -> None:
    run = _a_run()
    got: list[object] = []

    def read() -> None:
        try:
            got.append(read_state(str(run.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == [_orm(str(run.pk), 0)] * 3


def test_a_slot_must_be_exactly_one_parameter() -> None:
    queryset = Run.objects.filter(exit_code=7, attempts=7).values("pk")
    with pytest.raises(ValueError, match="slot 'code'"):
        values_statement(queryset, connection=connection, slots={"code": 7})
    with pytest.raises(ValueError, match="slot 'missing'"):
        values_statement(queryset, connection=connection, slots={"missing": 8})


def test_run_exists() -> None:
    from runs.live import run_exists

    run = _a_run()
    assert run_exists(str(run.pk)) is True
    assert run_exists(run.pk.hex) is True  # the id without its hyphens, as the URL route allows
    assert run_exists(str(uuid.uuid4())) is False
    for malformed in ("", "nope", "1; DROP TABLE runs_run", "é" * 40):
        assert run_exists(malformed) is False


def test_per_connection_builds_once_for_each_connection() -> None:
    from core.precompiled import per_connection

    built: list[object] = []

    def build(conn: object) -> object:
        built.append(conn)
        return object()

    first = per_connection(connection, "tests.per_connection", build)
    assert per_connection(connection, "tests.per_connection", build) is first
    other: list[object] = []

    def in_thread() -> None:
        try:
            other.append(per_connection(connection, "tests.per_connection", build))
        finally:
            connection.close()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert other and other[0] is not first  # another thread: its own connection, its own build
    assert len(built) == 2
