"""Read endpoints: a task's history, due tasks, schedule preview, the dependency graph."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler.models import ScheduledTask
from scheduler.services import task_run_now, tasks_fire_due
from tests.scheduler.conftest import NOW, finish, start

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def test_history_lists_runs_and_skipped_ticks_newest_first(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t", interval_seconds=10, now=NOW)
    [first] = tasks_fire_due(now=NOW + 10.5 * S).fired
    start(first.run)
    tasks_fire_due(now=NOW + 20.5 * S)  # skipped: the first is still running
    finish(first.run, exit_code=0)

    response = api.get(f"/api/scheduler/tasks/{task.pk}/runs")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and set(body) == {"count", "next", "previous", "results"}
    skipped, ran = body["results"]
    assert set(ran) == {
        "id",
        "run_id",
        "trigger",
        "event",
        "due_at",
        "fired_at",
        "outcome",
        "reason",
        "upstream",
        "run",
    }
    assert (skipped["outcome"], skipped["run_id"], skipped["run"]) == ("skipped", None, None)
    assert skipped["due_at"] == "2030-01-01T12:00:20Z" and "still running" in skipped["reason"]
    assert (ran["outcome"], ran["trigger"], ran["run_id"]) == ("queued", "schedule", str(first.run_id))
    assert ran["fired_at"] == "2030-01-01T12:00:10.500000Z"
    assert set(ran["run"]) == {
        "status",
        "run_status",
        "exit_code",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
    }
    assert (ran["run"]["status"], ran["run"]["run_status"], ran["run"]["exit_code"]) == (
        "completed",
        "success",
        0,
    )
    only = api.get(f"/api/scheduler/tasks/{task.pk}/runs", {"outcome": "skipped"}).json()
    assert [r["id"] for r in only["results"]] == [skipped["id"]]
    assert api.get(f"/api/scheduler/tasks/{task.pk}/runs", {"outcome": "nope"}).status_code == 400


def test_last_run_in_the_task_json(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("t")
    run = finish(task_run_now(task=task).run, exit_code=0)
    for url in (f"/api/scheduler/tasks/{task.pk}", "/api/scheduler/tasks"):
        body = api.get(url).json()
        last = body["last_run"] if "last_run" in body else body["results"][0]["last_run"]
        assert last["run_id"] == str(run.pk)
        assert (last["status"], last["run_status"], last["exit_code"], last["trigger"]) == (
            "completed",
            "success",
            0,
            "manual",
        )
        assert last["created_at"] and last["finished_at"]


def test_due_lists_enabled_tasks_whose_time_has_come(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    past = timezone.now() - timedelta(minutes=5)
    make_task("due", interval_seconds=60, now=past)
    make_task("later", interval_seconds=3600, now=past)
    make_task("never")
    body = api.get("/api/scheduler/due").json()
    assert set(body) == {"now", "tasks"}
    assert [t["name"] for t in body["tasks"]] == ["due"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"cron": "30 2 * * *", "tz": "Europe/Paris"},
            {
                "cron": "30 2 * * *",
                "timezone": "Europe/Paris",
                "description": "every day at 02:30 Europe/Paris",
                "next": [f"2030-01-0{d}T02:30:00+01:00" for d in range(2, 7)],
            },
        ),
        (
            {"interval": "600"},
            {
                "interval": 600,
                "timezone": "UTC",
                "description": "every 10 minutes",
                "next": [f"2030-01-01T12:{m}0:00+00:00" for m in range(1, 6)],
            },
        ),
    ],
)
def test_preview(api: APIClient, params: dict[str, str], expected: dict[str, Any]) -> None:
    with time_machine.travel(NOW, tick=False):
        response = api.get("/api/scheduler/preview", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in expected} == expected
    assert set(body) == {"cron", "interval", "timezone", "description", "next"}


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"cron": "61 * * * *"}, "cron", "out of range"),
        ({"cron": "* * *"}, "cron", "5 fields"),
        ({"cron": "0 0 * * *", "tz": "Nowhere/Land"}, "tz", "Unknown time zone 'Nowhere/Land'"),
        ({"interval": "5"}, "interval", "at least 10"),
        ({"interval": "ten"}, "interval", "valid integer"),
        ({}, "non_field_errors", "either cron"),
        ({"cron": "* * * * *", "interval": "60"}, "non_field_errors", "either cron"),
    ],
)
def test_preview_400s_are_precise(api: APIClient, params: dict[str, str], field: str, needle: str) -> None:
    response = api.get("/api/scheduler/preview", params)
    assert response.status_code == 400
    details = response.json()["details"]
    assert needle in str(details[field]), details


def test_graph(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    a = make_task("a")
    b = make_task("b", depends_on=[a.pk])
    c = make_task("c", depends_on=[a.pk, b.pk], enabled=False)
    finish(task_run_now(task=a).run, status="failed", exit_code=1)

    body = api.get("/api/scheduler/graph").json()

    assert body["nodes"] == [
        {"id": a.pk, "name": "a", "enabled": True, "last_status": "failed"},
        {"id": b.pk, "name": "b", "enabled": True, "last_status": None},
        {"id": c.pk, "name": "c", "enabled": False, "last_status": None},
    ]
    assert sorted((e["from"], e["to"]) for e in body["edges"]) == sorted(
        [(a.pk, b.pk), (a.pk, c.pk), (b.pk, c.pk)]
    )
