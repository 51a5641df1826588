"""Per-key concurrency limits: claims beyond the limit wait, in order; freed slots hand runs over."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.precompiled import IN_KEPT_UP_TO
from runs.models import EventKind, Run, RunStatus
from runs.services import concurrency, lifecycle, run_control, run_enqueue
from runs.services.concurrency import run_claim, runs_claim_many, runs_start_all_waiting, runs_start_waiting

pytestmark = pytest.mark.django_db

KEY = "library.script:42"


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run ids handed to the workers (recorded instead of queued: the tests claim by hand)."""
    calls: list[str] = []
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)
    monkeypatch.setattr(concurrency, "runs_queue", calls.extend)
    return calls


def queue(script: Path, *, limit: int | None = 1, key: str = KEY) -> Run:
    params: dict[str, Any] = {"script_path": str(script), "concurrency_key": key, "concurrency_limit": limit}
    return run_enqueue(params=params, source="test")


def finish(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, finished_at=timezone.now())


@pytest.fixture
def script(make_script: Any) -> Path:
    return make_script("job.sh", "echo hi\n")


def test_a_run_beyond_the_limit_waits_with_a_visible_reason(script: Path, handed: list[str]) -> None:
    first, second = queue(script), queue(script)

    assert run_claim(run_id=str(first.pk)) == "claimed"
    assert run_claim(run_id=str(second.pk)) == "waiting"

    second.refresh_from_db()
    assert second.status == RunStatus.QUEUED
    assert second.wait_reason.startswith("Waiting for a free slot: 1 of max 1 running")
    assert list(second.events.values_list("kind", flat=True)) == [EventKind.QUEUED, EventKind.WAITING]
    # Asked again while still full: still waiting, and the event is not repeated.
    assert run_claim(run_id=str(second.pk)) == "waiting"
    assert second.events.filter(kind=EventKind.WAITING).count() == 1


def test_a_freed_slot_hands_over_the_oldest_waiting_run(script: Path, handed: list[str]) -> None:
    first, second, third = queue(script), queue(script), queue(script)
    run_claim(run_id=str(first.pk))
    run_claim(run_id=str(third.pk))
    run_claim(run_id=str(second.pk))

    finish(first)
    assert runs_start_waiting(key=KEY) == [str(second.pk)]
    assert handed == [str(second.pk)]
    # The third cannot jump the queue even though it asked first.
    assert run_claim(run_id=str(third.pk)) == "waiting"
    assert run_claim(run_id=str(second.pk)) == "claimed"
    second.refresh_from_db()
    assert (second.status, second.wait_reason) == (RunStatus.RUNNING, "")


def test_a_limit_of_two_lets_two_run(script: Path, handed: list[str]) -> None:
    runs = [queue(script, limit=2) for _ in range(3)]
    assert [run_claim(run_id=str(r.pk)) for r in runs] == ["claimed", "claimed", "waiting"]


def test_runs_without_a_key_or_of_other_keys_are_not_limited(script: Path, handed: list[str]) -> None:
    busy = queue(script)
    run_claim(run_id=str(busy.pk))
    other = queue(script, key="library.script:7")
    free = run_enqueue(params={"script_path": str(script)}, source="test")
    assert run_claim(run_id=str(other.pk)) == "claimed"
    assert run_claim(run_id=str(free.pk)) == "claimed"


def test_cancelling_a_waiting_run_lets_the_next_one_start(script: Path, handed: list[str]) -> None:
    first, second, third = queue(script), queue(script), queue(script)
    run_claim(run_id=str(first.pk))
    run_claim(run_id=str(second.pk))
    run_claim(run_id=str(third.pk))
    finish(first)

    run_control(run=second, command="cancel")

    assert str(third.pk) in handed
    assert run_claim(run_id=str(third.pk)) == "claimed"


def test_the_safety_net_restarts_keys_with_a_free_slot(script: Path, handed: list[str]) -> None:
    first, second = queue(script), queue(script)
    run_claim(run_id=str(first.pk))
    run_claim(run_id=str(second.pk))
    assert runs_start_all_waiting() == []  # the slot is still taken
    finish(first)  # ended without handing over (e.g. its worker died)

    assert runs_start_all_waiting() == [str(second.pk)]


def test_a_claim_of_a_run_that_is_not_queued_is_gone(script: Path, handed: list[str]) -> None:
    run = queue(script)
    run_control(run=run, command="cancel")
    assert run_claim(run_id=str(run.pk)) == "gone"


def test_a_restart_keeps_the_key(script: Path, handed: list[str]) -> None:
    run = queue(script)
    finish(run)
    again = lifecycle.run_restart(run=Run.objects.get(pk=run.pk))
    assert (again.concurrency_key, again.concurrency_limit) == (KEY, 1)


@pytest.mark.parametrize("free", [1, 3, IN_KEPT_UP_TO + 3])  # kept statements, and ones built each time
def test_a_delivery_claims_each_queued_run_once_and_limited_ones_by_their_key(
    script: Path, handed: list[str], free: int
) -> None:
    unlimited = [queue(script, limit=None, key="") for _ in range(free)]
    limited = [queue(script, limit=1) for _ in range(2)]
    cancelled = queue(script, limit=None, key="")
    Run.objects.filter(pk=cancelled.pk).update(status=RunStatus.CANCELLED)
    ids = [str(run.pk) for run in [*unlimited, cancelled, *limited]]

    claimed = runs_claim_many(run_ids=ids)

    # The free ones, then the first limited one (its key had a slot); never the cancelled.
    assert claimed == [*ids[:free], str(limited[0].pk)]
    rows = dict(Run.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [rows[run.pk] for run in unlimited] == [RunStatus.RUNNING] * free
    assert rows[cancelled.pk] == RunStatus.CANCELLED
    assert [rows[run.pk] for run in limited] == [RunStatus.RUNNING, RunStatus.QUEUED]
    assert Run.objects.get(pk=unlimited[0].pk).worker_pid == os.getpid()
    assert runs_claim_many(run_ids=ids) == []  # a second delivery of the same tasks claims none
