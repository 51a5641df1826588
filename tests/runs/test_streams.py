"""Server-sent events: ``GET /api/runs/{id}/stream`` and ``POST /api/execute`` (seed 003).

Driven through the real ASGI application (Django's ASGI handler, every middleware)
with asgiref's ApplicationCommunicator, so a test can read the body as it streams
and can disconnect like a client closing its connection.

As in test_consumers, a live run is simulated the way the worker produces one:
output appended with :class:`runs.logstore.LogWriter` into ``settings.RUNS_DIR/<id>``
and state written to the ``Run`` row; the stream reads only those (the cross-process
contract). ``/api/execute`` runs real scripts: the unit-test settings run django-q2
tasks synchronously, so the run has finished when the stream starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from core.roles import Role
from core.services import api_key_create
from runs.logstore import LogWriter
from runs.models import Control, EventKind, Run, RunEvent, RunStatus
from scriptops.asgi import application
from tests.factories import RunFactory, UserFactory
from tests.runs.helpers import batch_entries

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 15.0


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test body on the test's thread: the views' database calls
    then share the test's connection (no SQLite locking between threads)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async_to_sync(fn)(*args, **kwargs)

    return wrapper


# -- an SSE client over raw ASGI ----------------------------------------------------------


class Sse:
    """One HTTP request to the ASGI app, its response read incrementally."""

    def __init__(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""):
        parsed = urlparse(path)
        raw_headers = [(b"host", b"localhost")]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parsed.path,
            "raw_path": parsed.path.encode(),
            "query_string": parsed.query.encode(),
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("localhost", 80),
        }
        self.body = body
        self.comm = ApplicationCommunicator(application, self.scope)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.buffer = b""
        self.finished = False

    async def start(self) -> Sse:
        await self.comm.send_input({"type": "http.request", "body": self.body, "more_body": False})
        start = await self.comm.receive_output(WAIT)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self

    async def chunk(self) -> bytes:
        message = await self.comm.receive_output(WAIT)
        assert message["type"] == "http.response.body", message
        if not message.get("more_body", False):
            self.finished = True
        data: bytes = message.get("body", b"")
        self.buffer += data
        return data

    async def read_all(self) -> bytes:
        while not self.finished:
            await self.chunk()
        return self.buffer

    async def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(await self.read_all())
        return body

    async def frames_until(self, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Read until a parsed frame satisfies ``until``; return all frames so far."""
        deadline = time.monotonic() + WAIT
        while True:
            frames = parse_sse(self.buffer)
            if any(until(f) for f in frames):
                return frames
            assert not self.finished, f"stream ended early: {frames}"
            assert time.monotonic() < deadline, f"timed out: {frames}"
            await self.chunk()

    async def disconnect(self) -> None:
        await self.comm.send_input({"type": "http.disconnect"})
        await self.comm.wait(WAIT)


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Complete frames: ``{"id": int | None, "data": {...}}``; comments are dropped."""
    frames: list[dict[str, Any]] = []
    text = raw.decode()
    for block in text.split("\n\n")[:-1]:
        event_id: int | None = None
        data: dict[str, Any] | None = None
        for line in block.split("\n"):
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            else:
                assert line.startswith(":") or not line, line
        if data is not None:
            frames.append({"id": event_id, "data": data})
    return frames


def is_kind(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["data"]["type"] == kind


def entries(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["data"] for f in frames if f["data"]["type"] == "log_entry"]


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def key_for(roots: Path) -> Callable[[str], str]:
    def make(role: str) -> str:
        user = UserFactory(username=f"sse-{role}", role=role)
        return api_key_create(user=user, name=role, role=role).raw

    return make


@pytest.fixture
def reader_key(key_for: Callable[[str], str]) -> str:
    return key_for(Role.READONLY)


@pytest.fixture
def executor_key(key_for: Callable[[str], str]) -> str:
    return key_for(Role.EXECUTOR)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class SimulatedRun:
    """Plays the worker's part: the output store and the run row."""

    def __init__(self, run: Run, *, segment_bytes: int | None = None):
        self.run = run
        self.writer = LogWriter(run.output_dir, cap_bytes=10 << 20, segment_bytes=segment_bytes)

    def write(self, *lines: str, stream: str = "stdout") -> None:
        self.writer.write(stream, "".join(f"{x}\n" for x in lines).encode(), time.time())

    async def finish(self, *, exit_code: int) -> None:
        self.writer.close()

        def done() -> None:
            RunEvent.objects.create(run=self.run, kind=EventKind.FAILURE if exit_code else EventKind.SUCCESS)
            Run.objects.filter(pk=self.run.pk).update(
                status=RunStatus.FAILED if exit_code else RunStatus.COMPLETED,
                run_status="failed" if exit_code else "success",
                exit_code=exit_code,
                finished_at=timezone.now(),
                duration=0.5,
            )

        await sync_to_async(done)()


def running_run() -> Run:
    return RunFactory(status=RunStatus.RUNNING, run_status=None, exit_code=None, started_at=timezone.now())


async def finished_run(lines: int = 5, *, exit_code: int = 0, segment_bytes: int | None = None) -> Run:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run, segment_bytes=segment_bytes)
    for n in range(1, lines + 1):
        sim.write(f"line {n}", stream="stderr" if n % 4 == 0 else "stdout")
    await sim.finish(exit_code=exit_code)
    return run


# -- GET /api/runs/{id}/stream ----------------------------------------------------------------


@run_async
async def test_stream_needs_credentials(roots: Path) -> None:
    run = await finished_run()
    response = await Sse("GET", f"/api/runs/{run.pk}/stream").start()
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "not_authenticated" and body["message"]
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers=bearer("sops_wrong")).start()
    assert response.status == 401
    assert (await response.json())["error"] == "authentication_failed"


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "query"])
@run_async
async def test_stream_takes_the_key_as_bearer_header_or_query(roots: Path, reader_key: str, how: str) -> None:
    """EventSource cannot set headers: the stream also takes ``?api_key=``."""
    run = await finished_run(2)
    path = f"/api/runs/{run.pk}/stream"
    headers = {"bearer": bearer(reader_key), "x-api-key": {"X-API-Key": reader_key}, "query": {}}[how]
    if how == "query":
        path += f"?api_key={reader_key}"
    response = await Sse("GET", path, headers=headers).start()
    assert response.status == 200
    await response.read_all()
    assert [e["offset"] for e in entries(parse_sse(response.buffer))] == [1, 2]

    bad_path = f"/api/runs/{run.pk}/stream" + ("?api_key=sops_wrong" if how == "query" else "")
    bad_headers = {"bearer": bearer("sops_wrong"), "x-api-key": {"X-API-Key": "sops_wrong"}, "query": {}}[how]
    response = await Sse("GET", bad_path, headers=bad_headers).start()
    assert response.status == 401
    assert (await response.json())["error"] == "authentication_failed"


@run_async
async def test_stream_exit_frame_carries_the_last_offset(roots: Path, reader_key: str) -> None:
    run = await finished_run(4, exit_code=0)
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers=bearer(reader_key)).start()
    await response.read_all()
    exit_frame = parse_sse(response.buffer)[-1]
    assert exit_frame["data"]["last_offset"] == exit_frame["id"] == 4
    assert set(exit_frame["data"]) == {
        "type",
        "code",
        "run_id",
        "status",
        "run_status",
        "exit_code",
        "duration_seconds",
        "completed_at",
        "last_offset",
    }


@run_async
async def test_stream_of_a_finished_run_ends_with_the_exit_frame(roots: Path, reader_key: str) -> None:
    run = await finished_run(5, exit_code=3)
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers=bearer(reader_key)).start()
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert all(
        line.startswith(("data: ", "id: ", ":")) or not line for line in response.buffer.decode().split("\n")
    )

    logs = entries(frames)
    assert [(e["offset"], e["content"], e["stream"]) for e in logs] == [
        (1, "line 1", "stdout"),
        (2, "line 2", "stdout"),
        (3, "line 3", "stdout"),
        (4, "line 4", "stderr"),
        (5, "line 5", "stdout"),
    ]
    # Each log frame's id is its line offset: what a client sends back as Last-Event-ID.
    assert [f["id"] for f in frames if f["data"]["type"] == "log_entry"] == [1, 2, 3, 4, 5]
    assert any(f["data"]["type"] == "status" and f["data"]["status"] == "failed" for f in frames)
    last = frames[-1]["data"]
    assert last["type"] == "exit" and last["code"] == 3
    assert last["status"] == "failed" and last["run_id"] == str(run.pk)
    assert frames[-1]["id"] == 5


@pytest.mark.parametrize("how", ["query", "header", "both"])
@run_async
async def test_stream_resumes_after_an_offset(roots: Path, reader_key: str, how: str) -> None:
    run = await finished_run(9, segment_bytes=32)
    headers = bearer(reader_key)
    path = f"/api/runs/{run.pk}/stream"
    if how in ("header", "both"):
        headers["Last-Event-ID"] = "6" if how == "both" else "4"
    if how in ("query", "both"):
        path += "?after=4"  # the query wins over the header
    response = await Sse("GET", path, headers=headers).start()
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert [e["offset"] for e in entries(frames)] == [5, 6, 7, 8, 9]
    assert frames[-1]["data"] == {**frames[-1]["data"], "type": "exit", "code": 0}


@pytest.mark.parametrize("how", ["query", "header"])
@run_async
async def test_stream_batch_form_resumes_exactly_with_the_batch_ids(
    roots: Path, reader_key: str, how: str
) -> None:
    run = await finished_run(9, segment_bytes=32)
    headers = bearer(reader_key)
    path = f"/api/runs/{run.pk}/stream?format=batch"
    if how == "header":
        headers["Last-Event-ID"] = "4"
    else:
        path += "&after=4"
    response = await Sse("GET", path, headers=headers).start()
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert entries(frames) == []
    batches = [f for f in frames if f["data"]["type"] == "log_batch"]
    assert batches
    lines = [line for f in batches for line in batch_entries(f["data"])]
    assert [(n, stream, text) for n, stream, text, _ in lines] == [
        (n, "stderr" if n % 4 == 0 else "stdout", f"line {n}") for n in range(5, 10)
    ]
    for frame in batches:
        # The frame's id is its last line: a reconnect resumes right after the batch.
        assert frame["id"] == frame["data"]["last_offset"] == batch_entries(frame["data"])[-1][0]
        assert frame["data"]["run_id"] == str(run.pk)
    assert frames[-1]["data"]["type"] == "exit" and frames[-1]["id"] == 9


@run_async
async def test_stream_resume_past_the_end_sends_only_the_exit(roots: Path, reader_key: str) -> None:
    run = await finished_run(3)
    response = await Sse("GET", f"/api/runs/{run.pk}/stream?after=3", headers=bearer(reader_key)).start()
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert entries(frames) == []
    assert frames[-1]["data"]["type"] == "exit"


@pytest.mark.parametrize("after", ["-1", "abc", "1.5"])
@run_async
async def test_stream_rejects_a_malformed_offset(roots: Path, reader_key: str, after: str) -> None:
    run = await finished_run(1)
    response = await Sse(
        "GET", f"/api/runs/{run.pk}/stream?after={after}", headers=bearer(reader_key)
    ).start()
    assert response.status == 400
    assert (await response.json())["error"] == "validation_error"


@pytest.mark.parametrize("pk", ["5d1a7f0e-3b7c-4a57-9d7e-0a1f2b3c4d5e", "-" * 36, "0" * 32])
@run_async
async def test_stream_of_an_unknown_run_is_404(roots: Path, reader_key: str, pk: str) -> None:
    response = await Sse("GET", f"/api/runs/{pk}/stream", headers=bearer(reader_key)).start()
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


@run_async
async def test_stream_only_answers_get(roots: Path, reader_key: str) -> None:
    run = await finished_run(1)
    response = await Sse("POST", f"/api/runs/{run.pk}/stream", headers=bearer(reader_key)).start()
    assert response.status == 405


@run_async
async def test_stream_follows_a_live_run(roots: Path, reader_key: str) -> None:
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    sim.write("early")
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers=bearer(reader_key)).start()
    frames = await response.frames_until(is_kind("log_entry"))
    assert [e["content"] for e in entries(frames)] == ["early"]
    await asyncio.to_thread(sim.write, "later", "and later")
    frames = await response.frames_until(lambda f: f["data"].get("offset") == 3)
    await sim.finish(exit_code=0)
    frames = await response.frames_until(is_kind("exit"))
    assert [e["content"] for e in entries(frames)] == ["early", "later", "and later"]
    await response.read_all()
    assert response.finished


@run_async
async def test_a_quiet_run_gets_keep_alives_and_the_stream_goes_on(
    roots: Path, reader_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keep-alive once used to cancel the pending read of the next message, which ended
    # the stream (without its exit frame) at the first 15 s of silence.
    monkeypatch.setattr("runs.streams.KEEPALIVE", 0.05)
    run = await sync_to_async(running_run)()
    sim = SimulatedRun(run)
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers=bearer(reader_key)).start()
    while response.buffer.count(b": keep-alive") < 3:
        assert not response.finished, response.buffer
        await response.chunk()
    await asyncio.to_thread(sim.write, "after the silence")
    await sim.finish(exit_code=0)
    frames = await response.frames_until(is_kind("exit"))
    assert [e["content"] for e in entries(frames)] == ["after the silence"]
    await response.read_all()
    assert response.finished


@run_async
async def test_stream_with_a_session(roots: Path) -> None:
    def login() -> str:
        client = Client()
        client.force_login(UserFactory(username="viewer", role=Role.READONLY))
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    cookie = await sync_to_async(login)()
    run = await finished_run(2)
    response = await Sse("GET", f"/api/runs/{run.pk}/stream", headers={"Cookie": cookie}).start()
    assert response.status == 200  # a GET needs no CSRF token
    await response.read_all()
    assert [e["offset"] for e in entries(parse_sse(response.buffer))] == [1, 2]


# -- POST /api/execute ----------------------------------------------------------------------


ECHO_ARGS = """
import sys
for arg in sys.argv[1:]:
    print("arg:", arg)
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def post(key: str | None, body: Any, *, query: str = "", headers: dict[str, str] | None = None) -> Sse:
    all_headers = {"Content-Type": "application/json", **(bearer(key) if key else {}), **(headers or {})}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Sse("POST", f"/api/execute{query}", headers=all_headers, body=raw)


@run_async
async def test_execute_streams_the_run_until_exit(make_script: Any, executor_key: str) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(
        executor_key, {"script_path": str(script), "args": ["7", "two words"], "session_id": "s1"}
    ).start()
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    run_id = response.headers["x-run-id"]
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert frames[0]["data"]["type"] == "queued"
    assert frames[0]["data"]["run"]["id"] == run_id
    assert [(e["content"], e["stream"]) for e in entries(frames)] == [
        ("arg: 7", "stdout"),
        ("arg: two words", "stdout"),
        ("to stderr", "stderr"),
    ]
    assert frames[-1]["data"]["type"] == "exit" and frames[-1]["data"]["code"] == 7
    run = await sync_to_async(Run.objects.get)(pk=run_id)
    assert run.status == RunStatus.FAILED and run.exit_code == 7 and run.source == "execute"


@run_async
async def test_execute_accepts_seed_003_path_and_string_args(make_script: Any, executor_key: str) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(
        executor_key, {"path": str(script), "args": "0 --flag 'quoted arg'", "session_id": "session_1"}
    ).start()
    await response.read_all()
    frames = parse_sse(response.buffer)
    assert [e["content"] for e in entries(frames) if e["stream"] == "stdout"] == [
        "arg: 0",
        "arg: --flag",
        "arg: quoted arg",
    ]
    assert frames[-1]["data"] == {**frames[-1]["data"], "type": "exit", "code": 0}


@run_async
async def test_execute_dry_run_answers_the_plan_and_starts_nothing(
    make_script: Any, executor_key: str
) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(executor_key, {"path": str(script), "dry_run": True}).start()
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    await response.read_all()
    assert await sync_to_async(Run.objects.count)() == 0


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "parse_error", None),
        ([1, 2], "validation_error", "non_field_errors"),
        ({}, "validation_error", "script_path"),
        ({"path": "/etc/passwd"}, "validation_error", "script_path"),
        ({"path": "echo_args.py", "bogus": 1}, "validation_error", "bogus"),
        ({"path": "echo_args.py", "args": "unbalanced 'quote"}, "validation_error", "args"),
        ({"path": "echo_args.py", "timeout": -1}, "validation_error", "timeout"),
    ],
)
@run_async
async def test_execute_validation_errors_are_400_json(
    make_script: Any, executor_key: str, body: Any, code: str, field: str | None
) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    if isinstance(body, dict) and body.get("path") == "echo_args.py":
        body = {**body, "path": str(script)}
    response = await post(executor_key, body).start()
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")
    payload = await response.json()
    assert payload["error"] == code and payload["message"]
    if field:
        assert field in payload["details"], payload
    assert await sync_to_async(Run.objects.count)() == 0


@run_async
async def test_execute_needs_credentials_and_the_execute_role(
    make_script: Any, reader_key: str, key_for: Callable[[str], str]
) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    body = {"path": str(script), "args": ["0"]}
    response = await post(None, body).start()
    assert response.status == 401
    assert (await response.json())["error"] == "not_authenticated"
    response = await post("sops_bad", body).start()
    assert response.status == 401
    response = await post(reader_key, body).start()
    assert response.status == 403
    assert (await response.json())["error"] == "permission_denied"
    for role in (Role.USER, Role.ADMIN):
        key = await sync_to_async(key_for)(role)
        response = await post(key, body).start()
        assert response.status == 200, role
        await response.read_all()
    assert await sync_to_async(Run.objects.count)() == 2


@run_async
async def test_execute_only_answers_post(roots: Path, executor_key: str) -> None:
    response = await Sse("GET", "/api/execute", headers=bearer(executor_key)).start()
    assert response.status == 405


def session_headers(role: str) -> dict[str, str]:
    client = Client()
    client.force_login(UserFactory(username=f"browser-{role}", role=role))
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}


@run_async
async def test_execute_with_a_session_needs_the_csrf_token(make_script: Any) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    headers = await sync_to_async(session_headers)(Role.EXECUTOR)
    body = {"path": str(script), "args": ["0"]}
    response = await post(None, body, headers=headers).start()
    assert response.status == 403
    assert (await response.json())["error"] == "csrf_failed"
    wrong = {**headers, "Cookie": headers["Cookie"] + "; csrftoken=" + "a" * 32, "X-CSRFToken": "b" * 32}
    response = await post(None, body, headers=wrong).start()
    assert response.status == 403
    assert await sync_to_async(Run.objects.count)() == 0

    token = "c" * 32
    good = {
        **headers,
        "Cookie": headers["Cookie"] + f"; {settings.CSRF_COOKIE_NAME}={token}",
        "X-CSRFToken": token,
    }
    response = await post(None, body, headers=good).start()
    assert response.status == 200
    await response.read_all()
    assert parse_sse(response.buffer)[-1]["data"]["code"] == 0


@run_async
async def test_execute_with_a_session_takes_the_seed_003_csrf_header(make_script: Any) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    headers = await sync_to_async(session_headers)(Role.EXECUTOR)
    token = "d" * 32
    cookie = headers["Cookie"] + f"; {settings.CSRF_COOKIE_NAME}={token}"
    wrong = {**headers, "Cookie": cookie, "X-CSRF-Token": "e" * 32}
    response = await post(None, {"path": str(script), "args": ["0"]}, headers=wrong).start()
    assert response.status == 403
    assert (await response.json())["error"] == "csrf_failed"
    good = {**headers, "Cookie": cookie, "X-CSRF-Token": token}
    response = await post(None, {"path": str(script), "args": ["0"]}, headers=good).start()
    assert response.status == 200
    await response.read_all()
    assert parse_sse(response.buffer)[-1]["data"]["code"] == 0


@run_async
async def test_execute_takes_no_key_in_the_query(make_script: Any, executor_key: str) -> None:
    # A POST can send headers: a key in its URL would only end up in access logs.
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(None, {"path": str(script)}, query=f"?api_key={executor_key}").start()
    assert response.status == 401
    assert (await response.json())["error"] == "not_authenticated"
    assert await sync_to_async(Run.objects.count)() == 0


@run_async
async def test_execute_with_a_readonly_session_is_403_before_csrf(roots: Path) -> None:
    headers = await sync_to_async(session_headers)(Role.READONLY)
    response = await post(None, {"path": "x.py"}, headers=headers).start()
    assert response.status == 403
    assert (await response.json())["error"] == "permission_denied"


@pytest.fixture
def never_dispatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs stay queued: no worker picks them up (the unit settings would run them at
    once, in-process). Lets a test close the connection while its run is active."""
    monkeypatch.setattr("runs.services.lifecycle.runs_hand_over", lambda run_ids: None)


@pytest.mark.parametrize(("query", "expected"), [("?cancel_on_disconnect=true", "cancelled"), ("", "queued")])
@run_async
async def test_closing_the_connection_cancels_only_when_asked(
    make_script: Any, executor_key: str, never_dispatched: None, query: str, expected: str
) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(executor_key, {"path": str(script)}, query=query).start()
    assert response.status == 200
    run_id = response.headers["x-run-id"]
    frames = await response.frames_until(lambda f: f["data"]["type"] == "status")
    assert frames[0]["data"]["type"] == "queued"
    await response.disconnect()
    run = await sync_to_async(Run.objects.get)(pk=run_id)
    assert run.status == expected
    if expected == "cancelled":
        assert run.control == Control.CANCEL


@run_async
async def test_a_finished_stream_does_not_cancel_anything(make_script: Any, executor_key: str) -> None:
    script = make_script("echo_args.py", ECHO_ARGS)
    response = await post(
        executor_key, {"path": str(script), "args": ["0"]}, query="?cancel_on_disconnect=1"
    ).start()
    await response.read_all()
    await response.comm.wait(WAIT)
    run = await sync_to_async(Run.objects.get)(pk=response.headers["x-run-id"])
    assert run.status == RunStatus.COMPLETED and run.control == ""
