"""Cache-backed counters shared by the rate limits (no DRF: the websocket and SSE paths use them).

``count_hit`` is the sliding-window counter of :mod:`core.throttling`; the bad API key
guard (:mod:`core.key_guard`) counts with it too.
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def count_hit(current_key: str, previous_key: str, ttl: int) -> tuple[int, int]:
    """Count one hit in ``current_key``; return it with the count in ``previous_key``.

    Atomic across processes. With Redis one round trip (the counter is created with its
    expiry, then incremented); with another cache, ``add`` + ``incr``.
    """
    cache = caches["default"]  # the backend itself (``django.core.cache.cache`` is a proxy)
    if isinstance(cache, RedisCache):
        current_key, previous_key = cache.make_key(current_key), cache.make_key(previous_key)
        # The Redis client behind Django's cache: private, so not in django-stubs.
        client = cache._cache.get_client(current_key, write=True)  # type: ignore[attr-defined]
        pipe = client.pipeline(transaction=False)
        pipe.set(current_key, 0, ex=ttl, nx=True)
        pipe.incr(current_key)
        pipe.get(previous_key)
        _, current, previous = pipe.execute()
        return int(current), int(previous or 0)
    cache.add(current_key, 0, ttl)
    try:
        current = cache.incr(current_key)
    except ValueError:  # evicted between the two calls
        cache.add(current_key, 1, ttl)
        current = 1
    return current, int(cache.get(previous_key) or 0)
