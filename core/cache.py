"""Django's Redis cache with one Redis client per connection pool, kept.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` on every cache call
(the pool, and so the connections, are kept; the client object is not). redis-py fills
two case-insensitive dictionaries of ~200 response callbacks in each: ~90 µs of CPU per
call on this machine, where a ``MGET`` over loopback costs ~130 µs in all. Every API
request reads the bad-key guard and counts the rate limit through the cache, and a run's
websocket reads the guard too: with Redis, ~5 clients built per launched and followed run
in daphne. A ``redis.Redis`` is safe to share between threads (each command takes a
connection from the pool), and the pool starts afresh in a forked child.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class KeptClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]  # Django's; not in django-stubs
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's; not in django-stubs
            client = self._clients.setdefault(index, self._client(connection_pool=pool))  # type: ignore[attr-defined]  # Django's; not in django-stubs
        return client


class RedisCache(DjangoRedisCache):
    """``CACHES["default"]["BACKEND"] = "core.cache.RedisCache"`` (set by the settings
    when ``SCRIPTOPS_REDIS_URL`` is)."""

    def __init__(self, server: Any, params: dict[str, Any]):
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient
