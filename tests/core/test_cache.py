"""The Redis cache with its client kept (``core/cache.py``); needs Redis (the PostgreSQL +
Redis pass of ``make test`` sets ``SCRIPTOPS_REDIS_URL``)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from core.cache import RedisCache
from core.counters import count_hit

pytestmark = pytest.mark.skipif(
    not os.environ.get("SCRIPTOPS_REDIS_URL"), reason="SCRIPTOPS_REDIS_URL is not set: no Redis to talk to"
)


@pytest.fixture
def cache() -> Iterator[RedisCache]:
    backend = RedisCache(os.environ["SCRIPTOPS_REDIS_URL"], {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    yield backend
    backend.close()


def test_the_settings_use_it_when_redis_is_configured() -> None:
    assert isinstance(caches["default"], RedisCache)


def test_one_client_serves_every_call_and_the_cache_works_through_it(cache: RedisCache) -> None:
    client = cache._cache.get_client("a", write=True)
    assert cache._cache.get_client("b") is client  # one server: reads and writes share it
    # Under ASGI every request's context gets a backend object of its own: they share the
    # client too (and so its pool: no new connection per request).
    url = os.environ["SCRIPTOPS_REDIS_URL"]
    assert RedisCache(url, {})._cache.get_client() is client
    assert RedisCache(url, {"KEY_PREFIX": "other"})._cache.get_client() is client
    other_db = url.rsplit("/", 1)[0] + "/15"
    assert RedisCache(other_db, {})._cache.get_client() is not client

    cache.set("a", {"n": 1}, 30)
    cache.set_many({"b": 2, "c": "three"}, 30)
    assert cache.get("a") == {"n": 1}
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": {"n": 1}, "b": 2, "c": "three"}
    assert cache.incr("b", 5) == 7
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b", "c"]) == {"c": "three"}
    assert cache._cache.get_client() is client


def test_threads_sharing_the_client_lose_no_count() -> None:
    """The rate limit's counter (on the default cache) from 8 threads at once: every hit
    counted once."""
    key = f"hits-{uuid.uuid4().hex}"
    counts: list[int] = []

    def hit() -> None:
        for _ in range(50):
            counts.append(count_hit(key, f"{key}-before", ttl=60)[0])

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 401))


def test_a_request_context_of_its_own_opens_no_new_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request under daphne runs in a context where Django's cache objects were never
    set (a new one each time, here an empty context): they reuse the process's
    connections."""
    import contextvars

    from redis.connection import AbstractConnection

    def guard_read() -> None:
        caches["default"].get_many(["scriptops:badkey:x:1", "scriptops:badkey:x:0"])

    contextvars.Context().run(guard_read)
    opened: list[object] = []
    on_connect = AbstractConnection.on_connect_check_health  # what connect() calls on a new socket

    def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return on_connect(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "on_connect_check_health", counted)
    for _ in range(20):
        contextvars.Context().run(guard_read)
    assert opened == []
