"""The admin: task list with filters, enable/disable actions, edits checked like the API,
the history read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from scheduler.models import ScheduledTask, TaskRun
from scheduler.services import task_run_now
from tests.factories import UserFactory
from tests.scheduler.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_site(roots: Any) -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True, role="admin"))
    return client


def form_data(task: ScheduledTask, **changes: Any) -> dict[str, Any]:
    data = {
        "name": task.name,
        "description": task.description,
        "enabled": "on" if task.enabled else "",
        "owner": "",
        "schedule_type": task.schedule_type,
        "interval_seconds": task.interval_seconds or "",
        "cron": task.cron,
        "timezone": task.timezone,
        "overlap_policy": task.overlap_policy,
        "max_concurrent": task.max_concurrent or "",
        "misfire_policy": task.misfire_policy,
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != "" or k in ("description", "cron")}


def test_the_task_list_filters(admin_site: Client, make_task: Callable[..., ScheduledTask]) -> None:
    make_task("on-task", interval_seconds=60)
    make_task("off-task", interval_seconds=60, enabled=False)
    page = admin_site.get("/admin/scheduler/scheduledtask/", {"enabled__exact": "0"})
    assert page.status_code == 200
    assert b"off-task" in page.content and b"on-task" not in page.content
    assert b"every minute" in page.content


def test_enable_and_disable_actions(admin_site: Client, make_task: Callable[..., ScheduledTask]) -> None:
    a = make_task("a", interval_seconds=60)
    b = make_task("b", interval_seconds=60)
    url = "/admin/scheduler/scheduledtask/"
    response = admin_site.post(url, {"action": "disable_tasks", "_selected_action": [a.pk, b.pk]})
    assert response.status_code == 302
    assert list(ScheduledTask.objects.values_list("enabled", "next_run_at")) == [(False, None), (False, None)]
    admin_site.post(url, {"action": "enable_tasks", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.enabled and a.next_run_at is not None


def test_an_edit_is_checked_like_the_api(admin_site: Client, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("edit-me", interval_seconds=60, now=NOW)
    url = f"/admin/scheduler/scheduledtask/{task.pk}/change/"

    bad = admin_site.post(url, form_data(task, schedule_type="cron", interval_seconds="", cron="61 * * * *"))

    assert bad.status_code == 200  # the form again, with the error
    assert b"out of range" in bad.content
    task.refresh_from_db()
    assert task.schedule_type == "interval"

    good = admin_site.post(url, form_data(task, schedule_type="cron", interval_seconds="", cron="0 3 * * *"))

    assert good.status_code == 302, good.content[:2000]
    task.refresh_from_db()
    assert (task.schedule_type, task.cron, task.interval_seconds) == ("cron", "0 3 * * *", None)
    assert task.next_run_at is not None and task.next_run_at.hour == 3


def test_a_cycle_is_refused_in_the_admin(admin_site: Client, make_task: Callable[..., ScheduledTask]) -> None:
    a = make_task("a")
    b = make_task("b", depends_on=[a.pk])
    response = admin_site.post(
        f"/admin/scheduler/scheduledtask/{a.pk}/change/", form_data(a, depends_on=[b.pk])
    )
    assert response.status_code == 200
    assert "a → b → a".encode() in response.content
    assert list(a.depends_on.all()) == []


def test_an_invalid_event_name_is_refused_in_the_admin(
    admin_site: Client, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("t")
    data = form_data(
        task, **{"events-TOTAL_FORMS": "1", "events-0-name": "bad name!", "events-0-task": task.pk}
    )
    response = admin_site.post(f"/admin/scheduler/scheduledtask/{task.pk}/change/", data)
    assert response.status_code == 200
    assert not task.events.exists()


def test_the_history_is_read_only(admin_site: Client, make_task: Callable[..., ScheduledTask]) -> None:
    entry = task_run_now(task=make_task("t"))
    assert admin_site.get("/admin/scheduler/taskrun/").status_code == 200
    assert admin_site.get("/admin/scheduler/taskrun/add/").status_code == 403
    change = admin_site.get(f"/admin/scheduler/taskrun/{entry.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert TaskRun.objects.count() == 1
