"""System checks for rules that span several settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def allowed_roots_check(app_configs: Any, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    for root in settings.ALLOWED_ROOTS:
        if not root.is_absolute():
            problems.append(
                Error(
                    f"SCRIPTOPS_ALLOWED_ROOTS entry {root} is not an absolute path.",
                    id="scriptops.E001",
                )
            )
        elif not root.is_dir():
            problems.append(
                Warning(
                    f"SCRIPTOPS_ALLOWED_ROOTS entry {root} does not exist (yet).",
                    hint="Create it or remove it from SCRIPTOPS_ALLOWED_ROOTS.",
                    id="scriptops.W001",
                )
            )
    if settings.HEARTBEAT_TIMEOUT <= settings.HEARTBEAT_INTERVAL * 2:
        problems.append(
            Error(
                "SCRIPTOPS_HEARTBEAT_TIMEOUT must exceed twice SCRIPTOPS_HEARTBEAT_INTERVAL.",
                id="scriptops.E002",
            )
        )
    return problems
