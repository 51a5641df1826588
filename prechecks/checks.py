"""System checks: a bad pre-check setting stops start-up instead of the first run."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured

from prechecks import conf


@register()
def precheck_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    for reader in (conf.block_policy, conf.timeout, conf.osv_url, conf.cache_ttl):
        try:
            reader()
        except ImproperlyConfigured as exc:
            problems.append(Error(str(exc), id="prechecks.E001"))
    return problems
