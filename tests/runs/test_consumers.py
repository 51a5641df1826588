"""The websocket API (seed 002): ``/ws/runs/`` (the feed) and ``/ws/runs/<id>/`` (one run).

These tests drive the real ASGI application (``scriptops.asgi.application``: origin
check, session/API-key auth, routing, consumers) with channels' WebsocketCommunicator.

A run is simulated by the test itself, exactly the way the runner in a django-q2
worker produces one: its output is appended with :class:`runs.logstore.LogWriter`
into ``settings.RUNS_DIR/<run id>`` and its state is written to the ``Run`` row (and
``RunEvent`` rows). That *is* the cross-process contract of the live views: the
consumers never receive the data from the runner, they read the persisted store and
the database, woken by the bus (``core.bus``: Unix sockets by default, Redis when
configured) the way the runner wakes them, with a slow poll as the fallback. So nothing
here needs a worker, and the same tests pass whether or not ``SCRIPTOPS_REDIS_URL`` is set.

Each test body is a coroutine run with ``async_to_sync``: the consumers'
``database_sync_to_async`` calls then run on the test's own thread and database
connection, so the test's writes and the consumers' reads never race for an SQLite
lock.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import bus
from core.models import User
from core.roles import Role
from core.services import api_key_create
from runs import consumers, events, live
from runs.logstore import LogWriter
from runs.models import EventKind, Run, RunEvent, RunStatus
from scriptops.asgi import application
from tests.factories import RunFactory, UserFactory
from tests.runs.helpers import batch_entries

pytestmark = pytest.mark.django_db(transaction=True)

# Generous: these are deadlines for a hang, not speed assertions (a shared small machine).
WAIT = 10.0


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test body on the test's thread (see the module docstring)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async_to_sync(fn)(*args, **kwargs)

    return wrapper


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def runs_dir(tmp_path: Path, settings: Any) -> Path:
    settings.RUNS_DIR = tmp_path / "runs"
    settings.RUNS_DIR.mkdir()
    return Path(settings.RUNS_DIR)


@pytest.fixture(autouse=True)
def short_close_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server closes a finished run's socket 0.3 s after execution_completed
    (30 s in production, see runs.consumers.CLOSE_GRACE)."""
    monkeypatch.setattr(consumers, "CLOSE_GRACE", 0.3)


@pytest.fixture
def api_key(runs_dir: Path) -> str:
    user = UserFactory(username="reader", role=Role.READONLY)
    return api_key_create(user=user, name="ws", role=Role.READONLY).raw


def running_run(**fields: Any) -> Run:
    return RunFactory(
        status=RunStatus.RUNNING,
        run_status=None,
        exit_code=None,
        started_at=timezone.now(),
        **fields,
    )


class SimulatedRun:
    """Plays the worker's part for one run: writes its store and its row."""

    def __init__(self, run: Run, *, segment_bytes: int | None = None, cap_bytes: int = 10 << 20):
        self.run = run
        self.writer = LogWriter(run.output_dir, cap_bytes=cap_bytes, segment_bytes=segment_bytes)
        self.ts = 1_700_000_000.0

    def write(self, *lines: str, stream: str = "stdout") -> None:
        """One record (one pipe read) of whole lines, then the runner's wake-up."""
        self.ts += 0.5
        self.writer.write(stream, "".join(f"{line}\n" for line in lines).encode(), self.ts)
        events.notify(events.run_channel(str(self.run.pk)), events.OUTPUT)

    async def awrite(self, *lines: str, stream: str = "stdout") -> None:
        await asyncio.to_thread(self.write, *lines, stream=stream)

    async def update(self, **fields: Any) -> None:
        await sync_to_async(Run.objects.filter(pk=self.run.pk).update)(**fields)
        events.run_changed(str(self.run.pk))

    async def event(self, kind: str, **data: Any) -> None:
        await sync_to_async(RunEvent.objects.create)(run=self.run, kind=kind, data=data)
        events.run_changed(str(self.run.pk))

    async def finish(self, *, exit_code: int = 0, status: str = RunStatus.COMPLETED) -> None:
        self.writer.close()
        run_status = {"completed": "success", "failed": "failed", "cancelled": "killed"}[status]
        await self.event(EventKind.SUCCESS if exit_code == 0 else EventKind.FAILURE, exit_code=exit_code)
        await self.update(
            status=status,
            run_status=run_status,
            exit_code=exit_code,
            finished_at=timezone.now(),
            duration=1.25,
            output_lines=self.writer.total_lines,
        )


def communicator(path: str, *, key: str | None = None, headers: list[tuple[bytes, bytes]] | None = None):
    if key is not None:
        path += ("&" if "?" in path else "?") + f"api_key={key}"
    return WebsocketCommunicator(application, path, headers=headers or [])


async def next_message(comm: WebsocketCommunicator, *, timeout: float = WAIT) -> dict[str, Any]:
    """The next frame sent to the client, parsed; fails on a close."""
    output = await comm.receive_output(timeout)
    assert output["type"] == "websocket.send", output
    message: dict[str, Any] = json.loads(output["text"])
    return message


async def collect(
    comm: WebsocketCommunicator,
    until: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = WAIT,
) -> list[dict[str, Any]]:
    """Messages up to and including the first one for which ``until`` holds."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; received {[m['type'] for m in got]}"
        message = await next_message(comm, timeout=left)
        got.append(message)
        if until(message):
            return got


async def receive_close(comm: WebsocketCommunicator, *, timeout: float = WAIT) -> int:
    output = await comm.receive_output(timeout)
    assert output["type"] == "websocket.close", output
    code: int = output.get("code", 1000)
    return code


async def close_code(
    path: str, *, key: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> int:
    """Open a socket that the server closes before sending anything: its close code."""
    comm = communicator(path, key=key, headers=headers)
    await comm.connect(timeout=WAIT)
    try:
        return await receive_close(comm)
    finally:
        await closing(comm)


async def following_a_running_run(api_key: str) -> tuple[SimulatedRun, WebsocketCommunicator]:
    """A running run, the worker's part for it, and a socket following it past its first status."""
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    await collect(comm, is_type("status"))
    return sim, comm


async def connected(comm: WebsocketCommunicator) -> dict[str, Any]:
    ok, _ = await comm.connect(timeout=WAIT)
    assert ok
    hello = await next_message(comm)
    assert hello["type"] == "connection_established", hello
    return hello


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == kind]


def is_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message["type"] == kind


def assert_envelope(message: dict[str, Any]) -> None:
    """Seed 002: every message is {"type", "data", "timestamp"} (an ISO-8601 time)."""
    assert set(message) == {"type", "data", "timestamp"}, message
    assert isinstance(message["data"], dict)
    assert timezone.datetime.fromisoformat(message["timestamp"])


async def quiet(comm: WebsocketCommunicator, seconds: float = 0.6) -> list[dict[str, Any]]:
    """Whatever arrives within ``seconds`` (for checking what must NOT arrive)."""
    # Not receive_output(timeout): its timeout cancels the application.
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if comm.output_queue.empty():
            await asyncio.sleep(0.02)
            continue
        output = comm.output_queue.get_nowait()
        assert output["type"] == "websocket.send", output
        got.append(json.loads(output["text"]))
    return got


async def closing(comm: WebsocketCommunicator) -> None:
    try:
        await comm.disconnect(timeout=WAIT)
    except Exception:
        pass


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/runs/", "/ws/runs/{run}/"])
@run_async
async def test_no_credentials_is_closed_4401_before_anything_is_sent(runs_dir: Path, path: str) -> None:
    run = await sync_to_async(running_run)()
    assert await close_code(path.format(run=run.pk)) == 4401


@pytest.mark.parametrize("key", ["sops_not-a-real-key", "not-even-the-prefix"])
@run_async
async def test_a_bad_api_key_is_closed_4401(runs_dir: Path, api_key: str, key: str) -> None:
    run = await sync_to_async(running_run)()
    for path in ("/ws/runs/", f"/ws/runs/{run.pk}/"):
        assert await close_code(path, key=key) == 4401


@run_async
async def test_a_revoked_api_key_is_closed_4401(runs_dir: Path) -> None:
    def make() -> str:
        issued = api_key_create(user=UserFactory(username="gone"), name="old", role=Role.READONLY)
        issued.key.revoked_at = timezone.now()
        issued.key.save(update_fields=["revoked_at"])
        return issued.raw

    raw = await sync_to_async(make)()
    assert await close_code("/ws/runs/", key=raw) == 4401


def session_cookie(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())]


@run_async
async def test_a_role_that_grants_nothing_is_closed_4403(runs_dir: Path) -> None:
    # Every real role may read; a role no longer known (a stale value in the database)
    # authenticates but grants nothing: the socket is closed as forbidden, not as anonymous.
    def make() -> list[tuple[bytes, bytes]]:
        user = UserFactory(username="stale-role", role=Role.READONLY)
        User.objects.filter(pk=user.pk).update(role="retired")
        user.refresh_from_db()
        return session_cookie(user)

    headers = await sync_to_async(make)()
    run = await sync_to_async(running_run)()
    for path in ("/ws/runs/", f"/ws/runs/{run.pk}/"):
        assert await close_code(path, headers=headers) == 4403


@run_async
async def test_api_key_in_the_query_string_is_accepted(runs_dir: Path, api_key: str) -> None:
    comm = communicator("/ws/runs/", key=api_key)
    hello = await connected(comm)
    assert_envelope(hello)
    await closing(comm)


@run_async
async def test_api_key_header_is_accepted(runs_dir: Path, api_key: str) -> None:
    comm = communicator("/ws/runs/", headers=[(b"x-api-key", api_key.encode())])
    await connected(comm)
    await closing(comm)


@run_async
async def test_session_cookie_is_accepted(runs_dir: Path) -> None:
    def make() -> tuple[list[tuple[bytes, bytes]], Run]:
        user = UserFactory(username="browser", role=Role.READONLY)
        return session_cookie(user), running_run()

    headers, run = await sync_to_async(make)()
    for path in ("/ws/runs/", f"/ws/runs/{run.pk}/"):
        comm = communicator(path, headers=headers)
        await connected(comm)
        await closing(comm)


@run_async
async def test_an_inactive_users_session_is_closed_4401(runs_dir: Path) -> None:
    def make() -> list[tuple[bytes, bytes]]:
        user = UserFactory(username="left", role=Role.ADMIN)
        headers = session_cookie(user)
        User.objects.filter(pk=user.pk).update(is_active=False)
        return headers

    headers = await sync_to_async(make)()
    assert await close_code("/ws/runs/", headers=headers) == 4401


@run_async
async def test_a_foreign_origin_cannot_ride_the_session(runs_dir: Path) -> None:
    def make() -> list[tuple[bytes, bytes]]:
        return session_cookie(UserFactory(username="victim", role=Role.ADMIN))

    headers = await sync_to_async(make)()
    comm = communicator("/ws/runs/", headers=[*headers, (b"origin", b"https://evil.example")])
    ok, _ = await comm.connect(timeout=WAIT)
    assert not ok
    await closing(comm)


@pytest.mark.parametrize("path", ["/ws/runs/", "/ws/runs/{run}/"])
@run_async
async def test_api_key_as_a_bearer_token_is_accepted(runs_dir: Path, api_key: str, path: str) -> None:
    run = await sync_to_async(running_run)()
    comm = communicator(path.format(run=run.pk), headers=[(b"authorization", f"Bearer {api_key}".encode())])
    hello = await connected(comm)
    assert_envelope(hello)
    await closing(comm)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"Bearer sops_not-a-real-key")],
        [(b"x-api-key", b"sops_not-a-real-key")],
    ],
    ids=["bearer", "x-api-key"],
)
@run_async
async def test_a_bad_key_in_a_header_is_closed_4401(
    runs_dir: Path, headers: list[tuple[bytes, bytes]]
) -> None:
    assert await close_code("/ws/runs/", headers=headers) == 4401


@run_async
async def test_a_bad_key_is_refused_even_beside_a_valid_session(runs_dir: Path) -> None:
    def make() -> list[tuple[bytes, bytes]]:
        return session_cookie(UserFactory(username="both", role=Role.ADMIN))

    headers = await sync_to_async(make)()
    assert (
        await close_code("/ws/runs/", headers=[*headers, (b"authorization", b"Bearer sops_revoked-long-ago")])
        == 4401
    )


@pytest.mark.parametrize(
    "path", ["/ws/executions", "/ws/executions/", "/ws/runs/not-a-run/", "/ws/", "/elsewhere"]
)
@pytest.mark.parametrize("with_key", [True, False])
@run_async
async def test_a_path_with_no_route_is_closed_4404(
    runs_dir: Path, api_key: str, path: str, with_key: bool
) -> None:
    # Not an exception in the router (which daphne answers with an HTTP 500).
    assert await close_code(path, key=api_key if with_key else None) == 4404


@run_async
async def test_an_unknown_run_is_closed_4404(runs_dir: Path, api_key: str) -> None:
    assert await close_code(f"/ws/runs/{uuid.uuid4()}/", key=api_key) == 4404


@run_async
async def test_the_handshake_reads_the_run_once(
    runs_dir: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the run exists is told by the watch's first read of it, which its first
    status comes from: no read of its own (a query and a trip to a thread per socket)."""
    reads: list[str] = []
    for module, name in ((live, "read_state"), (live, "run_exists"), (consumers, "run_exists")):
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda run_id, *a, _real=real, **k: reads.append(run_id) or _real(run_id, *a, **k)
        )
    run = await sync_to_async(running_run)()
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    status = await collect(comm, is_type("status"))
    assert status[-1]["data"]["status"] == "running"
    assert reads == [str(run.pk)]
    await closing(comm)


@pytest.mark.parametrize("exists", [True, False], ids=["closed at once", "unknown run"])
@run_async
async def test_a_socket_closed_in_its_handshake_leaves_no_subscription(
    runs_dir: Path, api_key: str, exists: bool
) -> None:
    run_id = str((await sync_to_async(running_run)()).pk) if exists else str(uuid.uuid4())
    channel = events.run_channel(run_id)
    comm = communicator(f"/ws/runs/{run_id}/", key=api_key)
    await comm.connect(timeout=WAIT)
    if not exists:
        assert await receive_close(comm) == 4404
    await comm.disconnect()
    deadline = asyncio.get_running_loop().time() + WAIT
    while bus._hub.subs.get(channel):
        assert asyncio.get_running_loop().time() < deadline, "the run's channel is still followed"
        await asyncio.sleep(0.01)


# -- one run: /ws/runs/<id>/ --------------------------------------------------------------


@run_async
async def test_a_finished_run_is_replayed_in_order_then_completed_and_closed(
    runs_dir: Path, api_key: str
) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("one", "two")
    sim.write("oops", stream="stderr")
    sim.write("three")
    await sim.finish(exit_code=3, status=RunStatus.FAILED)

    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    hello = await connected(comm)
    assert hello["data"] == {"run_id": str(run.pk), "after": 0}
    got = await collect(comm, is_type("execution_completed"))
    for message in got:
        assert_envelope(message)

    entries = [m["data"] for m in of_type(got, "log_entry")]
    assert [(e["offset"], e["stream"], e["content"]) for e in entries] == [
        (1, "stdout", "one"),
        (2, "stdout", "two"),
        (3, "stderr", "oops"),
        (4, "stdout", "three"),
    ]
    assert all(e["run_id"] == str(run.pk) for e in entries)
    # Each line carries the time it was read from the pipe (the record's timestamp).
    assert entries[0]["timestamp"] == entries[1]["timestamp"] == pytest.approx(1_700_000_000.5)
    assert entries[3]["timestamp"] == pytest.approx(1_700_000_002.0)

    status = of_type(got, "status")[-1]["data"]
    assert status["status"] == "failed" and status["exit_code"] == 3
    assert [m["data"]["kind"] for m in of_type(got, "event")] == ["failure"]
    done = got[-1]["data"]
    assert done["run_id"] == str(run.pk)
    assert done["exit_code"] == 3 and done["status"] == "failed"
    assert done["duration_seconds"] == pytest.approx(1.25)
    assert done["last_offset"] == 4
    # Every log line comes before the end; nothing after it but the close.
    assert got.index(of_type(got, "log_entry")[-1]) < len(got) - 1
    assert await receive_close(comm) == 1000
    await closing(comm)


@run_async
async def test_the_server_leaves_the_closing_to_the_client_for_a_while(
    runs_dir: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closing right after execution_completed would let daphne abort the connection
    # (and drop what is still buffered) for a client that is behind.
    monkeypatch.setattr(consumers, "CLOSE_GRACE", 1.5)
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("only line")
    await sim.finish()
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    await collect(comm, is_type("execution_completed"))
    assert await quiet(comm, 0.7) == []  # not closed yet (quiet() fails on a close)
    assert await receive_close(comm) == 1000
    await closing(comm)

    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    await collect(comm, is_type("execution_completed"))
    await comm.disconnect(timeout=WAIT)  # the usual end: the client closes


@run_async
async def test_live_lines_status_and_events_arrive_while_the_run_goes(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    first = await collect(comm, is_type("status"))
    assert first[-1]["data"]["status"] == "running"

    await sim.awrite("alpha")
    got = await collect(comm, is_type("log_entry"))
    assert got[-1]["data"]["content"] == "alpha" and got[-1]["data"]["offset"] == 1

    await sim.event(EventKind.PAUSED)
    await sim.update(paused=True)
    got = await collect(comm, lambda m: m["type"] == "status" and m["data"]["paused"])
    assert [m["data"]["kind"] for m in of_type(got, "event")] == ["paused"]

    await sim.awrite("beta", "gamma", stream="stderr")
    got = await collect(comm, lambda m: m["type"] == "log_entry" and m["data"]["offset"] == 3)
    assert [(m["data"]["content"], m["data"]["stream"]) for m in of_type(got, "log_entry")] == [
        ("beta", "stderr"),
        ("gamma", "stderr"),
    ]

    await sim.update(paused=False)
    await sim.awrite("delta")
    await sim.finish()
    got = await collect(comm, is_type("execution_completed"))
    assert [m["data"]["content"] for m in of_type(got, "log_entry")] == ["delta"]
    assert got[-1]["data"]["exit_code"] == 0 and got[-1]["data"]["status"] == "completed"
    assert await receive_close(comm) == 1000
    await closing(comm)


def lose_every_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus, "publish", lambda channel, payload="1": None)
    monkeypatch.setattr(bus, "publish_many", lambda messages: None)


@pytest.fixture
def lost_wakeups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wake-up is lost: only the process's fallback poll can tell the watches."""
    lose_every_wake_up(monkeypatch)
    monkeypatch.setattr(events, "STATE_FALLBACK", 0.2)


@run_async
async def test_lost_wakeups_are_made_up_by_the_fallback_poll(
    runs_dir: Path, api_key: str, lost_wakeups: None
) -> None:
    sim, comm = await following_a_running_run(api_key)
    await asyncio.sleep(0.6)  # past the poller's first looks: what follows is told by a change
    await sim.awrite("late line")
    await sim.update(output_lines=1, output_bytes=10)  # as the runner's heartbeat writes them
    got = await collect(comm, is_type("log_entry"))
    assert got[-1]["data"]["content"] == "late line"
    await sim.update(paused=True)
    got = await collect(comm, lambda m: m["type"] == "status" and m["data"]["paused"])
    await sim.finish()
    got = await collect(comm, is_type("execution_completed"))
    assert got[-1]["data"]["status"] == "completed"
    await closing(comm)


def never_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subscriptions made from now on are not live until the test confirms them, as
    on Redis before its answer (no SUBSCRIBE is sent: Redis, if used, never answers)."""
    monkeypatch.setattr(bus._get_receiver(), "subscribe", lambda channels: None)
    monkeypatch.setattr(bus._hub, "confirmed", set())


@run_async
async def test_becoming_live_on_the_bus_reads_what_changed_before(
    runs_dir: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Redis a watch reads before its subscription is confirmed; what changed in
    between is read when the confirmation (LIVE) comes. Here every wake-up is lost and
    the fallback poll is far off: only LIVE can tell the watch."""
    lose_every_wake_up(monkeypatch)
    monkeypatch.setattr(events, "STATE_FALLBACK", 3600.0)
    never_confirmed(monkeypatch)
    sim, comm = await following_a_running_run(api_key)
    await sim.awrite("before live")
    await sim.update(paused=True)
    assert await quiet(comm, 0.3) == []  # nothing told it yet
    bus._hub.confirm([events.run_channel(str(sim.run.pk))])  # what the Redis reader does
    got = await collect(comm, lambda m: m["type"] == "status" and m["data"]["paused"])
    assert [m["data"]["content"] for m in of_type(got, "log_entry")] == ["before live"]
    await closing(comm)


@run_async
async def test_a_watch_live_before_its_state_read_does_not_read_it_again_when_live(
    runs_dir: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LIVE wake-up for a subscription that was live when the row was read (Redis
    answered first) costs no second read of the row: 1,000 websockets at once, each
    reading its row twice, took ~1 s more CPU on Redis."""
    reads: list[str] = []
    real_read_state = live.read_state

    def counted(run_id: str, **kwargs: Any) -> Any:
        reads.append(run_id)
        return real_read_state(run_id, **kwargs)

    monkeypatch.setattr(live, "read_state", counted)
    run = await sync_to_async(running_run)()
    channel = events.run_channel(str(run.pk))
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    await collect(comm, is_type("status"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not bus._hub.subs.get(channel) or not all(sub.live for sub in bus._hub.subs[channel]):
        assert loop.time() < deadline, "the watch's subscription never became live"
        await asyncio.sleep(0.02)
    await quiet(comm, 0.3)  # on Redis: what its real confirmation caused
    before = len(reads)
    bus._hub.confirm([channel])
    await quiet(comm, 0.3)
    assert len(reads) == before
    await closing(comm)


@run_async
async def test_the_fallback_poller_lives_as_long_as_its_watches(
    runs_dir: Path, api_key: str, lost_wakeups: None
) -> None:
    loop = asyncio.get_running_loop()
    runs = [await sync_to_async(running_run)() for _ in range(3)]
    comms = [communicator(f"/ws/runs/{run.pk}/", key=api_key) for run in runs]
    for comm in comms:
        await connected(comm)
        await collect(comm, is_type("status"))
    poller = live.FallbackPoller._by_loop[loop]
    assert len(poller.watches) == 3 and poller.task is not None  # one poller for them all
    task = poller.task
    for comm in comms:
        await comm.disconnect()
    deadline = loop.time() + WAIT
    while loop in live.FallbackPoller._by_loop or not task.done():
        assert loop.time() < deadline, "the poller outlived its watches"
        await asyncio.sleep(0.02)


def test_one_fallback_read_covers_every_watched_run(runs_dir: Path, django_assert_num_queries: Any) -> None:
    runs = [running_run() for _ in range(50)]
    RunEvent.objects.create(run=runs[7], kind=EventKind.START, data={})
    with django_assert_num_queries(2):  # the rows, and their newest events
        found = live._fingerprints([str(run.pk) for run in runs])
    assert set(found) == {str(run.pk) for run in runs}
    assert found[str(runs[7].pk)][-1] is not None and found[str(runs[8].pk)][-1] is None


@run_async
async def test_one_poll_of_fifty_watches_is_two_queries_and_wakes_only_the_changed(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[int] = []
    read = live._fingerprints

    def counting(run_ids: list[str]) -> dict[str, live.Fingerprint]:
        with CaptureQueriesContext(connection) as queries:  # on the read's own thread
            found = read(run_ids)
        counted.append(len(queries))
        return found

    monkeypatch.setattr(live, "_fingerprints", counting)
    loop = asyncio.get_running_loop()
    runs = [await sync_to_async(running_run)() for _ in range(50)]
    poller = live.FallbackPoller(loop)  # driven by hand: no task, one poll at a time
    watches = []
    for run in runs:
        watch = live.RunWatch(run)
        watch.wakeups = bus.Subscription((events.run_channel(watch.run_id),), loop)
        poller.watches[watch] = None
        watches.append(watch)

    async def one_poll() -> dict[str, set[str]]:
        counted.clear()
        await poller.poll()
        assert counted == [2]  # one read for all: the rows, and their newest events
        return {w.run_id: w.wakeups.take() for w in watches if w.wakeups and w.wakeups.pending()}

    first = await one_poll()  # a watch's first look wakes it for both
    assert first == {w.run_id: {events.STATE, events.OUTPUT} for w in watches}
    assert await one_poll() == {}
    paused, grew, evented, gone = runs[3], runs[5], runs[7], runs[9]
    await sync_to_async(Run.objects.filter(pk=paused.pk).update)(paused=True)
    await sync_to_async(Run.objects.filter(pk=grew.pk).update)(output_lines=4, output_bytes=40)
    await sync_to_async(RunEvent.objects.create)(run=evented, kind=EventKind.START, data={})
    await sync_to_async(Run.objects.filter(pk=gone.pk).delete)()
    assert await one_poll() == {
        str(paused.pk): {events.STATE},
        str(grew.pk): {events.OUTPUT},
        str(evented.pk): {events.STATE},
        str(gone.pk): {events.STATE},  # the watch reads it, finds none and ends
    }


@pytest.fixture
def no_fallback_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fallback polls longer than any deadline here: what arrives came by a wake-up."""
    monkeypatch.setattr(events, "STATE_FALLBACK", 600.0)
    monkeypatch.setattr(events, "FEED_POLL", 600.0)


@run_async
async def test_lines_status_and_completion_are_pushed_not_polled(
    runs_dir: Path, api_key: str, no_fallback_poll: None
) -> None:
    # Whatever the configuration (Unix sockets by default, Redis if set), the runner's
    # wake-ups bring each change at once: with the fallback polls out of reach, nothing
    # would arrive otherwise. Also the lost-wake-up regression: a state wake-up reaching
    # an idle watcher was taken as an output one (lines re-read, state not), so the pause
    # and the end were seen only at the next poll.
    sim, comm = await following_a_running_run(api_key)
    await sim.awrite("woken")
    got = await collect(comm, is_type("log_entry"))
    assert got[-1]["data"]["content"] == "woken"
    await sim.event(EventKind.PAUSED)
    await sim.update(paused=True)
    got = await collect(comm, lambda m: m["type"] == "status" and m["data"]["paused"])
    assert [m["data"]["kind"] for m in of_type(got, "event")] == ["paused"]
    await sim.awrite("last")
    await sim.finish(exit_code=0)
    got = await collect(comm, is_type("execution_completed"))
    assert [m["data"]["content"] for m in of_type(got, "log_entry")] == ["last"]
    assert got[-1]["data"]["status"] == "completed" and got[-1]["data"]["last_offset"] == 2
    await closing(comm)


@run_async
async def test_the_feed_is_pushed_a_run_change(runs_dir: Path, api_key: str, no_fallback_poll: None) -> None:
    run = await sync_to_async(running_run)()
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await collect(comm, is_type("stats"))
    await SimulatedRun(run).finish()
    got = await collect(comm, lambda m: m["type"] == "run_updated" and m["data"]["status"] == "completed")
    assert got[-1]["data"]["id"] == str(run.pk)
    await closing(comm)


@run_async
async def test_a_state_wake_up_during_a_burst_of_lines_is_not_lost(
    runs_dir: Path, no_fallback_poll: None
) -> None:
    # A state wake-up that arrives while the watcher is still sending lines is handled
    # once they are sent: nothing is cleared that was not handled.
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    await sim.awrite(*(f"n={n}" for n in range(1, live.BATCH_LINES + 11)))
    watch = live.RunWatch(run)
    stream = watch.messages()
    first = await asyncio.wait_for(stream.__anext__(), WAIT)
    assert first["type"] == "log_entry"  # the watcher is in the middle of its lines
    # The run ends now, while the watcher's client has not taken the next line yet.
    async with bus.subscribe(events.run_channel(str(run.pk))) as witness:
        assert await witness.until_live(WAIT)  # on Redis: confirmed (the watcher's too)
        await sim.finish(exit_code=0)
        deadline = time.monotonic() + WAIT
        got: set[str] = set()
        while events.STATE not in got:  # the watcher, on the same loop, has it too now
            assert time.monotonic() < deadline
            got |= await witness.wait(deadline - time.monotonic())
    rest = [first]
    while rest[-1]["type"] != "execution_completed":
        rest.append(await asyncio.wait_for(stream.__anext__(), WAIT))
    assert [m["data"]["offset"] for m in of_type(rest, "log_entry")] == list(range(1, live.BATCH_LINES + 11))
    assert rest[-1]["data"]["status"] == "completed"
    await stream.aclose()


def batch_lines(messages: list[dict[str, Any]]) -> list[list[Any]]:
    lines: list[list[Any]] = []
    for message in of_type(messages, "log_batch"):
        data = message["data"]
        assert_envelope(message)
        assert set(data) == set(events.LogBatchData.__required_keys__)
        lines += [list(entry) for entry in batch_entries(data)]
    return lines


@pytest.mark.parametrize("after", [0, 2, 5, 10])
@run_async
async def test_the_batch_form_resumes_exactly_and_keeps_every_line(
    runs_dir: Path, api_key: str, after: int
) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run, segment_bytes=64)
    sim.write("a1", "a 2", "a3")  # one record: after=2 cuts inside it
    sim.write("e4 ünïcode\ttab", stream="stderr")
    sim.write(*(f"b{n}" for n in range(5, 11)))
    await sim.finish(exit_code=1, status=RunStatus.FAILED)
    comm = communicator(f"/ws/runs/{run.pk}/?after={after}&format=batch", key=api_key)
    await connected(comm)
    got = await collect(comm, is_type("execution_completed"))
    assert not of_type(got, "log_entry")
    lines = batch_lines(got)
    expected = [
        (1, "stdout", "a1"),
        (2, "stdout", "a 2"),
        (3, "stdout", "a3"),
        (4, "stderr", "e4 ünïcode\ttab"),
    ]
    expected += [(n, "stdout", f"b{n}") for n in range(5, 11)]
    assert [(n, stream, text) for n, stream, text, _ in lines] == expected[after:]
    assert all(isinstance(ts, float) and ts > 1_700_000_000 for *_, ts in lines)
    assert got[-1]["data"]["last_offset"] == 10
    await closing(comm)


@run_async
async def test_the_batch_form_of_a_live_burst_is_complete_and_in_order(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run, segment_bytes=64 * 1024)
    comm = communicator(f"/ws/runs/{run.pk}/?format=batch", key=api_key)
    await connected(comm)
    total = 12_000
    for start in range(1, total + 1, 3000):
        await sim.awrite(*(f"n={n}" for n in range(start, start + 3000)))
    await sim.finish()
    got = await collect(comm, is_type("execution_completed"), timeout=60)
    lines = batch_lines(got)
    assert [line[0] for line in lines] == list(range(1, total + 1))
    assert all(line[2] == f"n={line[0]}" for line in lines)
    # One message per read of the store: BATCH_BYTES and at most one more record (1 MiB).
    assert max(
        sum(len(c[3]) for c in m["data"]["chunks"]) for m in of_type(got, "log_batch")
    ) <= live.BATCH_BYTES + (1 << 20)
    await closing(comm)


@run_async
async def test_feed_subscribe_takes_the_batch_form(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("l1", "l2", "l3")
    await sim.finish()
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await comm.send_json_to(
        {"type": "subscribe", "data": {"run_id": str(run.pk), "after": 1, "format": "batch"}}
    )
    got = await collect(comm, is_type("execution_completed"))
    assert [line[2] for line in batch_lines(got)] == ["l2", "l3"]
    await closing(comm)


async def read_lines_of(comm: WebsocketCommunicator, *, until_offset: int | None = None) -> list[int]:
    """Offsets of the log entries received until ``until_offset`` (or the end)."""

    def done(message: dict[str, Any]) -> bool:
        if until_offset is None:
            return bool(message["type"] == "execution_completed")
        return message["type"] == "log_entry" and message["data"]["offset"] >= until_offset

    got = await collect(comm, done)
    return [m["data"]["offset"] for m in of_type(got, "log_entry")]


@run_async
async def test_reconnecting_with_after_misses_nothing_and_repeats_nothing(
    runs_dir: Path, api_key: str
) -> None:
    run = await sync_to_async(running_run)()
    # Small segments, so the resume point falls in an older segment than the newest.
    sim = SimulatedRun(run, segment_bytes=256)
    for i in range(1, 61, 3):
        sim.write(*(f"line {n:04d}" for n in range(i, i + 3)))

    first = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(first)
    seen = await read_lines_of(first, until_offset=25)
    await closing(first)  # the client goes away mid-stream
    last = seen[-1]

    # Lines written while nobody watches, then a reconnect from the last offset seen.
    for i in range(61, 121, 3):
        await sim.awrite(*(f"line {n:04d}" for n in range(i, i + 3)))
    second = communicator(f"/ws/runs/{run.pk}/?after={last}", key=api_key)
    hello = await connected(second)
    assert hello["data"]["after"] == last
    rest = await read_lines_of(second, until_offset=120)
    await sim.awrite("line 0121", "line 0122")
    await sim.finish()
    rest += await read_lines_of(second)

    assert seen + rest == list(range(1, 123))
    assert await receive_close(second) == 1000
    await closing(second)


@pytest.mark.parametrize("after", [0, 1, 2, 3, 7, 9, 10, 11, 50])
@run_async
async def test_after_resumes_exactly_even_inside_a_record(runs_dir: Path, api_key: str, after: int) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run, segment_bytes=64)
    sim.write("a1", "a2", "a3")  # lines 1-3 in one record: after=1 and 2 cut inside it
    sim.write("e4", stream="stderr")
    sim.write(*(f"b{n}" for n in range(5, 11)))  # lines 5-10
    await sim.finish()
    comm = communicator(f"/ws/runs/{run.pk}/?after={after}", key=api_key)
    await connected(comm)
    offsets = await read_lines_of(comm)
    assert offsets == list(range(after + 1, 11))
    await closing(comm)


@run_async
async def test_a_malformed_after_starts_from_the_beginning(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("x", "y")
    await sim.finish()
    comm = communicator(f"/ws/runs/{run.pk}/?after=-3", key=api_key)
    await connected(comm)
    assert await read_lines_of(comm) == [1, 2]
    await closing(comm)


@run_async
async def test_a_burst_is_delivered_completely_and_in_order(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run, segment_bytes=64 * 1024)
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    total = 20_000
    for start in range(1, total + 1, 5000):  # four big pipe reads while the client watches
        await sim.awrite(*(f"n={n}" for n in range(start, start + 5000)))
    await sim.finish()
    got = await collect(comm, is_type("execution_completed"), timeout=60)
    entries = [m["data"] for m in of_type(got, "log_entry")]
    assert [e["offset"] for e in entries] == list(range(1, total + 1))
    assert all(e["content"] == f"n={e['offset']}" for e in entries)
    await closing(comm)


@run_async
async def test_status_of_the_run_socket_and_ping(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    comm = communicator(f"/ws/runs/{run.pk}/", key=api_key)
    await connected(comm)
    await comm.send_json_to({"type": "get_status"})
    status = await collect(comm, lambda m: m["type"] == "status")
    assert status[-1]["data"]["run_id"] == str(run.pk)
    await comm.send_json_to({"type": "ping", "timestamp": "2024-01-15T10:30:00Z"})
    got = await collect(comm, is_type("pong"))
    assert got[-1] == {"type": "pong", "timestamp": "2024-01-15T10:30:00Z"}
    # The feed's commands are not commands of a run socket: an error, not a crash.
    await comm.send_json_to({"type": "subscribe", "data": {"run_id": str(run.pk)}})
    got = await collect(comm, is_type("error"))
    assert "subscribe" in got[-1]["data"]["error_message"]
    await closing(comm)


# -- the feed: /ws/runs/ ------------------------------------------------------------------


@run_async
async def test_feed_announces_created_and_updated_runs_and_stats(runs_dir: Path, api_key: str) -> None:
    await sync_to_async(RunFactory)()  # an older run: part of the stats, not announced
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    got = await collect(comm, is_type("stats"))
    assert got[-1]["data"]["total"] == 1 and got[-1]["data"]["completed"] == 1
    assert not of_type(got, "run_created")

    run = await sync_to_async(RunFactory)(status=RunStatus.QUEUED, run_status=None, exit_code=None)
    got = await collect(comm, lambda m: m["type"] == "run_created" and m["data"]["id"] == str(run.pk))
    created = got[-1]
    assert_envelope(created)
    assert created["data"]["status"] == "queued"
    got = await collect(comm, lambda m: m["type"] == "stats" and m["data"]["queued"] == 1)

    sim = SimulatedRun(run)
    await sim.update(status=RunStatus.RUNNING, started_at=timezone.now())
    got = await collect(comm, lambda m: m["type"] == "run_updated" and m["data"]["status"] == "running")
    assert got[-1]["data"]["id"] == str(run.pk)
    await sim.update(paused=True)
    got = await collect(comm, lambda m: m["type"] == "run_updated" and m["data"]["paused"])
    await sim.finish()
    got = await collect(comm, lambda m: m["type"] == "run_updated" and m["data"]["status"] == "completed")
    updated = got[-1]["data"]
    assert updated["run_status"] == "success" and updated["exit_code"] == 0
    assert {"status", "run_status", "paused", "output_lines"} <= set(updated)
    got = await collect(comm, lambda m: m["type"] == "stats" and m["data"]["completed"] == 2)
    assert got[-1]["data"]["running"] == 0 and got[-1]["data"]["success_rate"] == 100.0
    await closing(comm)


@run_async
async def test_feed_subscribe_streams_one_run_until_unsubscribed(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    other = await sync_to_async(running_run)()
    sim, other_sim = SimulatedRun(run), SimulatedRun(other)
    sim.write("before subscribe")
    other_sim.write("not subscribed to")

    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await comm.send_json_to({"type": "subscribe", "data": {"execution_id": str(run.pk)}})
    got = await collect(comm, is_type("log_entry"))
    assert of_type(got, "subscribed")[0]["data"] == {"run_id": str(run.pk)}
    assert got[-1]["data"] == {**got[-1]["data"], "run_id": str(run.pk), "content": "before subscribe"}

    await sim.awrite("live")
    got = await collect(comm, is_type("log_entry"))
    assert got[-1]["data"]["content"] == "live" and got[-1]["data"]["offset"] == 2

    await comm.send_json_to({"type": "unsubscribe", "data": {"run_id": str(run.pk)}})
    got = await collect(comm, is_type("unsubscribed"))
    assert got[-1]["data"] == {"run_id": str(run.pk)}
    await sim.awrite("after unsubscribe")
    late = await quiet(comm)
    assert not [m for m in late if m["type"] == "log_entry"], late
    assert not [m for m in late if m["data"].get("run_id") == str(other.pk) and m["type"] == "log_entry"]
    await closing(comm)


@run_async
async def test_feed_subscribe_with_after_and_to_the_end(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("l1", "l2", "l3", "l4")
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await comm.send_json_to({"type": "subscribe", "data": {"run_id": str(run.pk), "after": 2}})
    await sim.finish(exit_code=0)
    got = await collect(comm, is_type("execution_completed"))
    assert [m["data"]["offset"] for m in of_type(got, "log_entry")] == [3, 4]
    assert got[-1]["data"]["run_id"] == str(run.pk)
    # The feed socket stays open after one subscription ends, and can subscribe again.
    await comm.send_json_to({"type": "subscribe", "data": {"run_id": str(run.pk)}})
    got = await collect(comm, is_type("execution_completed"))
    assert [m["data"]["offset"] for m in of_type(got, "log_entry")] == [1, 2, 3, 4]
    await closing(comm)


@run_async
async def test_feed_get_status_and_ping(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await comm.send_json_to({"type": "get_status", "data": {"execution_id": str(run.pk)}})
    got = await collect(comm, is_type("status"))
    assert_envelope(got[-1])
    assert got[-1]["data"]["run_id"] == str(run.pk)
    assert got[-1]["data"]["status"] == "running" and got[-1]["data"]["paused"] is False

    await comm.send_json_to({"type": "get_status", "data": {"run_id": str(uuid.uuid4())}})
    got = await collect(comm, is_type("error"))
    assert "No run" in got[-1]["data"]["error_message"]

    stamp = time.time()
    await comm.send_json_to({"type": "ping", "timestamp": stamp})
    got = await collect(comm, is_type("pong"))
    assert got[-1] == {"type": "pong", "timestamp": stamp}
    await closing(comm)


DATA_TYPES: dict[str, Any] = {
    "log_entry": events.LogEntryData,
    "status": events.StatusData,
    "event": events.EventData,
    "execution_completed": events.ExecutionCompletedData,
    "run_created": events.FeedRunData,
    "run_updated": events.FeedRunData,
    "stats": events.StatsData,
    "subscribed": events.RunRefData,
    "unsubscribed": events.RunRefData,
    "error": events.ErrorData,
}


def assert_declared(message: dict[str, Any]) -> None:
    """The message's data has every required key of its TypedDict and nothing else."""
    assert_envelope(message)
    if message["type"] == "connection_established":
        declared = [events.RunConnectedData, events.FeedConnectedData]
    else:
        declared = [DATA_TYPES[message["type"]]]
    keys = set(message["data"])
    assert any(t.__required_keys__ <= keys <= t.__required_keys__ | t.__optional_keys__ for t in declared), (
        message
    )


@run_async
async def test_every_message_has_exactly_the_keys_runs_events_declares(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("one", "two")
    comm = communicator("/ws/runs/", key=api_key)
    got = [await connected(comm)]
    got += await collect(comm, is_type("stats"))
    await comm.send_json_to({"type": "subscribe", "data": {"run_id": str(run.pk)}})
    got += await collect(comm, is_type("log_entry"))
    await sim.finish(exit_code=0)  # also records an event
    got += await collect(comm, is_type("execution_completed"))

    def feed_saw_it_complete(message: dict[str, Any]) -> bool:
        return message["type"] == "run_updated" and message["data"]["status"] == "completed"

    # The feed and the run's subscription are told independently (with Redis the feed is
    # woken at once, the subscription reads the state on its own poll): either may come first.
    if not any(feed_saw_it_complete(m) for m in got):
        got += await collect(comm, feed_saw_it_complete)
    await comm.send_json_to({"type": "unsubscribe", "data": {"run_id": str(run.pk)}})
    got += await collect(comm, is_type("unsubscribed"))
    await comm.send_json_to({"type": "dance"})
    got += await collect(comm, is_type("error"))
    new = await sync_to_async(RunFactory)(status=RunStatus.QUEUED, run_status=None, exit_code=None)
    got += await collect(comm, lambda m: m["type"] == "run_created" and m["data"]["id"] == str(new.pk))
    await closing(comm)

    kinds = {m["type"] for m in got}
    assert set(DATA_TYPES) | {"connection_established"} <= kinds, kinds
    for message in got:
        assert_declared(message)
    completed = of_type(got, "execution_completed")[-1]["data"]
    assert completed["last_offset"] == 2


def scan_data(scan_id: str, processed: int) -> events.ScanProgressData:
    return {
        "id": scan_id,
        "root_id": 1,
        "state": "running",
        "phase": "reading",
        "files_total": 10,
        "files_processed": processed,
        "files_seen": processed,
        "files_added": processed,
        "files_updated": 0,
        "files_unchanged": 0,
        "files_missing": 0,
        "files_removed": 0,
        "files_skipped": 0,
        "error_count": 0,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": None,
        "message": "",
        "progress": processed * 10.0,
        "duration": None,
    }


@run_async
async def test_feed_sends_what_a_registered_source_shows_when_it_changes(
    runs_dir: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    processed = {"n": 1}

    def source() -> list[tuple[str, events.ScanProgressMessage]]:
        return [("s1", events.scan_progress_message(scan_data("s1", processed["n"])))]

    monkeypatch.setitem(live.FEED_SOURCES, "test.source", source)
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    got = await collect(comm, is_type("scan_progress"))
    assert_envelope(got[-1])
    assert got[-1]["data"] == scan_data("s1", 1)
    assert not of_type(await quiet(comm, 1.2), "scan_progress")  # unchanged: not sent again
    processed["n"] = 2
    got = await collect(comm, is_type("scan_progress"))
    assert got[-1]["data"]["files_processed"] == 2
    await closing(comm)


@run_async
async def test_feed_reports_library_scans_through_the_registry(
    runs_dir: Path, api_key: str, tmp_path: Path
) -> None:
    # runs never imports the library: LibraryConfig.ready() registers its scans' progress.
    from library.models import FolderRoot, Scan, ScanState

    def make() -> Scan:
        root = FolderRoot.objects.create(name="feed", path=str(tmp_path))
        scan = Scan.objects.create(
            root=root, state=ScanState.RUNNING, started_at=timezone.now(), phase="reading"
        )
        Scan.objects.filter(pk=scan.pk).update(files_total=8, files_processed=2)
        return scan

    scan = await sync_to_async(make)()
    assert "library.scans" in live.FEED_SOURCES
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    got = await collect(comm, lambda m: m["type"] == "scan_progress" and m["data"]["id"] == str(scan.pk))
    data = got[-1]["data"]
    assert set(data) == set(events.ScanProgressData.__annotations__)
    assert data["progress"] == 25.0 and data["state"] == "running" and data["finished_at"] is None
    await closing(comm)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2, 3]",
        '"a string"',
        "{}",
        '{"type": "dance"}',
        '{"type": 42}',
        '{"type": "subscribe"}',
        '{"type": "subscribe", "data": "nope"}',
        '{"type": "subscribe", "data": {"run_id": "not-a-uuid"}}',
        '{"type": "subscribe", "data": {"run_id": ["x"]}}',
        '{"type": "unsubscribe", "data": {"run_id": 5}}',
        '{"type": "get_status", "data": {"run_id": "zzz"}}',
        b"\x00\x01binary",
    ],
)
@run_async
async def test_malformed_client_messages_get_an_error_not_a_crash(
    runs_dir: Path, api_key: str, frame: str | bytes
) -> None:
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    if isinstance(frame, bytes):
        await comm.send_to(bytes_data=frame)
    else:
        await comm.send_to(text_data=frame)
    got = await collect(comm, lambda m: m["type"] in ("error", "unsubscribed"))
    reply = got[-1]
    assert_envelope(reply)
    if reply["type"] == "error":
        assert reply["data"]["error_message"]
    # Still alive and answering.
    await comm.send_json_to({"type": "ping", "timestamp": 1})
    got = await collect(comm, is_type("pong"))
    assert got[-1]["timestamp"] == 1
    await closing(comm)


@run_async
async def test_closing_the_socket_stops_its_watchers(runs_dir: Path, api_key: str) -> None:
    run = await sync_to_async(running_run)()
    comm = communicator("/ws/runs/", key=api_key)
    await connected(comm)
    await comm.send_json_to({"type": "subscribe", "data": {"run_id": str(run.pk)}})
    await collect(comm, is_type("subscribed"))
    pumps = [t for t in asyncio.all_tasks() if not t.done() and "pump" in repr(t.get_coro())]
    assert len(pumps) == 2  # the feed and the subscription
    await comm.disconnect(timeout=WAIT)
    # A pump cancelled inside a database call (a worker thread) ends when the call
    # returns: allow for a loaded machine instead of a fixed pause.
    deadline = asyncio.get_running_loop().time() + WAIT
    while not all(t.done() for t in pumps) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert all(t.done() for t in pumps)
