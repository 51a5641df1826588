"""The task API: the Task JSON contract, validation 400s, list filters, update, delete, enable/pause."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from library.models import FolderRoot, Script, ScriptStatus
from scheduler.models import ScheduledTask
from scheduler.services import TaskError, task_create
from tests.scheduler.conftest import NOW

pytestmark = pytest.mark.django_db

TASK_KEYS = {
    "id",
    "name",
    "description",
    "enabled",
    "owner",
    "script_id",
    "script_path",
    "args",
    "env_vars",
    "timeout",
    "working_dir",
    "log_level",
    "retry_on_failure",
    "retry_max_attempts",
    "retry_strategy",
    "retry_initial_delay",
    "retry_max_delay",
    "retry_multiplier",
    "retry_max_time",
    "performance_gates",
    "junit_output",
    "save_baseline",
    "load_baseline",
    "alerts",
    "slack_webhook",
    "enable_cost_tracking",
    "enable_code_analysis",
    "enable_secret_scanning",
    "enable_dependency_scanning",
    "schedule_type",
    "interval_seconds",
    "cron",
    "timezone",
    "schedule_text",
    "depends_on",
    "depends_on_detail",
    "dependents",
    "events",
    "overlap_policy",
    "max_concurrent",
    "misfire_policy",
    "has_webhook",
    "next_run_at",
    "last_run",
    "created_at",
    "updated_at",
}


def create(api: APIClient, **body: Any) -> Any:
    return api.post("/api/scheduler/tasks", body, format="json")


def error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    body: dict[str, Any] = response.json()
    assert body["message"]
    return body


# -- create and the Task JSON -----------------------------------------------------------------


def test_create_returns_the_task_json_of_the_contract(api: APIClient, script: Path) -> None:
    with time_machine.travel(NOW, tick=False):
        response = create(
            api,
            name="nightly",
            description="Nightly export",
            script_path=str(script),
            args=["--full"],
            env_vars={"TARGET": "prod"},
            cron="30 2 * * *",
            timezone="Europe/Paris",
            events=["deploy.done"],
            timeout=60,
        )
    assert response.status_code == 201, response.content
    task = response.json()
    assert set(task) == TASK_KEYS
    assert task["name"] == "nightly"
    assert task["owner"] == "user-user"
    assert task["script_id"] is None and task["script_path"] == str(script)
    assert task["args"] == ["--full"]
    assert task["env_vars"] == {"TARGET": "********"}  # values are never returned
    assert (task["schedule_type"], task["cron"], task["interval_seconds"]) == ("cron", "30 2 * * *", None)
    assert task["schedule_text"] == "every day at 02:30 Europe/Paris"
    assert task["next_run_at"] == "2030-01-02T01:30:00Z"  # 02:30 in Paris (CET)
    assert task["events"] == ["deploy.done"]
    assert (task["overlap_policy"], task["misfire_policy"], task["max_concurrent"]) == (
        "skip",
        "run_once",
        None,
    )
    assert task["has_webhook"] is False and task["last_run"] is None
    assert task["depends_on"] == [] and task["dependents"] == [] and task["depends_on_detail"] == []
    assert "webhook_token" not in task
    stored = ScheduledTask.objects.get(pk=task["id"])
    assert stored.env_vars == {"TARGET": "prod"}


def test_an_interval_task_is_first_due_one_interval_from_now(api: APIClient, script: Path) -> None:
    with time_machine.travel(NOW, tick=False):
        task = create(api, name="often", script_path=str(script), interval_seconds=600).json()
    assert task["schedule_type"] == "interval"
    assert task["schedule_text"] == "every 10 minutes"
    assert task["next_run_at"] == "2030-01-01T12:10:00Z"
    assert task["timezone"] == "UTC"


def test_a_task_without_schedule_has_no_next_run(api: APIClient, script: Path) -> None:
    task = create(api, name="on-demand", script_path=str(script), events=["a", "b"]).json()
    assert task["schedule_type"] == "none" and task["next_run_at"] is None
    assert task["schedule_text"] == "on events a, b"


def test_relative_script_paths_are_resolved_inside_the_root(api: APIClient, script: Path) -> None:
    task = create(api, name="rel", script_path="job.sh").json()
    assert task["script_path"] == str(script)


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"cron": "61 * * * *"}, "cron", "out of range"),
        ({"cron": "* * *"}, "cron", "5 fields"),
        ({"cron": "0 0 31 2 *"}, "cron", "never matches"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone", "Unknown time zone 'Mars/Olympus'"),
        ({"interval_seconds": 9}, "interval_seconds", "at least 10"),
        ({"schedule_type": "interval"}, "interval_seconds", "needs interval_seconds"),
        ({"schedule_type": "cron"}, "cron", "required"),
        ({"schedule_type": "hourly"}, "schedule_type", "not a valid choice"),
        ({"schedule_type": "none", "cron": "* * * * *"}, "cron", "takes no cron"),
        ({"cron": "* * * * *", "interval_seconds": 60}, "interval_seconds", "takes no interval_seconds"),
        ({"depends_on": [424242]}, "depends_on", "Unknown task id(s): 424242"),
        ({"events": ["bad name!"]}, "events", ""),
        ({"overlap_policy": "sometimes"}, "overlap_policy", "not a valid choice"),
        ({"misfire_policy": "later"}, "misfire_policy", "not a valid choice"),
        ({"max_concurrent": 2}, "max_concurrent", "only applies with overlap_policy allow"),
        ({"overlap_policy": "allow", "max_concurrent": 0}, "max_concurrent", "at least 1"),
        ({"env_vars": {"SCRIPTOPS_X": "1"}}, "env_vars", "not allowed"),
        ({"timeout": 0}, "timeout", ""),
        ({"retry_strategy": "random"}, "retry_strategy", ""),
        ({"bogus": 1}, "bogus", "Unknown field"),
        ({"name": "  "}, "name", "blank"),
    ],
)
def test_invalid_input_is_a_400_naming_the_field(
    api: APIClient, script: Path, body: dict[str, Any], field: str, needle: str
) -> None:
    payload = {"name": "t", "script_path": str(script), **body}
    answer = error(create(api, **payload))
    assert field in answer["details"], answer
    assert needle in str(answer["details"][field]), answer
    assert not ScheduledTask.objects.exists()


def test_a_script_outside_the_allowed_roots_is_refused(api: APIClient, tmp_path: Path) -> None:
    outside = tmp_path / "outside.sh"
    outside.write_text("echo no\n")
    answer = error(create(api, name="t", script_path=str(outside)))
    assert "outside the allowed roots" in answer["details"]["script_path"][0]


def test_a_missing_script_is_refused(api: APIClient, roots: Path) -> None:
    answer = error(create(api, name="t", script_path=str(roots / "nope.sh")))
    assert "does not exist" in answer["details"]["script_path"][0]


def test_neither_script_id_nor_script_path_is_refused(api: APIClient) -> None:
    answer = error(create(api, name="t", interval_seconds=60))
    assert "script_id or script_path is required" in answer["message"]


def test_both_script_id_and_script_path_are_refused(api: APIClient, library_script: Script) -> None:
    answer = error(create(api, name="t", script_id=library_script.pk, script_path=library_script.path))
    assert "not both" in answer["details"]["script_id"][0]


def test_an_unknown_library_script_is_refused(api: APIClient) -> None:
    answer = error(create(api, name="t", script_id=987654))
    assert "no library script with id 987654" in answer["details"]["script_id"][0]


def test_the_service_refuses_nul_characters(script: Path) -> None:
    with pytest.raises(TaskError) as caught:
        task_create(name="a\x00b", description="x\x00", script_path=str(script))
    assert set(caught.value.errors) == {"name", "description"}


def test_names_are_unique_whatever_their_case(api: APIClient, script: Path) -> None:
    assert create(api, name="Backup", script_path=str(script)).status_code == 201
    answer = error(create(api, name="backup", script_path=str(script)))
    assert "already exists" in answer["details"]["name"][0]


def test_a_dependency_cycle_is_refused_naming_it(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    a = make_task("alpha")
    b = make_task("beta", depends_on=[a.pk])
    c = make_task("gamma", depends_on=[b.pk])

    answer = error(api.patch(f"/api/scheduler/tasks/{a.pk}", {"depends_on": [c.pk]}, format="json"))

    assert "alpha → beta → gamma → alpha" in answer["details"]["depends_on"][0]
    assert list(a.depends_on.all()) == []


def test_a_task_cannot_depend_on_itself(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    a = make_task("solo")
    answer = error(api.patch(f"/api/scheduler/tasks/{a.pk}", {"depends_on": [a.pk]}, format="json"))
    assert "solo → solo" in answer["details"]["depends_on"][0]


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'"text"', b"null", b"{bad", b'{"name": "\\u0000", "script_path": "x"}']
)
def test_junk_bodies_are_400s(api: APIClient, body: bytes) -> None:
    response = api.generic("POST", "/api/scheduler/tasks", body, content_type="application/json")
    assert response.status_code == 400, response.content


# -- library scripts ------------------------------------------------------------------------------


@pytest.fixture
def library_script(roots: Path, script: Path) -> Script:
    root = FolderRoot.objects.create(name="root", path=str(roots))
    return Script.objects.create(
        root=root, path=str(script), relpath=script.name, name=script.name, language="shell"
    )


def test_a_library_script_task_shows_the_script_path(api: APIClient, library_script: Script) -> None:
    task = create(api, name="lib", script_id=library_script.pk, interval_seconds=60).json()
    assert task["script_id"] == library_script.pk
    assert task["script_path"] == library_script.path


def test_an_archived_library_script_cannot_be_scheduled(api: APIClient, library_script: Script) -> None:
    Script.objects.filter(pk=library_script.pk).update(status=ScriptStatus.ARCHIVED)
    answer = error(create(api, name="lib", script_id=library_script.pk))
    assert "archived" in answer["details"]["script_id"][0]


def test_a_task_can_switch_from_a_library_script_to_a_path(
    api: APIClient, library_script: Script, make_script: Callable[..., Path]
) -> None:
    other = make_script("other.sh", "echo other\n")
    task = create(api, name="lib", script_id=library_script.pk).json()
    changed = api.patch(f"/api/scheduler/tasks/{task['id']}", {"script_path": str(other)}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["script_id"], changed.json()["script_path"]) == (None, str(other))


# -- list, filters, detail ------------------------------------------------------------------------


def test_list_is_paginated_and_filtered(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    make_task("a-interval", interval_seconds=60)
    make_task("b-cron", cron="0 * * * *")
    make_task("c-event", events=["deploy"], enabled=False)

    def names(**params: Any) -> list[str]:
        response = api.get("/api/scheduler/tasks", params)
        assert response.status_code == 200, response.content
        return [t["name"] for t in response.json()["results"]]

    page = api.get("/api/scheduler/tasks", {"page_size": 2}).json()
    assert page["count"] == 3 and page["next"] and page["previous"] is None
    assert [t["name"] for t in page["results"]] == ["a-interval", "b-cron"]
    assert names(enabled="false") == ["c-event"]
    assert names(schedule_type="cron") == ["b-cron"]
    assert names(event="deploy") == ["c-event"]
    assert names(search="cron") == ["b-cron"]
    assert names(ordering="-name") == ["c-event", "b-cron", "a-interval"]


def test_list_query_count_does_not_grow_with_the_page(
    api: APIClient, make_task: Callable[..., ScheduledTask], django_assert_max_num_queries: Any
) -> None:
    first = make_task("first")
    for i in range(12):
        make_task(f"t{i:02d}", depends_on=[first.pk], events=["e"])
    with django_assert_max_num_queries(12):
        assert api.get("/api/scheduler/tasks").status_code == 200


def test_detail_lists_what_it_depends_on_and_what_depends_on_it(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    build = make_task("build")
    test = make_task("test", depends_on=[build.pk])
    make_task("deploy", depends_on=[test.pk])

    detail = api.get(f"/api/scheduler/tasks/{test.pk}/").json()

    assert detail["depends_on"] == [build.pk]
    assert detail["depends_on_detail"] == [{"id": build.pk, "name": "build"}]
    assert [d["name"] for d in detail["dependents"]] == ["deploy"]
    assert detail["schedule_text"] == "after build succeeds"


def test_an_unknown_task_is_a_json_404(api: APIClient) -> None:
    error(api.get("/api/scheduler/tasks/999999"), 404)


# -- update ------------------------------------------------------------------------------------


def test_put_of_what_get_returned_changes_nothing_and_keeps_env_values(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("keep", interval_seconds=60, env_vars={"TOKEN": "s3cret"}, events=["x"])
    before = api.get(f"/api/scheduler/tasks/{task.pk}").json()

    response = api.put(f"/api/scheduler/tasks/{task.pk}", before, format="json")

    assert response.status_code == 200, response.content
    after = response.json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    task.refresh_from_db()
    assert task.env_vars == {"TOKEN": "s3cret"}


def test_patch_changes_only_what_it_sends(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("p", interval_seconds=60, args=["a"], retry_on_failure=True)
    response = api.patch(f"/api/scheduler/tasks/{task.pk}", {"description": "new"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["description"] == "new"
    assert body["args"] == ["a"] and body["retry_on_failure"] is True and body["interval_seconds"] == 60


def test_a_new_schedule_is_counted_from_now(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("sched", interval_seconds=60, now=NOW)
    with time_machine.travel(NOW, tick=False):
        body = api.patch(f"/api/scheduler/tasks/{task.pk}", {"cron": "15 * * * *"}, format="json").json()
    assert body["schedule_type"] == "cron" and body["interval_seconds"] is None
    assert body["next_run_at"] == "2030-01-01T12:15:00Z"


def test_the_webhook_cannot_be_changed_by_update(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("w")
    answer = error(api.patch(f"/api/scheduler/tasks/{task.pk}", {"webhook": True}, format="json"))
    assert "webhook" in answer["details"]


# -- delete, enable, pause --------------------------------------------------------------------------


def test_delete(api: APIClient, make_task: Callable[..., ScheduledTask]) -> None:
    task = make_task("gone")
    assert api.delete(f"/api/scheduler/tasks/{task.pk}").status_code == 204
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()


def test_deleting_a_task_others_depend_on_is_a_409_naming_them(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    base = make_task("base")
    make_task("left", depends_on=[base.pk])
    make_task("right", depends_on=[base.pk])

    answer = error(api.delete(f"/api/scheduler/tasks/{base.pk}"), 409)

    assert "left, right" in answer["message"]
    assert ScheduledTask.objects.filter(pk=base.pk).exists()


def test_pause_clears_the_next_run_and_enable_counts_it_from_now(
    api: APIClient, make_task: Callable[..., ScheduledTask]
) -> None:
    task = make_task("toggle", interval_seconds=60, now=NOW)
    paused = api.post(f"/api/scheduler/tasks/{task.pk}/pause").json()
    assert paused["enabled"] is False and paused["next_run_at"] is None
    later = NOW.replace(hour=15)
    with time_machine.travel(later, tick=False):
        enabled = api.post(f"/api/scheduler/tasks/{task.pk}/enable/").json()
    assert enabled["enabled"] is True
    assert enabled["next_run_at"] == "2030-01-01T15:01:00Z"
