"""The HTTP handler daphne serves (``scriptops.asgi_handler``), driven over raw ASGI.

Each test drives its own handler from a plain thread (``asyncio.run``), as daphne does:
sync requests then run on the handler's lent threads, not on the test's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_started
from django.db import connections

from core.roles import Role
from core.services import api_key_create
from runs.logstore import LogWriter
from runs.models import Run
from scriptops.asgi_handler import (
    STREAM_BATCH_BYTES,
    SYNC_REQUESTS_AT_ONCE,
    ScriptOpsASGIHandler,
    ThreadLender,
    _pulled,
)
from tests.factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 15.0


@pytest.fixture
def handler() -> Iterator[ScriptOpsASGIHandler]:
    app = ScriptOpsASGIHandler()
    yield app
    app.threads.close()  # their database connections too (PostgreSQL drops the test database)


@pytest.fixture
def key(roots: Path) -> str:
    user = UserFactory(username="asgi-user", role=Role.USER)
    return api_key_create(user=user, name="asgi", role=Role.USER).raw


def scope_for(method: str, path: str, *, key: str = "", body: bytes = b"", query: str = "") -> dict[str, Any]:
    headers = [(b"host", b"localhost")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }


def call(
    app: ScriptOpsASGIHandler, method: str, path: str, *, key: str = "", body: bytes = b"", query: str = ""
) -> tuple[int, dict[str, str], list[dict[str, Any]]]:
    """One request; the status, the headers and every body message of the response."""
    scope = scope_for(method, path, key=key, body=body, query=query)

    async def go() -> tuple[int, dict[str, str], list[dict[str, Any]]]:
        comm = ApplicationCommunicator(app, scope)
        await comm.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await comm.receive_output(WAIT)
        assert start["type"] == "http.response.start", start
        messages = []
        while True:
            message = await comm.receive_output(WAIT)
            messages.append(message)
            if not message.get("more_body", False):
                break
        await comm.wait(WAIT)
        head = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], head, messages

    return asyncio.run(go())


def content(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages)


def test_sync_requests_reuse_one_thread_and_its_database_connection(handler: ScriptOpsASGIHandler) -> None:
    seen: list[tuple[int, object]] = []

    def record(**kwargs: object) -> None:
        # Connected after Django's close_old_connections, which keeps a healthy connection.
        seen.append((threading.get_ident(), connections["default"].connection))

    request_started.connect(record)
    try:
        for _ in range(3):
            status, _, messages = call(handler, "GET", "/api/health")
            assert status == 200 and json.loads(content(messages))["database"] == "ok"
    finally:
        request_started.disconnect(record)
    threads = {ident for ident, _ in seen}
    assert len(seen) == 3 and len(threads) == 1
    assert threading.get_ident() not in threads  # a lent thread, not the caller's
    # The first request opened the connection; the next ones found it open.
    assert seen[1][1] is not None and seen[1][1] is seen[2][1]


def test_a_post_body_reaches_the_view_and_errors_stay_json(
    handler: ScriptOpsASGIHandler, key: str, roots: Path
) -> None:
    script = roots / "hello.sh"
    script.write_text("echo hello\n")
    body = json.dumps({"script_path": str(script), "dry_run": True}).encode()
    status, head, messages = call(handler, "POST", "/api/run", key=key, body=body)
    assert status == 200, content(messages)
    assert head["content-type"] == "application/json"
    assert json.loads(content(messages))["command"][-1] == str(script)

    status, _, messages = call(handler, "POST", "/api/run", key=key, body=b'{"script_path": 1, "bogus": 2}')
    assert status == 400
    assert "bogus" in json.loads(content(messages))["details"]

    status, _, messages = call(handler, "GET", "/api/runs", key="sops_wrong")
    assert status == 401 and json.loads(content(messages))["error"] == "authentication_failed"


def test_a_log_download_is_streamed_whole(
    handler: ScriptOpsASGIHandler, key: str, roots: Path, recwarn: pytest.WarningsRecorder
) -> None:
    run = RunFactory()
    writer = LogWriter(run.output_dir, cap_bytes=50 << 20)
    lines = [f"line {n:07d} {'x' * 90}\n".encode() for n in range(12_000)]  # ~1.2 MB
    for line in lines:
        writer.write("stdout", line, time.time())
    writer.close()
    status, head, messages = call(
        handler, "GET", f"/api/runs/{run.pk}/logs", key=key, query="download=1&stream=stdout"
    )
    assert status == 200 and "attachment" in head["content-disposition"]
    assert content(messages) == b"".join(lines)
    assert len(messages) > 2  # sent in parts, then the closing message
    # Django's own handler warns that it reads a sync iterator whole into memory.
    assert not [w for w in recwarn if "synchronous iterators" in str(w.message)]


def test_a_sync_stream_is_pulled_a_batch_at_a_time() -> None:
    pulled = 0

    def parts() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(64):
            pulled += 1
            yield b"x" * 65536  # 4 MB in all

    async def first_part() -> int:
        stream = _pulled(parts())
        await stream.__anext__()
        consumed = pulled
        await stream.aclose()
        return consumed

    assert asyncio.run(first_part()) <= STREAM_BATCH_BYTES // 65536


def test_an_async_view_keeps_the_async_path(handler: ScriptOpsASGIHandler, key: str, roots: Path) -> None:
    run = RunFactory()
    writer = LogWriter(run.output_dir, cap_bytes=1 << 20)
    writer.write("stdout", b"done\n", time.time())
    writer.close()
    assert handler._is_async_view({"path": f"/api/runs/{run.pk}/stream"})
    assert not handler._is_async_view({"path": f"/api/runs/{run.pk}/logs"})
    assert not handler._is_async_view({"path": "/static/js/common.js"})

    status, head, messages = call(handler, "GET", f"/api/runs/{run.pk}/stream", key=key)
    assert status == 200 and head["content-type"].startswith("text/event-stream")
    frames = [
        json.loads(line[6:]) for line in content(messages).decode().splitlines() if line.startswith("data: ")
    ]
    assert [f["content"] for f in frames if f["type"] == "log_entry"] == ["done"]
    assert frames[-1]["type"] == "exit"


def test_unknown_paths_are_404_through_the_sync_chain(handler: ScriptOpsASGIHandler, key: str) -> None:
    status, _, _ = call(handler, "GET", "/api/no-such-thing", key=key)
    assert status == 404


def test_threads_are_kept_only_while_the_pool_has_room_and_the_request_ended_cleanly() -> None:
    lender = ThreadLender(keep=1)
    first, second = lender.lend(), lender.lend()
    assert first is not second
    lender.give_back(first, clean=True)
    lender.give_back(second, clean=True)  # the pool is full: retired
    assert lender.idle == [first]
    assert lender.lend() is first
    lender.give_back(first, clean=False)  # a cancelled request: its thread may still be busy
    assert lender.idle == []
    for retired in (first, second):
        with pytest.raises(RuntimeError):
            retired.submit(print)


def test_run_rows_written_by_a_lent_thread_are_committed(
    handler: ScriptOpsASGIHandler, key: str, roots: Path
) -> None:
    script = roots / "ok.sh"
    script.write_text("echo ok\n")
    body = json.dumps({"script_path": str(script)}).encode()
    status, _, messages = call(handler, "POST", "/api/run", key=key, body=body)
    assert status == 202, content(messages)
    run_id = json.loads(content(messages))["id"]
    assert Run.objects.filter(pk=run_id).exists()  # seen from the test's own connection


def test_sync_requests_run_a_few_at_a_time(handler: ScriptOpsASGIHandler) -> None:
    lock = threading.Lock()
    running = peak = 0

    def slow(**kwargs: object) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def one() -> int:
        comm = ApplicationCommunicator(handler, scope_for("GET", "/api/health"))
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await comm.receive_output(WAIT)
        await comm.receive_output(WAIT)
        await comm.wait(WAIT)
        return int(start["status"])

    async def burst() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(3 * SYNC_REQUESTS_AT_ONCE))))

    request_started.connect(slow)
    try:
        statuses = asyncio.run(burst())
    finally:
        request_started.disconnect(slow)
    assert statuses == [200] * (3 * SYNC_REQUESTS_AT_ONCE)
    assert peak == SYNC_REQUESTS_AT_ONCE


async def _async_view(request: Any) -> None:
    return None


def _sync_view(request: Any) -> None:
    return None


# A URLconf of this module (ROOT_URLCONF = __name__ in the test below).
urlpatterns: list[Any] = []


def test_whether_a_view_is_async_follows_the_urlconf(settings: Any) -> None:
    """What is kept per path is kept per URL resolver: a new URLconf is asked anew."""
    from django.urls import path

    handler = ScriptOpsASGIHandler()
    assert not handler._is_async_view({"path": "/probe"})  # not in the project's URLconf
    urlpatterns[:] = [path("probe", _async_view)]
    settings.ROOT_URLCONF = __name__
    assert handler._is_async_view({"path": "/probe"})
    urlpatterns[:] = [path("probe", _sync_view)]
    settings.ROOT_URLCONF = "scriptops.urls"
    settings.ROOT_URLCONF = __name__  # set again: a new resolver, which reads the new list
    assert not handler._is_async_view({"path": "/probe"})
