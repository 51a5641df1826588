"""API key guessing (core.key_guard): bad keys per address, refused with 429 past a limit."""

from __future__ import annotations

import asyncio

import pytest
import time_machine
from channels.testing import WebsocketCommunicator
from django.test import Client

from core.key_guard import bad_keys_reset
from core.roles import Role
from core.services import api_key_create
from core.ws_auth import CLOSE_TOO_MANY_BAD_KEYS
from scriptops.asgi import application
from tests.factories import RunFactory, UserFactory

LIMIT = 4
WINDOW = 600
GUESSER = "203.0.113.7"


@pytest.fixture(autouse=True)
def _small_limit(settings) -> None:
    settings.API_KEY_FAILURE_LIMIT = LIMIT
    settings.API_KEY_FAILURE_WINDOW = WINDOW


@pytest.fixture
def valid_key(db) -> str:
    return api_key_create(user=UserFactory(username="reader", role=Role.READONLY), name="k").raw


def get(path: str, key: str, address: str = GUESSER):
    return Client(REMOTE_ADDR=address).get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.django_db
def test_bad_keys_past_the_limit_are_answered_429_with_retry_after(valid_key: str) -> None:
    with time_machine.travel(1_800_000_000, tick=False):  # the start of a window
        assert [get("/api/runs", f"sops_guess{i}").status_code for i in range(LIMIT)] == [401] * LIMIT

        refused = get("/api/runs", "sops_guess-next")

    assert refused.status_code == 429
    assert refused.json()["error"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 2 * WINDOW


@pytest.mark.django_db
def test_a_valid_key_from_a_refused_address_is_refused_too(valid_key: str) -> None:
    for i in range(LIMIT):
        get("/api/runs", f"sops_guess{i}")

    assert get("/api/runs", valid_key).status_code == 429  # or a right guess would show
    assert get("/api/runs", valid_key, address="198.51.100.4").status_code == 200


@pytest.mark.django_db
def test_the_refusal_ends_after_the_window_or_when_reset(valid_key: str) -> None:
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        for i in range(LIMIT):
            get("/api/runs", f"sops_guess{i}")
        assert get("/api/runs", valid_key).status_code == 429
        clock.shift(2 * WINDOW + 1)
        assert get("/api/runs", valid_key).status_code == 200

        for i in range(LIMIT):
            get("/api/runs", f"sops_guess{i}")
        assert get("/api/runs", valid_key).status_code == 429
        bad_keys_reset(address=GUESSER)
        assert get("/api/runs", valid_key).status_code == 200


@pytest.mark.django_db
def test_good_keys_and_sessions_do_not_count(valid_key: str) -> None:
    for _ in range(3 * LIMIT):
        assert get("/api/runs", valid_key).status_code == 200
    assert Client(REMOTE_ADDR=GUESSER).get("/api/runs").status_code == 401  # no key: not a guess
    assert get("/api/runs", valid_key).status_code == 200


@pytest.mark.django_db
def test_the_sse_stream_counts_and_refuses_query_keys_too(valid_key: str) -> None:
    run = RunFactory()
    path = f"/api/runs/{run.pk}/stream"
    client = Client(REMOTE_ADDR=GUESSER)
    for i in range(LIMIT):
        assert client.get(f"{path}?api_key=sops_guess{i}").status_code == 401

    refused = client.get(f"{path}?api_key={valid_key}")

    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


async def _ws_close_code(key: str, address: str) -> int:
    comm = WebsocketCommunicator(application, f"/ws/runs/?api_key={key}")
    comm.scope["client"] = [address, 50000]  # daphne's scope; the app has not started yet
    try:
        connected, _ = await comm.connect(timeout=10)
        assert connected
        output = await comm.receive_output(timeout=10)
        assert output["type"] == "websocket.close", output
        return int(output["code"])
    finally:
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_websocket_handshakes_count_and_are_closed_4429(valid_key: str) -> None:
    codes = [asyncio.run(_ws_close_code(f"sops_guess{i}", GUESSER)) for i in range(LIMIT)]
    assert codes == [4401] * LIMIT

    assert asyncio.run(_ws_close_code(valid_key, GUESSER)) == CLOSE_TOO_MANY_BAD_KEYS == 4429


@pytest.mark.django_db
def test_http_guesses_also_close_websockets_from_that_address(valid_key: str) -> None:
    for i in range(LIMIT):
        get("/api/runs", f"sops_guess{i}")

    assert asyncio.run(_ws_close_code(valid_key, GUESSER)) == 4429
