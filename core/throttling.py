"""Rate limiting per API key, else per user (rate: ``SCRIPTOPS_THROTTLE_RATE``)."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.counters import count_hit as _count


class PrincipalRateThrottle(SimpleRateThrottle):
    """``SCRIPTOPS_THROTTLE_RATE`` requests per period per API key, else per user.

    A sliding-window counter: this fixed window's count plus the previous window's,
    weighted by how much of the previous window still lies within one period of now.
    One atomic increment per request — where DRF's SimpleRateThrottle reads and rewrites
    the list of every recent request's time (up to 6,000 at the default rate) twice per
    request, which cost ~1 ms per API call with Redis, and loses counts when several
    processes serve one key at once. A refused request counts too: a client that keeps
    hammering stays refused.
    """

    scope = "principal"
    retry_after: float | None = None
    num_requests: int  # set from the rate by SimpleRateThrottle.__init__
    duration: int

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        into = now - window * self.duration
        current, previous = _count(f"{key}:{window}", f"{key}:{window - 1}", ttl=2 * int(self.duration))
        estimate = previous * (1.0 - into / self.duration) + current
        if estimate <= self.num_requests:
            return True
        self.retry_after = self.duration - into
        return False

    def wait(self) -> float | None:
        return self.retry_after

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
