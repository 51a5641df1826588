"""Pre-check settings, read from ``SCRIPTOPS_*`` environment variables when asked (so tests
can change them with ``monkeypatch.setenv``)."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core.env import env_float, env_int, env_str
from prechecks.policy import DEFAULT_POLICY, Policy, policy_parse


def block_policy() -> Policy:
    """``SCRIPTOPS_PRECHECK_BLOCK``: what blocks a run (syntax in :mod:`prechecks.policy`)."""
    return policy_parse(env_str("SCRIPTOPS_PRECHECK_BLOCK") or DEFAULT_POLICY)


def timeout() -> float:
    """``SCRIPTOPS_PRECHECK_TIMEOUT``: seconds each tool may take (default 60)."""
    return env_float("SCRIPTOPS_PRECHECK_TIMEOUT", default=60.0, minimum=0.001)


def advisory_dir() -> Path | None:
    """``SCRIPTOPS_ADVISORY_DIR``: a folder of OSV advisories (JSON or YAML), e.g. a checkout
    of the PyPA advisory database. Unset: no local advisories."""
    value = env_str("SCRIPTOPS_ADVISORY_DIR")
    return Path(value).expanduser() if value else None


def osv_url() -> str | None:
    """``SCRIPTOPS_OSV_URL``: base URL of an OSV-compatible API (``POST /v1/querybatch``).
    Unset (the default): no network look-ups."""
    value = (env_str("SCRIPTOPS_OSV_URL") or "").strip()
    if value and not value.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"SCRIPTOPS_OSV_URL must be an http(s) URL, got {value!r}")
    return value or None


def cache_ttl() -> int:
    """``SCRIPTOPS_PRECHECK_CACHE_TTL``: seconds a result that includes dependency scanning
    is reused (advisories change while the script does not; default 86400). Code and secret
    results depend only on the file and the tools' versions and are reused for as long."""
    return env_int("SCRIPTOPS_PRECHECK_CACHE_TTL", default=86400, minimum=0)
