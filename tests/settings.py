"""Test settings: the real settings, with the few changes tests need, set in one place."""

import os
from urllib.parse import urlsplit, urlunsplit

from scriptops.settings import *  # noqa: F403
from scriptops.settings import Q_CLUSTER, REDIS_URL

# A fast hasher: password hashing is not what the tests measure.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Unit tests run queued tasks in-process (when on_commit callbacks are executed).
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
# Short supervision timings keep the engine tests quick.
STOP_GRACE = 1.0
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 5.0
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"principal": "100000/min", "anon": "100000/min"},
}

if REDIS_URL:
    # Test processes (pytest-xdist workers) run at once: with Redis each gets a database of
    # its own for the cache, so a test that clears it or counts throttled requests never
    # sees another's. (The stacks of the integration tests keep the configured one.)
    from scriptops.settings import CACHES as _CACHES

    _worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    CACHES = {
        "default": {
            **_CACHES["default"],
            "LOCATION": urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{1 + _worker % 15}")),
        }
    }
