"""Analytics settings, read from ``SCRIPTOPS_*`` environment variables when asked (so tests
can change them with ``monkeypatch.setenv``)."""

from __future__ import annotations

from core.env import env_float, env_int, env_list


def cost_cpu_hour() -> float:
    """``SCRIPTOPS_COST_CPU_HOUR``: the price of one CPU hour (default 0: no cost)."""
    return env_float("SCRIPTOPS_COST_CPU_HOUR", default=0.0, minimum=0.0)


def cost_gb_hour() -> float:
    """``SCRIPTOPS_COST_GB_HOUR``: the price of one GB of memory (peak RSS) for an hour."""
    return env_float("SCRIPTOPS_COST_GB_HOUR", default=0.0, minimum=0.0)


def usual_runs() -> int:
    """``SCRIPTOPS_ANALYTICS_USUAL_RUNS``: how many of a script's last successful runs
    "usual" (a run's record) and learned alert baselines are computed from (default 30)."""
    return env_int("SCRIPTOPS_ANALYTICS_USUAL_RUNS", default=30, minimum=1)


def alert_url_allowlist() -> list[str]:
    """``SCRIPTOPS_ALERT_URL_ALLOWLIST``: comma-separated URL prefixes alerts may be sent to
    (``https://hooks.slack.com/services/``). Empty (the default): no URL is allowed, so a
    user cannot make the server call an internal address."""
    return env_list("SCRIPTOPS_ALERT_URL_ALLOWLIST", default=[])


def alert_timeout() -> float:
    """``SCRIPTOPS_ALERT_TIMEOUT``: seconds one delivery attempt may take (default 5)."""
    return env_float("SCRIPTOPS_ALERT_TIMEOUT", default=5.0, minimum=0.1)


def alert_retries() -> int:
    """``SCRIPTOPS_ALERT_RETRIES``: attempts per alert delivery, the first included
    (default 3; 1 means no retry)."""
    return env_int("SCRIPTOPS_ALERT_RETRIES", default=3, minimum=1)
