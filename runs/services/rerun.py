"""Run again with changes: a fresh run with another run's parameters and the caller's
changes on top. The original is never touched (a restart cancels an active run; a
rerun does not). Secrets the API never shows (environment values, the Slack webhook)
are taken from the original run when the caller sends the mask ``********`` back.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.models import User
from runs.models import RUN_OPTION_FIELDS, Run
from runs.request import launch_check, run_request_clean
from runs.services.lifecycle import run_enqueue

MASK = "********"
# What a rerun may change: the run options (not the script: that is another launch).
RERUN_FIELDS = frozenset(RUN_OPTION_FIELDS) | {"stream_output", "monitor_interval", "enable_history"}


def _unmasked_env(original: dict[str, str], given: Any) -> Any:
    if not isinstance(given, dict):
        return given  # run_request_clean names the problem
    return {name: (original.get(name, "") if value == MASK else value) for name, value in given.items()}


def run_rerun(*, run: Run, changes: Any, user: User | None = None) -> Run:
    """Queue a fresh run of ``run``'s script with its parameters and ``changes`` (run
    options; ``env_vars`` given is the whole new environment, a masked value keeping
    the original's), checked as a launch is. Linked to the original
    (``restarted_from``), with its library script and concurrency key."""
    if not isinstance(changes, dict):
        raise InvalidInput("non_field_errors", "Expected a JSON object of the run options to change.")
    unknown = sorted(set(changes) - RERUN_FIELDS)
    if unknown:
        raise InvalidInput(
            unknown[0], f"Not an option a rerun can change: {', '.join(unknown)} (the script stays the same)."
        )
    given = dict(changes)
    if "env_vars" in given:
        given["env_vars"] = _unmasked_env(run.env_vars or {}, given["env_vars"])
    if given.get("slack_webhook") == MASK:
        given["slack_webhook"] = run.slack_webhook
    base = {name: value for name, value in run.request_parameters().items() if name in RERUN_FIELDS}
    request = run_request_clean({**base, **given, "script_path": run.script_path})
    launch_check(request)
    params = {
        **request.run_fields(),
        "script_id": run.script_id,
        "concurrency_key": run.concurrency_key,
        "concurrency_limit": run.concurrency_limit,
    }
    return run_enqueue(params=params, user=user, source="rerun", restarted_from=run)
