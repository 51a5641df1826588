"""Queueing runs: one or many at once, handed to the workers only after the commit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ

from runs.models import ConcurrencyGate, EventKind, RunStatus
from runs.services import lifecycle, queue, runs_enqueue_many

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each hand-over to the workers (recorded instead of queued)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: calls.append(list(run_ids)))
    return calls


@pytest.fixture
def script(make_script: Any) -> Path:
    return make_script("job.sh", "echo hi\n")


def test_many_runs_are_created_with_their_events_and_handed_over_together_after_the_commit(
    script: Path, handed: list[list[str]], django_capture_on_commit_callbacks: Any
) -> None:
    requests = [{"script_path": str(script), "args": [str(i)]} for i in range(5)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        runs = runs_enqueue_many(requests=requests, source="test")
        assert handed == []  # not before the commit: a worker would not find the rows

    assert [run.args for run in runs] == [[str(i)] for i in range(5)]
    assert all(run.status == RunStatus.QUEUED and run.source == "test" for run in runs)
    for run in runs:
        assert list(run.events.values_list("kind", "data")) == [
            (EventKind.QUEUED, {"source": "test", "restarted_from": None})
        ]
    assert len(callbacks) == 1
    callbacks[0]()
    assert handed == [[str(run.pk) for run in runs]]


def test_every_concurrency_key_gets_its_gate_before_its_runs(script: Path, handed: list[list[str]]) -> None:
    requests = [
        {"script_path": str(script), "concurrency_key": key, "concurrency_limit": 1}
        for key in ("a", "b", "a", "")
    ]
    runs_enqueue_many(requests=requests, source="test")
    assert sorted(ConcurrencyGate.objects.values_list("key", flat=True)) == ["a", "b"]


def test_hand_overs_share_one_broker(
    script: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    """django-q2 builds a broker per async_task unless given one; with Redis that is a new
    connection per run. The hand-over keeps one broker for the process."""
    built: list[object] = []

    def counting_get_broker(*args: Any, **kwargs: Any) -> object:
        broker = real_get_broker(*args, **kwargs)
        built.append(broker)
        return broker

    real_get_broker = queue.get_broker
    monkeypatch.setattr(queue, "_broker", None)
    monkeypatch.setattr(queue, "get_broker", counting_get_broker)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            runs_enqueue_many(requests=[{"script_path": str(script)}], source="test")
        assert callbacks  # the hand-over (and the "queued" wake-up it publishes once committed)
    assert len(built) == 1


@pytest.mark.skipif(Conf.ORM != "default", reason="the database broker only (SCRIPTOPS_REDIS_URL unset)")
def test_with_the_database_broker_the_tasks_commit_with_the_runs(
    script: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # the unit-test settings run tasks in-process
    OrmQ.objects.all().delete()

    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        runs_enqueue_many(requests=[{"script_path": str(script)}], source="test")
        assert OrmQ.objects.count() == 1  # queued inside the transaction that creates the run
        raise Refused  # rolled back: neither the run nor its task remains
    assert OrmQ.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        (run,) = runs_enqueue_many(requests=[{"script_path": str(script)}], source="test")
    (task,) = OrmQ.objects.all()
    assert task.task["args"] == (str(run.pk),)
    assert task.task["func"] == queue.EXECUTE_RUN and task.task["name"] == f"run {run.pk}"
    # The row is the broker's own: the runner host's read of the queue takes it.
    assert queue.runs_broker().dequeue() == [(task.pk, task.payload)]


def test_a_launch_from_the_dashboards_pages_is_sourced_dashboard(
    script: Path, handed: list[list[str]], user_for: Any, client_for: Any
) -> None:
    from rest_framework.test import APIClient

    session = APIClient()
    session.force_login(user_for("executor"))
    header = {"HTTP_X_SCRIPTOPS_CLIENT": "dashboard"}
    body = {"script_path": str(script)}

    from_page = session.post("/api/run", body, format="json", **header)
    assert from_page.status_code == 202, from_page.content
    assert from_page.json()["source"] == "dashboard"
    # The same session without the page's header (a script using a browser's cookie),
    # and an API key claiming to be the dashboard, are API launches.
    assert session.post("/api/run", body, format="json").json()["source"] == "api"
    keyed = client_for("executor")
    assert keyed.post("/api/run", body, format="json", **header).json()["source"] == "api"


def test_the_queued_wake_up_is_published_only_where_runners_poll_the_database(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    """Runner hosts on the database broker wait for the "queued" wake-up; on Redis their
    BLPOP wakes by itself, and the wake-up would only cost each launch a round trip."""
    monkeypatch.setattr(Conf, "SYNC", False)  # the unit-test settings run tasks in-process
    published: list[tuple[str, str]] = []
    monkeypatch.setattr(
        queue.bus, "publish", lambda channel, payload="1": published.append((channel, payload))
    )
    broker = queue.runs_broker()
    with django_capture_on_commit_callbacks(execute=True):
        queue.runs_queue(["00000000-0000-0000-0000-000000000001"])
    (task,) = broker.dequeue()  # the task itself is queued either way (taken back here)
    if queue.wakes_by_itself(broker):  # the PostgreSQL + Redis pass
        assert published == []
    else:
        assert published == [(queue.QUEUED_CHANNEL, "q")]
        broker.delete(task[0])


def test_the_database_broker_does_not_load_redis() -> None:
    """Only a process that uses Redis loads its client (memory: it is in every process)."""
    code = (
        "import sys, django; django.setup(); import runs.services.queue as q, scriptops.asgi; "
        "assert not q.wakes_by_itself(q.runs_broker()); print('redis' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SCRIPTOPS_REDIS_URL", "DATABASE_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "scriptops.settings"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
