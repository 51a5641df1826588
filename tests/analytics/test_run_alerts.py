"""A run's alert rules: checked at request time (``alerts``, ``slack_webhook``), evaluated
when the run ends (``run_analyse`` → ``alerts_evaluate``), their deliveries shown in the
run's record; a task's rules go with its runs, and ``scheduled_only`` rules fire only
for them. Deliveries are queued on commit, which unit tests never reach: only the rows are
checked here (the sending is tests/analytics/test_alerts*.py's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from analytics.models import AlertDelivery
from core.roles import Role
from runs.models import Run, RunStatus
from runs.request import RunRequestInvalid, run_request_clean
from runs.services import lifecycle, run_enqueue, run_execute
from scheduler.services import task_create, task_run_now
from tests.runs.helpers import strays

__all__ = ["strays"]

pytestmark = [pytest.mark.usefixtures("strays", "no_dispatch"), pytest.mark.django_db]

HOOK = "https://hooks.example.test/alerts"
SLACK = "https://hooks.example.test/slack/T000"


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")


@pytest.fixture
def script(make_script: Callable[..., Path]) -> Path:
    return make_script("rows.sh", "echo '::metric rows=42'\n")


def run_script(script: Path, **params: Any) -> Run:
    run = run_enqueue(params={"script_path": str(script), **params}, source="test")
    run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    return run


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "too-many-rows", "condition": "rows > 10", "channels": [f"webhook:{HOOK}"], **fields}


# -- request time -------------------------------------------------------------------------------


def test_urls_off_the_allowlist_are_refused(script: Path) -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), "slack_webhook": SLACK})
    assert list(err.value.fields) == ["slack_webhook"]
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), "alerts": [rule()]})
    assert list(err.value.fields) == ["alerts"]


@pytest.mark.usefixtures("allowed")
@pytest.mark.parametrize(
    "bad",
    [
        rule(condition="rows >"),  # not an expression
        rule(condition="__import__('os').system('id')"),  # parsed, never eval'ed
        rule(channels=["slack"]),  # slack without slack_webhook
        rule(channels=["webhook:http://169.254.169.254/"]),  # not on the allowlist
        {"condition": "true", "channels": [f"webhook:{HOOK}"]},  # no name
    ],
)
def test_bad_alert_rules_are_refused_naming_alerts(
    script: Path, client_for: Callable[[str], APIClient], bad: dict[str, Any]
) -> None:
    response = client_for(Role.EXECUTOR).post(
        "/api/run", {"script_path": str(script), "alerts": [bad]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["details"]) == ["alerts"]


@pytest.mark.usefixtures("allowed")
def test_good_rules_are_stored_and_the_slack_url_is_never_shown(
    script: Path, client_for: Callable[[str], APIClient]
) -> None:
    body = {"script_path": str(script), "alerts": [rule(channels=["slack"])], "slack_webhook": SLACK}
    response = client_for(Role.EXECUTOR).post("/api/run", body, format="json")

    assert response.status_code == 202, response.content
    run = Run.objects.get()
    assert run.slack_webhook == SLACK and run.alerts[0]["name"] == "too-many-rows"
    assert response.json()["slack_webhook"] == "********"
    assert SLACK not in response.content.decode()


# -- when the run ends --------------------------------------------------------------------------


@pytest.mark.usefixtures("allowed")
def test_a_rule_whose_condition_holds_makes_a_delivery_shown_in_the_record(
    script: Path, client_for: Callable[[str], APIClient]
) -> None:
    run = run_script(script, alerts=[rule(), rule(name="quiet", condition="rows > 100")])

    assert run.status == RunStatus.COMPLETED
    deliveries = AlertDelivery.objects.filter(run_id=run.pk)
    assert [(d.rule, d.channel, d.url) for d in deliveries] == [("too-many-rows", "webhook", HOOK)]
    shown = client_for(Role.READONLY).get(f"/api/runs/{run.pk}").json()["analytics"]["alerts"]
    assert [(a["rule"], a["channel"], a["status"]) for a in shown] == [
        ("too-many-rows", "webhook", deliveries[0].status)
    ]


@pytest.mark.usefixtures("allowed")
def test_a_rule_can_compare_with_the_loaded_baseline(make_script: Callable[..., Path]) -> None:
    usual = run_script(make_script("grows.sh", "echo '::metric rows=10'\n"), save_baseline="usual")
    slower = rule(name="more-than-usual", condition="rows > baseline.p95 * 1.5")

    same = run_script(Path(usual.script_path), load_baseline="usual", alerts=[slower])  # 10 > 15: no
    grown = run_script(
        make_script("grows.sh", "echo '::metric rows=42'\n"), load_baseline="usual", alerts=[slower]
    )

    assert not AlertDelivery.objects.filter(run_id=same.pk).exists()
    assert AlertDelivery.objects.filter(run_id=grown.pk, rule="more-than-usual").exists()  # 42 > 15


@pytest.mark.usefixtures("allowed")
def test_scheduled_only_rules_fire_for_a_tasks_runs_only(script: Path) -> None:
    rules = [rule(scheduled_only=True)]
    by_hand = run_script(script, alerts=rules)
    assert not AlertDelivery.objects.filter(run_id=by_hand.pk).exists()

    task, _ = task_create(name="nightly", script_path=str(script), alerts=rules)
    assert task.alerts[0]["scheduled_only"] is True
    entry = task_run_now(task=task)
    assert entry.run is not None
    run_execute(run_id=str(entry.run.pk))

    assert Run.objects.get(pk=entry.run.pk).alerts == task.alerts
    assert AlertDelivery.objects.filter(run_id=entry.run.pk, rule="too-many-rows").exists()
