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

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A database file (on memory-backed /dev/shm when there is one) instead of SQLite's
    # in-memory shared-cache database: tests whose threads write at once (the runner
    # host's) then share it the way processes do in production (WAL, busy timeout),
    # where shared cache answers "database table is locked" at once.
    import tempfile
    from pathlib import Path as _Path

    _shm = _Path("/dev/shm")
    _dir = _shm if _shm.is_dir() and os.access(_shm, os.W_OK) else _Path(tempfile.gettempdir())
    DATABASES["default"]["TEST"] = {"NAME": str(_dir / f"scriptops-test-{os.getpid()}.sqlite3")}  # noqa: F405
