"""Rate limiting per API key, else per user (rate: ``SCRIPTOPS_THROTTLE_RATE``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class PrincipalRateThrottle(SimpleRateThrottle):
    scope = "principal"

    def get_rate(self) -> str | None:
        # DRF copies the rates into a class attribute at import time, so a changed
        # setting (override_settings, a test) would be ignored: read it on each request.
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.")
        rate = rates[self.scope]
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # anonymous callers fall to AnonRateThrottle
        auth = getattr(request, "auth", None)
        ident = f"key-{auth.pk}" if auth is not None and hasattr(auth, "key_hash") else f"user-{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
