"""Alert rules: checked when a run is requested, evaluated when it ends, delivered later.

A rule (``alerts`` on a run or a task)::

    {"name": "slow", "condition": "duration_seconds > baseline.p95 * 1.5",
     "channels": ["webhook:https://hooks.example.com/x", "slack"], "severity": "warning",
     "when": "always", "scheduled_only": false, "cooldown": 3600}

- ``condition``: :mod:`analytics.expressions` (parsed, never run as Python); default ``true``;
- ``when``: ``always`` (default), ``failure`` (the run's final status is ``failed``, gates
  included) or ``recovery`` (the run completed and the script's previous finished run did
  not: the first success after failures);
- ``scheduled_only``: only for runs a scheduled task started;
- ``cooldown``: seconds; a rule that fired for the script less than this ago is recorded as
  ``throttled`` instead of being sent again.

Outbound URLs must start with a prefix of ``SCRIPTOPS_ALERT_URL_ALLOWLIST`` (default: none),
compared by scheme, host, port and path, never as a bare string (``https://hooks.example.com``
does not allow ``https://hooks.example.com.evil.test``). The URL is checked when the rules
are cleaned and again by the delivery task (the allowlist may have changed meanwhile).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from analytics import conf
from analytics.expressions import ExpressionError, parse
from analytics.models import AlertDelivery, AlertState, DeliveryStatus, Point, path_key
from core.errors import InvalidInput

logger = logging.getLogger(__name__)

DELIVER_TASK: Final = "analytics.tasks.alert_deliver"
WHEN: Final = ("always", "failure", "recovery")
SEVERITIES: Final = ("info", "warning", "error", "critical")
RULE_FIELDS: Final = frozenset(
    {"name", "condition", "channels", "severity", "when", "scheduled_only", "cooldown"}
)
MAX_RULES: Final = 20
MAX_CHANNELS: Final = 10
MAX_NAME: Final = 100  # AlertDelivery.rule / AlertState.rule
MAX_URL: Final = 2000
MAX_COOLDOWN: Final = 30 * 24 * 3600
# The metric every finished run records: its points say how the script's runs ended.
OUTCOME_METRIC: Final = "duration_seconds"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


# -- URLs ------------------------------------------------------------------------------------


def _split(url: str) -> SplitResult | None:
    """The parts of an http(s) URL, or None for anything else (or one that hides tricks:
    credentials, spaces, control characters)."""
    if not url or len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS[parts.scheme]


def _allowed_by(url: SplitResult, prefix: SplitResult) -> bool:
    if (url.scheme, url.hostname, _port(url)) != (prefix.scheme, prefix.hostname, _port(prefix)):
        return False
    allowed = prefix.path
    if not allowed or allowed == "/":
        return True
    # ".../T000/" allows what is under it; ".../T000" also that URL itself.
    if allowed.endswith("/"):
        return url.path.startswith(allowed)
    return url.path == allowed or url.path.startswith(allowed + "/")


def alert_url_check(url: str) -> None:
    """Raise :class:`InvalidInput` (field ``url``) unless alerts may be sent to ``url``: an
    http(s) URL under one of the ``SCRIPTOPS_ALERT_URL_ALLOWLIST`` prefixes."""
    parts = _split(url) if isinstance(url, str) else None
    if parts is None:
        raise InvalidInput("url", "Not a valid http(s) URL.")
    prefixes = [p for p in (_split(entry) for entry in conf.alert_url_allowlist()) if p is not None]
    if not prefixes:
        raise InvalidInput(
            "url",
            "Alert URLs are not allowed on this server: SCRIPTOPS_ALERT_URL_ALLOWLIST is empty.",
            code="not_allowed",
        )
    if not any(_allowed_by(parts, prefix) for prefix in prefixes):
        raise InvalidInput(
            "url",
            f"{parts.scheme}://{parts.netloc}{parts.path} is not on SCRIPTOPS_ALERT_URL_ALLOWLIST.",
            code="not_allowed",
        )


# -- rules -----------------------------------------------------------------------------------


def _rule_clean(raw: object, *, label: str, slack_webhook: str | None) -> tuple[dict[str, Any], list[str]]:
    """One rule, normalised, and the problems found (each prefixed with ``label``)."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        return {}, [f"{label}: a rule must be an object {{name, condition, channels, ...}}."]
    unknown = sorted(str(key) for key in raw if key not in RULE_FIELDS)
    if unknown:
        problems.append(f"{label}: unknown field(s) {', '.join(unknown)}.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: name is required.")
        name = ""
    elif len(name) > MAX_NAME:
        problems.append(f"{label}: name is longer than {MAX_NAME} characters.")
    condition = raw.get("condition", "true")
    if condition is None:
        condition = "true"
    if not isinstance(condition, str):
        problems.append(f"{label}: condition must be a string.")
    else:
        try:
            parse(condition)
        except ExpressionError as exc:
            problems.append(f"{label}: condition: {exc}")
    channels = raw.get("channels")
    cleaned_channels: list[str] = []
    if not isinstance(channels, list) or not channels:
        problems.append(f'{label}: channels must be a non-empty list ("webhook:<url>" or "slack").')
    elif len(channels) > MAX_CHANNELS:
        problems.append(f"{label}: at most {MAX_CHANNELS} channels.")
    else:
        for channel in channels:
            problem = _channel_problem(channel, slack_webhook=slack_webhook)
            if problem:
                problems.append(f"{label}: {problem}")
            elif channel not in cleaned_channels:
                cleaned_channels.append(channel)
    severity = raw.get("severity", "warning")
    if severity is None:
        severity = "warning"
    if severity not in SEVERITIES:
        problems.append(f"{label}: severity must be one of {', '.join(SEVERITIES)}.")
    when = raw.get("when", "always")
    if when is None:
        when = "always"
    if when not in WHEN:
        problems.append(f"{label}: when must be one of {', '.join(WHEN)}.")
    scheduled_only = raw.get("scheduled_only", False)
    if scheduled_only is None:
        scheduled_only = False
    if not isinstance(scheduled_only, bool):
        problems.append(f"{label}: scheduled_only must be true or false.")
    cooldown = raw.get("cooldown", 0)
    if cooldown is None:
        cooldown = 0
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, (int, float))
        or cooldown != cooldown  # NaN
        or not 0 <= cooldown <= MAX_COOLDOWN
        or cooldown != int(cooldown)
    ):
        problems.append(f"{label}: cooldown must be whole seconds from 0 to {MAX_COOLDOWN}.")
        cooldown = 0
    rule = {
        "name": name,
        "condition": condition,
        "channels": cleaned_channels,
        "severity": severity,
        "when": when,
        "scheduled_only": scheduled_only,
        "cooldown": int(cooldown),
    }
    return rule, problems


def _channel_problem(channel: object, *, slack_webhook: str | None) -> str | None:
    if channel == "slack":
        if not slack_webhook:
            return 'the "slack" channel needs slack_webhook.'
        return None  # slack_webhook is checked on its own
    if not isinstance(channel, str) or not channel.startswith("webhook:"):
        return f'unknown channel {channel!r} ("webhook:<url>" or "slack").'
    try:
        alert_url_check(channel.removeprefix("webhook:"))
    except InvalidInput as exc:
        return f"{channel}: {exc.message}"
    return None


def alert_rules_clean(value: object, *, slack_webhook: str | None) -> list[dict[str, Any]]:
    """The rules, normalised (every field present, defaults filled in); raises
    :class:`InvalidInput` on field ``alerts`` listing every problem, each naming its rule."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(
            "alerts", "alerts must be a list of rules [{name, condition, channels, severity?}]."
        )
    if len(value) > MAX_RULES:
        raise InvalidInput("alerts", f"at most {MAX_RULES} alert rules.")
    rules: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        label = f"rule {index + 1}" + (f" ({name!r})" if isinstance(name, str) and name else "")
        rule, found = _rule_clean(raw, label=label, slack_webhook=slack_webhook)
        problems.extend(found)
        if rule.get("name") in seen:
            problems.append(f"{label}: another rule has this name (names key the cooldown).")
        seen.add(rule.get("name", ""))
        rules.append(rule)
    if problems:
        raise InvalidInput({"alerts": problems})
    return rules


# -- evaluation ------------------------------------------------------------------------------


def _previous_outcome(*, script_path: str, run_id: str) -> str | None:
    """The final status of the script's previous finished run, from its history points
    (analytics never reads the runs table: it sits on a floor above). None when unknown."""
    point = (
        Point.objects.filter(series__path_key=path_key(script_path), series__metric=OUTCOME_METRIC)
        .exclude(run_id=run_id)
        .order_by("-recorded_at", "-id")
        .values_list("status", flat=True)
        .first()
    )
    return point


def _fires(rule: Mapping[str, Any], *, status: str, scheduled: bool, previous: str | None) -> bool:
    if rule.get("scheduled_only") and not scheduled:
        return False
    when = rule.get("when") or "always"
    if when == "failure":
        return status == "failed"
    if when == "recovery":
        return status == "completed" and previous is not None and previous != "completed"
    return True


def _state_key(script_path: str, rule: str) -> str:
    return hashlib.sha256(f"{script_path}\0{rule}".encode("utf-8", "surrogatepass")).hexdigest()


def _cooldown_passed(*, script_path: str, rule: str, cooldown: int, now: Any) -> bool:
    """Compare-and-set on the rule's state: True (and the state moved to now) when the rule
    last fired for this script at least ``cooldown`` seconds ago, or never. Two runs ending
    together cannot both pass: only one update matches."""
    key = _state_key(script_path, rule)
    moved = AlertState.objects.filter(key=key, last_fired_at__lte=now - timedelta(seconds=cooldown)).update(
        last_fired_at=now
    )
    if moved:
        return True
    if AlertState.objects.filter(key=key).exists():
        return False
    try:
        with transaction.atomic():  # a savepoint: a racing insert must not spoil the run's transaction
            AlertState.objects.create(
                key=key, script_path=script_path, rule=rule[:MAX_NAME], last_fired_at=now
            )
    except IntegrityError:
        return False  # another run fired it just now
    return True


def _payload(
    *,
    rule: Mapping[str, Any],
    channel: str,
    run_id: str,
    script_path: str,
    status: str,
    source: str,
    values: Mapping[str, float | str | None],
) -> dict[str, Any]:
    metrics = {
        name: value
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    body: dict[str, Any] = {
        "rule": rule["name"],
        "severity": rule.get("severity") or "warning",
        "when": rule.get("when") or "always",
        "condition": rule.get("condition") or "true",
        "run_id": run_id,
        "script_path": script_path,
        "status": status,
        "source": source,
        "metrics": metrics,
        "link": f"/runs/{run_id}",
    }
    if channel != "slack":
        return body
    # Slack's incoming webhooks take {"text", "blocks"}: text is the notification line.
    text = f"[{body['severity']}] {rule['name']}: {script_path} {status} (run {run_id})"
    shown = ", ".join(f"{name}={value:g}" for name, value in sorted(metrics.items())[:12])
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(text)}*"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _slack_escape(f"condition: {body['condition']} | {shown or 'no metrics'}")[
                            :2900
                        ],
                    }
                ],
            },
        ],
        "scriptops": body,
    }


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters (a script path is user input)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alerts_evaluate(
    *,
    run_id: str,
    script_path: str,
    status: str,
    source: str,
    scheduled: bool,
    values: Mapping[str, float | str | None],
    rules: list[dict[str, Any]],
    slack_webhook: str | None,
    baselines: Mapping[str, Mapping[str, float | None]],
) -> list[int]:
    """Evaluate a finished run's rules (already cleaned by :func:`alert_rules_clean`): one
    :class:`AlertDelivery` per channel of each rule that fires, ``pending`` (its delivery
    task queued once the caller's transaction commits) or ``throttled`` (cooldown). Call it
    inside the run's final transaction, after its points are recorded. Returns the ids of
    the deliveries created. A rule that cannot be evaluated any more (a condition stored
    before the language changed) is logged and skipped: it must not fail the run."""
    previous: str | None = None
    if any(rule.get("when") == "recovery" for rule in rules):
        previous = _previous_outcome(script_path=script_path, run_id=run_id)
    now = timezone.now()
    created: list[AlertDelivery] = []
    for rule in rules:
        if not _fires(rule, status=status, scheduled=scheduled, previous=previous):
            continue
        try:
            holds = parse(str(rule.get("condition") or "true")).evaluate(values, baselines)
        except ExpressionError:
            logger.warning("alert rule %r of %s has a bad condition; skipped", rule.get("name"), script_path)
            continue
        if not holds:
            continue
        cooldown = int(rule.get("cooldown") or 0)
        throttled = cooldown > 0 and not _cooldown_passed(
            script_path=script_path, rule=str(rule["name"]), cooldown=cooldown, now=now
        )
        for channel in rule.get("channels") or []:
            if channel == "slack":
                kind, url = "slack", slack_webhook or ""
            else:
                kind, url = "webhook", str(channel).removeprefix("webhook:")
            created.append(
                AlertDelivery(
                    run_id=run_id,
                    script_path=script_path,
                    rule=str(rule["name"])[:MAX_NAME],
                    severity=rule.get("severity") or "warning",
                    channel=kind,
                    url=url,
                    payload=_payload(
                        rule=rule,
                        channel=kind,
                        run_id=run_id,
                        script_path=script_path,
                        status=status,
                        source=source,
                        values=values,
                    ),
                    status=DeliveryStatus.THROTTLED if throttled else DeliveryStatus.PENDING,
                    error=f"cooldown: the rule fired less than {cooldown} s ago" if throttled else "",
                    finished_at=now if throttled else None,
                    created_at=now,
                )
            )
    if not created:
        return []
    # One by one (not bulk_create): the ids are needed on every database.
    for delivery in created:
        delivery.save(force_insert=True)
    pending = [d.pk for d in created if d.status == DeliveryStatus.PENDING]
    if pending:
        transaction.on_commit(lambda: alerts_queue(delivery_ids=pending))
    return [d.pk for d in created]


def alerts_queue(*, delivery_ids: list[int]) -> None:
    """Queue one delivery task per alert on the task cluster (not the runs queue). Runs
    after the commit: the task must find its row."""
    for delivery_id in delivery_ids:
        try:
            async_task(DELIVER_TASK, delivery_id, task_name=f"alert {delivery_id}", hook=None)
        except Exception:  # the broker is down: the row stays pending, the run is finished
            logger.exception("could not queue alert delivery %s", delivery_id)
