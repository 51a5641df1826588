"""Which findings block a run: ``SCRIPTOPS_PRECHECK_BLOCK``.

A comma-separated list of rules; a result blocks when any rule matches a finding that is
not an accepted risk, or (with ``error``) when a tool gave no answer:

- ``secret``, ``code``, ``dependency`` — a finding of that kind, optionally with a minimum
  severity: ``code:high`` is high or critical; ``:any`` (the same as none) is every
  severity. For ``dependency`` this counts known vulnerabilities only.
- ``unpinned`` — an unpinned or unreadable requirement blocks too.
- ``error`` — a check that crashed, timed out or whose tool is missing blocks: without an
  answer the script is not known to be safe (fail closed).
- ``none`` — alone: nothing blocks; findings are only reported.

Default: ``secret,code:high,dependency,error``. A bad value raises ``ImproperlyConfigured``
naming the variable (at start-up, through the system check ``prechecks.E001``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import ImproperlyConfigured

from prechecks.tools import SEVERITIES, UNPARSABLE, UNPINNED, Finding, Severity

DEFAULT_POLICY = "secret,code:high,dependency,error"
_VARIABLE = "SCRIPTOPS_PRECHECK_BLOCK"
_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Policy:
    """Minimum blocking severity per kind (``None``: that kind never blocks)."""

    secret: Severity | None = None
    code: Severity | None = None
    dependency: Severity | None = None
    unpinned: bool = False
    error: bool = False

    def blocks(self, finding: Finding) -> bool:
        if finding.kind == "dependency" and finding.rule_id in (UNPINNED, UNPARSABLE):
            return self.unpinned
        minimum: Severity | None = getattr(self, finding.kind)
        return minimum is not None and _RANK[finding.severity] >= _RANK[minimum]


@lru_cache(maxsize=16)
def policy_parse(text: str) -> Policy:
    tokens = [token.strip().lower() for token in text.split(",")]
    if not any(tokens):
        raise ImproperlyConfigured(f"{_VARIABLE} is empty: use 'none' for a policy that never blocks")
    if tokens == ["none"]:
        return Policy()
    levels: dict[str, Severity] = {}
    flags: set[str] = set()
    for token in tokens:
        kind, _, level = token.partition(":")
        if kind in ("unpinned", "error") and not level:
            if kind in flags:
                raise ImproperlyConfigured(f"{_VARIABLE}: {kind!r} is given twice")
            flags.add(kind)
            continue
        if kind not in ("secret", "code", "dependency"):
            raise ImproperlyConfigured(
                f"{_VARIABLE}: unknown rule {token!r} (expected secret, code or dependency with an "
                "optional :low|medium|high|critical|any, unpinned, error, or none alone)"
            )
        if kind in levels:
            raise ImproperlyConfigured(f"{_VARIABLE}: {kind!r} is given twice")
        level = level or "any"
        if level == "any":
            levels[kind] = "low"
        elif level in _RANK:
            levels[kind] = SEVERITIES[_RANK[level]]
        else:
            raise ImproperlyConfigured(
                f"{_VARIABLE}: unknown severity {level!r} in {token!r} (low, medium, high, critical or any)"
            )
    return Policy(
        secret=levels.get("secret"),
        code=levels.get("code"),
        dependency=levels.get("dependency"),
        unpinned="unpinned" in flags,
        error="error" in flags,
    )
