"""Django's Redis cache with one Redis client per server, kept by the process.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` on every cache call
(redis-py fills two case-insensitive dictionaries of ~200 response callbacks in each:
~90 µs of CPU, where a ``MGET`` over loopback costs ~130 µs in all). And under ASGI
``caches["default"]`` is a new backend object in every request's context (Django keeps
cache objects in a context-local), each with its own connection pool: every request
opened a new connection to Redis. Every API request reads the bad-key guard and counts
the rate limit through the cache, and a run's websocket reads the guard too. Here the
client and its pool are kept per process, by server and options: a ``redis.Redis`` is
safe to share between threads (each command takes a connection from the pool), and the
pool starts afresh in a forked child.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_MADE = threading.Lock()


class KeptClientRedisCacheClient(RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]  # Django's; not in django-stubs
        options = self._pool_options  # type: ignore[attr-defined]  # Django's; not in django-stubs
        kept = (self._servers[index], tuple(sorted((k, repr(v)) for k, v in options.items())))  # type: ignore[attr-defined]  # Django's
        client = _CLIENTS.get(kept)
        if client is None:
            with _MADE:
                client = _CLIENTS.get(kept)
                if client is None:
                    pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's; not in django-stubs
                    client = _CLIENTS[kept] = self._client(connection_pool=pool)  # type: ignore[attr-defined]  # Django's
        return client


class RedisCache(DjangoRedisCache):
    """``CACHES["default"]["BACKEND"] = "core.cache.RedisCache"`` (set by the settings
    when ``SCRIPTOPS_REDIS_URL`` is)."""

    def __init__(self, server: Any, params: dict[str, Any]):
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient
