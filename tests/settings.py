"""Test settings: the real settings, with the few changes tests need, set in one place."""

from scriptops.settings import *  # noqa: F403
from scriptops.settings import Q_CLUSTER

# A fast hasher: password hashing is not what the tests measure.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Unit tests run queued tasks in-process (when on_commit callbacks are executed).
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Short supervision timings keep the engine tests quick.
STOP_GRACE = 1.0
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 5.0
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"principal": "100000/min", "anon": "100000/min"},
}
