"""The API rate limit: a sliding-window counter per API key (``core.throttling``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.test import APIClient

from core.roles import Role
from core.services import api_key_create
from core.throttling import _count
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# A minute boundary, so each test knows where its windows start.
T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def four_a_minute(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "principal": "4/min"},
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client() -> APIClient:
    issued = api_key_create(user=UserFactory(role=Role.READONLY), name="rate")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    return api


def test_the_previous_window_still_counts_for_the_part_of_it_within_the_period(
    four_a_minute: None, client: APIClient
) -> None:
    with time_machine.travel(T0.replace(second=50), tick=False) as clock:
        assert [client.get("/api/stats").status_code for _ in range(4)] == [200] * 4
        assert client.get("/api/stats").status_code == 429
        # 20 s later a new fixed window has begun, but most of the last 60 s are still full:
        # 5 counted * 50/60 + this one > 4.
        clock.move_to(T0.replace(minute=1, second=10))
        response = client.get("/api/stats")
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 50  # at most the rest of this window
        # Near the end of the window little of the previous one is left: 5 * 5/60 + 2 < 4.
        clock.move_to(T0.replace(minute=1, second=55))
        assert client.get("/api/stats").status_code == 200


def test_hits_from_many_threads_are_all_counted(four_a_minute: None) -> None:
    """The count is one atomic increment (DRF's read-modify-write loses concurrent hits)."""
    barrier = threading.Barrier(8)

    def hit() -> None:
        barrier.wait()
        for _ in range(25):
            _count("rate-test:1", "rate-test:0", ttl=120)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _count("rate-test:1", "rate-test:0", ttl=120) == (201, 0)
