"""Alerts: rules checked against the allowlist, evaluated when a run ends, and delivered by
the task to a real HTTP receiver on 127.0.0.1 (retries, timeouts, redirects, refusals)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from analytics.models import AlertDelivery, AlertState, DeliveryStatus, Point, Series, path_key
from analytics.services import delivery as delivery_module
from analytics.services.alerts import alert_rules_clean, alert_url_check, alerts_evaluate
from analytics.tasks import alert_deliver
from core.errors import InvalidInput

SCRIPT = "/srv/scripts/export.py"
SLACK_PATH = "/slack/T000/B000"

# -- a real receiver ----------------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """Answers POSTs with the scripted replies in order (then 200), recording each request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.replies: list[tuple[int, dict[str, str]] | float] = []
        self.received: list[tuple[str, dict[str, str], Any]] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *replies: int | tuple[int, dict[str, str]] | float) -> None:
        """Reply codes (or (code, headers), or a float: sleep that long, then 200)."""
        self.replies = [(r, {}) if isinstance(r, int) else r for r in replies]

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.received]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers), json.loads(body or b"null")))
            reply = self.server.replies.pop(0) if self.server.replies else (200, {})
        if isinstance(reply, float):
            time.sleep(reply)
            reply = (200, {})
        code, headers = reply
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "SCRIPTOPS_ALERT_URL_ALLOWLIST", f"{server.base}/hooks/, https://hooks.example.test/slack/"
    )
    monkeypatch.setattr(delivery_module, "BACKOFF_SECONDS", 0.0)
    yield server
    server.shutdown()
    server.server_close()


def evaluate(
    rules: list[dict[str, Any]],
    *,
    status: str = "completed",
    run_id: str | None = None,
    scheduled: bool = False,
    values: dict[str, float | str | None] | None = None,
    slack_webhook: str | None = None,
    baselines: dict[str, dict[str, float | None]] | None = None,
) -> list[AlertDelivery]:
    ids = alerts_evaluate(
        run_id=run_id or str(uuid.uuid4()),
        script_path=SCRIPT,
        status=status,
        source="schedule" if scheduled else "api",
        scheduled=scheduled,
        values={"duration_seconds": 12.5, "rows": 42.0, "status": status, **(values or {})},
        rules=rules,
        slack_webhook=slack_webhook,
        baselines=baselines or {},
    )
    return list(AlertDelivery.objects.filter(pk__in=ids).order_by("id"))


def rules_for(receiver: Receiver, **fields: Any) -> list[dict[str, Any]]:
    rule = {
        "name": "big-export",
        "condition": "rows > 10",
        "channels": [f"webhook:{receiver.base}/hooks/ops"],
    }
    return alert_rules_clean([{**rule, **fields}], slack_webhook=None)


def fresh(delivery: AlertDelivery) -> AlertDelivery:
    return AlertDelivery.objects.get(pk=delivery.pk)


# -- the allowlist ------------------------------------------------------------------------------


def test_no_url_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", raising=False)
    with pytest.raises(InvalidInput) as err:
        alert_url_check("https://hooks.example.test/x")
    assert "SCRIPTOPS_ALERT_URL_ALLOWLIST is empty" in err.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.test/hooks/a",
        "https://hooks.example.test:443/hooks/a/b?x=1",
        "https://HOOKS.example.test/hooks/",
        "http://10.0.0.5:8080/notify",
        "http://10.0.0.5:8080/notify/sub",
    ],
)
def test_urls_under_an_allowed_prefix_pass(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(
        "SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/hooks/,http://10.0.0.5:8080/notify"
    )
    alert_url_check(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.test.evil.test/hooks/a",  # a longer host
        "https://hooks.example.test@169.254.169.254/hooks/a",  # credentials hiding the host
        "http://hooks.example.test/hooks/a",  # another scheme
        "https://hooks.example.test:8443/hooks/a",  # another port
        "https://hooks.example.test/other",  # another path
        "https://hooks.example.test/hooksevil",
        "http://10.0.0.5:8080/notifyx",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "gopher://hooks.example.test/hooks/",
        "https://hooks.example.test/hooks/a b",
        "https://hooks.example.test/hooks/\n",
        "not a url",
        "",
    ],
)
def test_other_urls_are_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(
        "SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/hooks/,http://10.0.0.5:8080/notify"
    )
    with pytest.raises(InvalidInput) as err:
        alert_url_check(url)
    assert err.value.field == "url"


# -- cleaning rules -----------------------------------------------------------------------------


def test_rules_are_normalised_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")
    hook = "webhook:https://hooks.example.test/a"
    rules = alert_rules_clean(
        [{"name": "any", "channels": [hook, hook]}, {"name": "s", "channels": ["slack"], "when": "recovery"}],
        slack_webhook="https://hooks.example.test/slack",
    )
    assert rules == [
        {
            "name": "any",
            "condition": "true",
            "channels": [hook],
            "severity": "warning",
            "when": "always",
            "scheduled_only": False,
            "cooldown": 0,
        },
        {
            "name": "s",
            "condition": "true",
            "channels": ["slack"],
            "severity": "warning",
            "when": "recovery",
            "scheduled_only": False,
            "cooldown": 0,
        },
    ]
    assert alert_rules_clean([], slack_webhook=None) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"channels": ["webhook:https://hooks.example.test/a"]}, "name is required"),
        ({"name": "x"}, "channels must be a non-empty list"),
        ({"name": "x", "channels": []}, "channels must be a non-empty list"),
        ({"name": "x", "channels": ["email:me@example.test"]}, "unknown channel"),
        ({"name": "x", "channels": ["slack"]}, '"slack" channel needs slack_webhook'),
        (
            {"name": "x", "channels": ["webhook:http://169.254.169.254/"]},
            "not on SCRIPTOPS_ALERT_URL_ALLOWLIST",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "condition": "rows >"},
            "condition:",
        ),
        (
            {
                "name": "x",
                "channels": ["webhook:https://hooks.example.test/a"],
                "condition": "__import__('os')",
            },
            "function calls are not allowed",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "when": "sometimes"},
            "when must be",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "severity": "meh"},
            "severity must",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "cooldown": -1},
            "cooldown must",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "cooldown": 1.5},
            "cooldown must",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "cooldown": True},
            "cooldown must",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "scheduled_only": "yes"},
            "true or false",
        ),
        (
            {"name": "x", "channels": ["webhook:https://hooks.example.test/a"], "url": "x"},
            "unknown field(s) url",
        ),
        ({"name": "x" * 101, "channels": ["webhook:https://hooks.example.test/a"]}, "longer than 100"),
        ("slow", "a rule must be an object"),
    ],
)
def test_bad_rules_are_refused_on_the_alerts_field(
    monkeypatch: pytest.MonkeyPatch, rule: object, message: str
) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")
    with pytest.raises(InvalidInput) as err:
        alert_rules_clean([rule], slack_webhook=None)
    assert list(err.value.fields) == ["alerts"]
    assert any(message in text for text in err.value.fields["alerts"]), err.value.fields


def test_every_problem_is_listed_naming_its_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")
    hook = "webhook:https://hooks.example.test/a"
    with pytest.raises(InvalidInput) as err:
        alert_rules_clean(
            [
                {"name": "a", "channels": [hook]},
                {"name": "a", "channels": [hook], "when": "never"},
                {"name": "c", "channels": ["webhook:https://elsewhere.test/"]},
            ],
            slack_webhook=None,
        )
    problems = err.value.fields["alerts"]
    assert len(problems) == 3
    assert problems[0].startswith("rule 2 ('a'): when must be")
    assert problems[1].startswith("rule 2 ('a'): another rule has this name")
    assert problems[2].startswith("rule 3 ('c'): webhook:https://elsewhere.test/: ")


@pytest.mark.parametrize("value", ["rows > 1", {"name": "x"}, [{}] * 21])
def test_alerts_must_be_a_short_list(value: object) -> None:
    with pytest.raises(InvalidInput) as err:
        alert_rules_clean(value, slack_webhook=None)
    assert err.value.field == "alerts"


# -- evaluating and delivering ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_firing_rule_is_delivered_as_json_once_committed(
    receiver: Receiver, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    run_id = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [delivery] = evaluate(rules_for(receiver, severity="critical"), run_id=run_id)
    assert delivery.status == DeliveryStatus.PENDING and receiver.received == []  # not before the commit
    for callback in callbacks:
        callback()

    [(path, headers, payload)] = receiver.received
    assert path == "/hooks/ops"
    assert headers["Content-Type"] == "application/json"
    assert payload == {
        "rule": "big-export",
        "severity": "critical",
        "when": "always",
        "condition": "rows > 10",
        "run_id": run_id,
        "script_path": SCRIPT,
        "status": "completed",
        "source": "api",
        "metrics": {"duration_seconds": 12.5, "rows": 42.0},
        "link": f"/runs/{run_id}",
    }
    delivery = fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == (
        "sent",
        1,
        200,
        "",
    )
    assert delivery.finished_at is not None
    assert (delivery.rule, delivery.channel, delivery.severity) == ("big-export", "webhook", "critical")


@pytest.mark.django_db
def test_a_rule_whose_condition_is_false_makes_no_delivery(receiver: Receiver) -> None:
    assert evaluate(rules_for(receiver, condition="rows > 100")) == []
    assert not AlertDelivery.objects.exists()


@pytest.mark.django_db
def test_a_condition_compares_with_the_baseline_given(receiver: Receiver) -> None:
    rules = rules_for(receiver, condition="duration_seconds > baseline.p95 * 1.5")
    assert evaluate(rules, baselines={"duration_seconds": {"p95": 10.0}}) == []  # 12.5 < 15
    assert len(evaluate(rules, baselines={"duration_seconds": {"p95": 5.0}})) == 1
    assert evaluate(rules) == []  # no baseline: the comparison is false


@pytest.mark.django_db
def test_delivery_retries_server_errors_then_succeeds(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_RETRIES", "3")
    receiver.script(500, 503, 204)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = evaluate(rules_for(receiver))

    delivery = fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 3, 204)
    assert delivery.error.splitlines() == ["attempt 1: HTTP 500", "attempt 2: HTTP 503"]
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_delivery_gives_up_after_the_configured_attempts_backing_off(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_RETRIES", "4")
    monkeypatch.setattr(delivery_module, "BACKOFF_SECONDS", 1.0)
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    receiver.script(500, 500, 429, 502, 200)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = evaluate(rules_for(receiver))

    delivery = fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 4, 502)
    assert len(delivery.error.splitlines()) == 4
    assert len(receiver.received) == 4
    assert waits == [1.0, 2.0, 4.0]


@pytest.mark.django_db
def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.script(404)
    [delivery] = evaluate(rules_for(receiver))
    assert alert_deliver(delivery.pk) == "failed"
    delivery = fresh(delivery)
    assert (delivery.attempts, delivery.response_code, delivery.error) == (1, 404, "attempt 1: HTTP 404")
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_redirects_are_never_followed(receiver: Receiver) -> None:
    # A redirect to an address the allowlist would refuse (here: the receiver's own /internal).
    receiver.script((302, {"Location": f"{receiver.base}/internal"}), (307, {"Location": "/internal"}))
    [delivery] = evaluate(rules_for(receiver))
    assert alert_deliver(delivery.pk) == "failed"

    delivery = fresh(delivery)
    assert (delivery.attempts, delivery.response_code) == (1, 302)
    assert "redirect to" in delivery.error and "not followed" in delivery.error
    assert receiver.paths() == ["/hooks/ops"]


@pytest.mark.django_db
def test_a_slow_receiver_times_out(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_TIMEOUT", "0.2")
    monkeypatch.setenv("SCRIPTOPS_ALERT_RETRIES", "1")
    receiver.script(1.0)
    [delivery] = evaluate(rules_for(receiver))
    started = time.monotonic()
    assert alert_deliver(delivery.pk) == "failed"
    assert time.monotonic() - started < 0.9
    delivery = fresh(delivery)
    assert delivery.response_code is None and "timed out" in delivery.error


@pytest.mark.django_db
def test_an_unreachable_receiver_fails_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "http://127.0.0.1:9/")  # discard port: refused
    monkeypatch.setenv("SCRIPTOPS_ALERT_RETRIES", "2")
    monkeypatch.setattr(delivery_module, "BACKOFF_SECONDS", 0.0)
    rules = alert_rules_clean(
        [{"name": "x", "channels": ["webhook:http://127.0.0.1:9/x"]}], slack_webhook=None
    )
    [delivery] = evaluate(rules)
    assert alert_deliver(delivery.pk) == "failed"
    delivery = fresh(delivery)
    assert delivery.attempts == 2 and delivery.error.startswith("attempt 1: ")


@pytest.mark.django_db
def test_a_url_taken_off_the_allowlist_is_refused_at_delivery(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    [delivery] = evaluate(rules_for(receiver))
    monkeypatch.setenv("SCRIPTOPS_ALERT_URL_ALLOWLIST", "https://hooks.example.test/")

    assert alert_deliver(delivery.pk) == "refused"
    delivery = fresh(delivery)
    assert delivery.status == "refused" and "not on SCRIPTOPS_ALERT_URL_ALLOWLIST" in delivery.error
    assert delivery.attempts == 0 and receiver.received == []


@pytest.mark.django_db
def test_a_delivery_is_sent_once_and_the_task_never_raises(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    [delivery] = evaluate(rules_for(receiver))
    assert alert_deliver(delivery.pk) == "sent"
    assert alert_deliver(delivery.pk) is None  # already handled: not sent twice
    assert alert_deliver(10**9) is None  # gone
    assert len(receiver.received) == 1

    [broken] = evaluate(rules_for(receiver))

    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(delivery_module, "_post", explode)
    assert alert_deliver(broken.pk) == "failed"
    assert fresh(broken).error == "internal error: RuntimeError: boom"


@pytest.mark.django_db
def test_slack_gets_a_slack_payload_at_the_slack_webhook(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = f"{receiver.base}/hooks{SLACK_PATH}"
    rules = alert_rules_clean([{"name": "<b>", "channels": ["slack"]}], slack_webhook=slack)
    [delivery] = evaluate(rules, status="failed", slack_webhook=slack)
    assert (delivery.channel, delivery.url) == ("slack", slack)
    assert alert_deliver(delivery.pk) == "sent"

    [(path, _, payload)] = receiver.received
    assert path == f"/hooks{SLACK_PATH}"
    assert payload["text"].startswith("[warning] <b>: /srv/scripts/export.py failed")
    assert payload["blocks"][0]["type"] == "section"
    assert "&lt;b&gt;" in payload["blocks"][0]["text"]["text"]  # mrkdwn escaped
    assert payload["scriptops"]["run_id"] == delivery.payload["scriptops"]["run_id"]


# -- when, scheduled_only, cooldown ---------------------------------------------------------------


@pytest.mark.django_db
def test_failure_rules_fire_for_failed_runs_only(receiver: Receiver) -> None:
    rules = rules_for(receiver, when="failure")
    assert evaluate(rules, status="completed") == []
    assert evaluate(rules, status="cancelled") == []
    assert len(evaluate(rules, status="failed")) == 1


@pytest.mark.django_db
def test_scheduled_only_rules_fire_for_scheduled_runs_only(receiver: Receiver) -> None:
    rules = rules_for(receiver, scheduled_only=True)
    assert evaluate(rules, scheduled=False) == []
    [delivery] = evaluate(rules, scheduled=True)
    assert delivery.payload["source"] == "schedule"


def record_outcome(status: str, *, minutes_ago: int, script_path: str = SCRIPT) -> str:
    """A finished run as history has it: its duration point with the run's final status."""
    series, _ = Series.objects.get_or_create(
        path_key=path_key(script_path), metric="duration_seconds", defaults={"script_path": script_path}
    )
    run_id = str(uuid.uuid4())
    Point.objects.create(
        series=series,
        run_id=run_id,
        recorded_at=timezone.now() - timedelta(minutes=minutes_ago),
        value=1.0,
        status=status,
        source="api",
    )
    return run_id


@pytest.mark.django_db
def test_recovery_fires_on_the_first_success_after_failures_only(receiver: Receiver) -> None:
    rules = rules_for(receiver, when="recovery", condition="true")
    assert evaluate(rules) == []  # no history: nothing to recover from

    record_outcome("completed", minutes_ago=30)
    record_outcome("failed", minutes_ago=20)
    record_outcome("failed", minutes_ago=10, script_path="/srv/scripts/other.py")  # another script
    assert evaluate(rules, status="failed") == []  # still failing

    # This run's own point is recorded before the rules run: it is not "the previous run".
    this_run = record_outcome("completed", minutes_ago=0)
    [delivery] = evaluate(rules, run_id=this_run)
    assert delivery.payload["when"] == "recovery"

    next_run = record_outcome("completed", minutes_ago=-1)
    assert evaluate(rules, run_id=next_run) == []  # the second success is no recovery


@pytest.mark.django_db
def test_cancelled_then_completed_is_a_recovery(receiver: Receiver) -> None:
    record_outcome("cancelled", minutes_ago=5)
    assert len(evaluate(rules_for(receiver, when="recovery"))) == 1


@pytest.mark.django_db
def test_cooldown_throttles_a_rule_that_keeps_firing(
    receiver: Receiver, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    rules = rules_for(receiver, cooldown=600)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            [first] = evaluate(rules)
        clock.shift(timedelta(seconds=599))
        with django_capture_on_commit_callbacks(execute=True) as queued:
            [second] = evaluate(rules)
        assert queued == []  # nothing to send
        clock.shift(timedelta(seconds=2))
        with django_capture_on_commit_callbacks(execute=True):
            [third] = evaluate(rules)

    assert [fresh(d).status for d in (first, second, third)] == ["sent", "throttled", "sent"]
    assert "cooldown" in fresh(second).error and fresh(second).finished_at is not None
    assert len(receiver.received) == 2
    assert AlertState.objects.get().rule == "big-export"


@pytest.mark.django_db
def test_cooldown_is_per_script_and_rule(receiver: Receiver) -> None:
    evaluate(rules_for(receiver, cooldown=600))
    [other] = evaluate(rules_for(receiver, cooldown=600, name="other-rule"))
    assert other.status == "pending"
    assert [d.status for d in evaluate(rules_for(receiver, cooldown=600))] == ["throttled"]


@pytest.mark.django_db
def test_no_cooldown_means_every_run_alerts(receiver: Receiver) -> None:
    rules = rules_for(receiver)
    assert [d.status for d in evaluate(rules) + evaluate(rules)] == ["pending", "pending"]
    assert not AlertState.objects.exists()


@pytest.mark.django_db
def test_each_channel_gets_its_delivery(receiver: Receiver) -> None:
    rules = rules_for(
        receiver, channels=[f"webhook:{receiver.base}/hooks/a", f"webhook:{receiver.base}/hooks/b"]
    )
    deliveries = evaluate(rules)
    assert [d.url for d in deliveries] == [f"{receiver.base}/hooks/a", f"{receiver.base}/hooks/b"]
