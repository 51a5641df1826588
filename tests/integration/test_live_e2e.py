"""Live output over a real stack: daphne and the django-q2 workers are separate
processes, and nothing else runs (no Redis unless SCRIPTOPS_REDIS_URL is set).

Real scripts, a real websocket client (``websockets``) and real HTTP streaming
(``httpx``). Lines reach the clients through the persisted output store only, so
these tests check the cross-process path end to end: nothing lost, nothing repeated,
resumable, and a flood of output never holds the worker back.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.helpers import RUN_DEADLINE, get_run, start_run, wait_for_status, wait_until
from tests.runs.helpers import batch_entries
from tests.stack import Stack

pytestmark = pytest.mark.integration

STACK_WORKERS = 2


def script(stack: Stack, name: str, body: str) -> str:
    return str(stack.script(name, textwrap.dedent(body).lstrip("\n")))


# -- websocket helpers -------------------------------------------------------------------


def ws_url(stack: Stack, path: str, **query: Any) -> str:
    params = "&".join([f"api_key={stack.key}", *(f"{k}={v}" for k, v in query.items())])
    return f"ws://127.0.0.1:{stack.port}{path}?{params}"


def open_ws(stack: Stack, path: str, *, stalled: bool = False, **query: Any) -> ClientConnection:
    """A client that reads everything as it comes (by default), or only when asked.

    ``stalled``: the client library's usual flow control (it stops reading the TCP
    socket once 16 frames wait unread), to play a client that does not keep up.
    """
    return connect(
        ws_url(stack, path, **query),
        open_timeout=30,
        close_timeout=5,
        max_size=None,
        max_queue=16 if stalled else None,
    )


def messages(ws: ClientConnection, *, deadline: float = RUN_DEADLINE) -> Iterator[dict[str, Any]]:
    """Every message until the server closes the socket (or the deadline fails the test)."""
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        assert left > 0, "timed out waiting for a websocket message"
        try:
            raw = ws.recv(timeout=left)
        except ConnectionClosed:
            return
        except TimeoutError:
            continue
        message: dict[str, Any] = json.loads(raw)
        assert set(message) == {"type", "data", "timestamp"}, message
        yield message


def read_until(
    ws: ClientConnection, until: Callable[[dict[str, Any]], bool], *, deadline: float = RUN_DEADLINE
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for message in messages(ws, deadline=deadline):
        got.append(message)
        if until(message):
            return got
    raise AssertionError(f"socket closed before the expected message; got {[m['type'] for m in got[-5:]]}")


def log_entries(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["data"] for m in got if m["type"] == "log_entry"]


def is_completed(message: dict[str, Any]) -> bool:
    return bool(message["type"] == "execution_completed")


# -- SSE helpers --------------------------------------------------------------------------


def sse_frames(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """``data:`` frames of a streaming response, parsed, as they arrive."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            frame: dict[str, Any] = json.loads(line[6:])
            yield frame


# -- scripts -------------------------------------------------------------------------------

NUMBERED = """
import os, sys, time
total, pause_at, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(1, total + 1):
    print(f"line {i:06d}")
    if i % 500 == 0:
        sys.stdout.flush()
        time.sleep(0.005)
    if i == pause_at:
        sys.stdout.flush()
        end = time.monotonic() + 120
        while not os.path.exists(flag) and time.monotonic() < end:
            time.sleep(0.02)
"""


def numbered(stack: Stack) -> str:
    return script(stack, "numbered.py", NUMBERED)


def assert_numbered(entries: list[dict[str, Any]], total: int) -> None:
    assert [e["offset"] for e in entries] == list(range(1, total + 1))
    bad = [e for e in entries if e["content"] != f"line {e['offset']:06d}" or e["stream"] != "stdout"]
    assert not bad, bad[:3]


# -- tests -----------------------------------------------------------------------------------


def test_ten_thousand_lines_arrive_complete_and_in_order(stack: Stack, client: httpx.Client) -> None:
    run = start_run(client, numbered(stack), args=["10000", "0", "-"])
    with open_ws(stack, f"/ws/runs/{run['id']}/") as ws:
        got = read_until(ws, is_completed)
    assert got[0]["type"] == "connection_established"
    assert_numbered(log_entries(got), 10_000)
    done = got[-1]["data"]
    assert done["status"] == "completed" and done["exit_code"] == 0
    assert done["duration_seconds"] is not None and done["last_offset"] == 10_000
    statuses = [m["data"]["status"] for m in got if m["type"] == "status"]
    assert statuses[-1] == "completed"
    assert {m["data"]["kind"] for m in got if m["type"] == "event"} >= {"queued", "start", "success"}
    # The end comes after every line.
    assert [m["type"] for m in got].index("execution_completed") == len(got) - 1


def test_a_client_that_reconnects_with_after_gets_every_line_exactly_once(
    stack: Stack, client: httpx.Client
) -> None:
    # 10,000 lines; the script holds after line 5,000 until the flag file exists, so the
    # client surely leaves while the run is going (whatever the machine's load).
    flag = stack.scripts / f"flag-{time.monotonic_ns()}"
    run = start_run(client, numbered(stack), args=["10000", "5000", str(flag)])
    with open_ws(stack, f"/ws/runs/{run['id']}/") as ws:
        first = log_entries(
            read_until(ws, lambda m: m["type"] == "log_entry" and m["data"]["offset"] >= 2500)
        )
    last = first[-1]["offset"]
    assert get_run(client, run["id"])["status"] == "running"
    flag.touch()
    # The second half is written while nobody watches.
    wait_until(lambda: get_run(client, run["id"])["output_lines"] > 5000 or None, what="the second half")
    with open_ws(stack, f"/ws/runs/{run['id']}/", after=last) as ws:
        rest = log_entries(read_until(ws, is_completed))
    assert rest[0]["offset"] == last + 1
    assert_numbered(first + rest, 10_000)


def test_the_feed_announces_a_new_run_then_its_completion(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "short.sh", "echo start; sleep 1; echo end\n")
    with open_ws(stack, "/ws/runs/") as ws:
        hello = read_until(ws, lambda m: m["type"] == "stats")
        assert hello[0]["type"] == "connection_established"
        run = start_run(client, path)
        got = read_until(
            ws,
            lambda m: m["type"] == "run_updated"
            and m["data"]["id"] == run["id"]
            and m["data"]["status"] == "completed",
        )
        mine = [
            m for m in got if m["type"] in ("run_created", "run_updated") and m["data"]["id"] == run["id"]
        ]
        assert mine[0]["type"] == "run_created"
        assert all(m["type"] == "run_updated" for m in mine[1:])
        assert mine[-1]["data"]["exit_code"] == 0 and mine[-1]["data"]["run_status"] == "success"
        # ping/pong over the real socket, with the client's own timestamp.
        ws.send(json.dumps({"type": "ping", "timestamp": "t-42"}))
        pong = None
        for raw in iter(lambda: ws.recv(timeout=30), None):
            data = json.loads(raw)
            if data["type"] == "pong":
                pong = data
                break
        assert pong == {"type": "pong", "timestamp": "t-42"}


def test_feed_subscribe_follows_one_run_on_the_same_socket(stack: Stack, client: httpx.Client) -> None:
    run = start_run(client, numbered(stack), args=["3000", "0", "-"])
    with open_ws(stack, "/ws/runs/") as ws:
        read_until(ws, lambda m: m["type"] == "connection_established")
        ws.send(json.dumps({"type": "subscribe", "data": {"execution_id": run["id"]}}))
        got = read_until(ws, lambda m: is_completed(m) and m["data"]["run_id"] == run["id"])
    entries = [e for e in log_entries(got) if e["run_id"] == run["id"]]
    assert_numbered(entries, 3000)


def test_unauthenticated_sockets_are_closed_4401(stack: Stack) -> None:
    for url in (
        f"ws://127.0.0.1:{stack.port}/ws/runs/",
        f"ws://127.0.0.1:{stack.port}/ws/runs/?api_key=sops_x",
    ):
        with connect(url, open_timeout=30) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_sse_stream_ends_with_the_exit_frame_and_resumes(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "exit3.sh", 'for i in 1 2 3 4 5 6; do echo "out $i"; sleep 0.1; done; exit 3\n')
    run = start_run(client, path)
    with client.stream("GET", f"/api/runs/{run['id']}/stream", timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = list(sse_frames(response))
    assert [f["content"] for f in frames if f["type"] == "log_entry"] == [f"out {i}" for i in range(1, 7)]
    assert frames[-1]["type"] == "exit" and frames[-1]["code"] == 3
    with client.stream(
        "GET", f"/api/runs/{run['id']}/stream", headers={"Last-Event-ID": "4"}, timeout=60
    ) as response:
        again = list(sse_frames(response))
    assert [f["offset"] for f in again if f["type"] == "log_entry"] == [5, 6]
    assert again[-1] == {**again[-1], "type": "exit", "code": 3}


def test_execute_streams_the_run_until_its_exit_frame(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "args.py", "import sys\nfor a in sys.argv[1:]:\n    print(a)\nsys.exit(5)\n")
    body = {"path": path, "args": "a 'b c' d", "session_id": "session_1"}
    with client.stream("POST", "/api/execute", json=body, timeout=RUN_DEADLINE) as response:
        assert response.status_code == 200, response.read()
        run_id = response.headers["x-run-id"]
        frames = list(sse_frames(response))
    assert frames[0]["type"] == "queued" and frames[0]["run"]["id"] == run_id
    assert [f["content"] for f in frames if f["type"] == "log_entry"] == ["a", "b c", "d"]
    assert frames[-1]["type"] == "exit" and frames[-1]["code"] == 5
    assert get_run(client, run_id)["exit_code"] == 5


SLEEPER = """
import os, sys, time
print("started", flush=True)
end = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < end:
    time.sleep(0.02)
print("done", flush=True)
"""


def execute_until_started(client: httpx.Client, path: str, flag: str, query: str) -> str:
    """POST /api/execute, read until the script's first line, then close the connection."""
    body = {"script_path": path, "args": [flag]}
    with client.stream("POST", f"/api/execute{query}", json=body, timeout=RUN_DEADLINE) as response:
        assert response.status_code == 200
        run_id = response.headers["x-run-id"]
        for frame in sse_frames(response):
            if frame["type"] == "log_entry" and frame["content"] == "started":
                break
        else:
            raise AssertionError("the stream ended before the script started")
    return run_id


def test_execute_cancels_on_disconnect_only_when_asked(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "sleeper.py", SLEEPER)
    never = str(stack.scripts / "never-created")
    cancelled = execute_until_started(client, path, never, "?cancel_on_disconnect=true")
    run = wait_for_status(stack, client, cancelled, timeout=60)
    assert run["status"] == "cancelled" and run["run_status"] == "killed"

    flag = stack.scripts / f"flag-{time.monotonic_ns()}"
    kept = execute_until_started(client, path, str(flag), "")
    time.sleep(1.0)  # room for a wrong cancel to land
    assert get_run(client, kept)["status"] == "running"
    flag.touch()
    run = wait_for_status(stack, client, kept)
    assert run["status"] == "completed"
    assert client.get(f"/api/runs/{kept}/logs").text.splitlines() == ["started", "done"]


def daphne_rss(stack: Stack) -> int:
    assert stack.proc is not None
    for proc in psutil.Process(stack.proc.pid).children(recursive=True):
        try:
            if "daphne" in " ".join(proc.cmdline()):
                return int(proc.memory_info().rss)
        except psutil.Error:
            continue
    raise AssertionError("no daphne process")


BURST = """
import sys
sys.stdout.write("".join(f"burst {i:06d}\\n" for i in range(1, 100_001)))
"""


def test_a_burst_of_100000_lines_is_delivered_and_never_holds_the_worker(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(stack, "burst.py", BURST)
    rss_before = daphne_rss(stack)
    # A client that connects and then does not read: its socket's buffers fill up.
    stalled = open_ws(stack, "/ws/runs/", stalled=True)
    run = start_run(client, path)
    stalled.send(json.dumps({"type": "subscribe", "data": {"run_id": run["id"]}}))
    with open_ws(stack, f"/ws/runs/{run['id']}/") as ws:
        # The worker writes the store and moves on: the run is over long before the
        # websocket clients have been sent its 100,000 lines.
        finished = wait_for_status(stack, client, run["id"], timeout=60)
        assert finished["status"] == "completed"
        # Generous (a shared machine), yet far below what waiting for the clients would take.
        assert finished["duration"] < 30, finished
        assert finished["output_lines"] == 100_000
        got = read_until(ws, is_completed, deadline=240)
    entries = log_entries(got)
    assert [e["offset"] for e in entries] == list(range(1, 100_001))
    assert all(e["content"] == f"burst {e['offset']:06d}" for e in entries)
    # The live views read in bounded batches: daphne does not hold the output in memory
    # for each client (the stalled one included).
    assert daphne_rss(stack) - rss_before < 400 * 1024 * 1024
    stalled.close()
    # The server is still responsive afterwards.
    wait_until(lambda: client.get("/api/health").status_code == 200, timeout=30)


# -- push, the compact batch form and slow clients -------------------------------------------


def batch_lines(got: list[dict[str, Any]]) -> list[tuple[int, str, str, float]]:
    return [line for m in got if m["type"] == "log_batch" for line in batch_entries(m["data"])]


def test_a_watcher_is_told_of_each_change_in_order_by_the_bus(stack: Stack, client: httpx.Client) -> None:
    # The default configuration's wake-ups (Unix sockets in <data dir>/bus, one per
    # daphne process) or Redis: the client that watches a run from before its start is
    # told queued -> running -> lines -> completed, each once and in that order.
    path = script(stack, "steps.sh", "echo one; echo two\n")
    run = start_run(client, path)
    with open_ws(stack, f"/ws/runs/{run['id']}/", format="batch") as ws:
        got = read_until(ws, is_completed)
    snapshots = [m["data"] for m in got if m["type"] == "status"]
    # Each status message tells something new (a second "running" may carry the attempt
    # count the runner recorded after its claim), and the status only moves forward.
    assert all(a != b for a, b in itertools.pairwise(snapshots))
    order = {"queued": 0, "running": 1, "completed": 2}
    statuses = [order[snapshot["status"]] for snapshot in snapshots]
    assert statuses == sorted(statuses) and statuses[-1] == order["completed"]
    kinds = [m["type"] for m in got]
    assert kinds[-1] == "execution_completed"
    assert [line[2] for line in batch_lines(got)] == ["one", "two"]
    assert kinds.index("log_batch") < kinds.index("execution_completed")
    if not stack.redis_url:
        # The watching daphne process has its socket there (a publisher would have
        # unlinked it if its owner were gone).
        sockets = list((stack.data_dir / "bus").iterdir())
        assert sockets and all(s.is_socket() for s in sockets)


def test_the_batch_form_delivers_a_burst_complete_over_websocket_and_sse(
    stack: Stack, client: httpx.Client
) -> None:
    path = script(stack, "burst.py", BURST)
    run = start_run(client, path)
    with open_ws(stack, f"/ws/runs/{run['id']}/", format="batch") as ws:
        got = read_until(ws, is_completed, deadline=240)
    assert not log_entries(got)
    lines = batch_lines(got)
    assert [line[0] for line in lines] == list(range(1, 100_001))
    assert all(line[1] == "stdout" and line[2] == f"burst {line[0]:06d}" for line in lines)
    assert got[-1]["data"]["last_offset"] == 100_000
    # Resumed over SSE in the middle, in the same form.
    with client.stream(
        "GET", f"/api/runs/{run['id']}/stream?format=batch&after=99990", timeout=60
    ) as response:
        frames = list(sse_frames(response))
    rest = [line for f in frames if f["type"] == "log_batch" for line in batch_entries(f)]
    assert [line[0] for line in rest] == list(range(99_991, 100_001))
    assert frames[-1]["type"] == "exit"


WIDE = """
import sys
pad = "x" * 88
for start in range(1, 300_001, 10_000):
    sys.stdout.write("".join(f"{i:07d} {pad}\\n" for i in range(start, start + 10_000)))
"""


def test_a_client_that_stops_reading_is_not_buffered_without_bound(
    stack: Stack, client: httpx.Client
) -> None:
    # Channels' send has no backpressure of its own: without the consumer's WriteGate,
    # daphne would encode all 300,000 lines into its write buffer for this client (~80
    # MiB). With it, reading from the store waits until the client takes what was sent.
    run = start_run(client, script(stack, "wide.py", WIDE))
    assert wait_for_status(stack, client, run["id"], timeout=120)["output_lines"] == 300_000
    rss_before = daphne_rss(stack)
    stalled = open_ws(stack, f"/ws/runs/{run['id']}/", stalled=True)
    try:
        # Let the server send all it would: without the gate, the whole run in a few
        # seconds (not a speed assertion: a slower machine only makes the test weaker).
        time.sleep(8)
        grown = daphne_rss(stack) - rss_before
        # Then read it all: pausing lost nothing.
        got = read_until(stalled, is_completed, deadline=300)
    finally:
        stalled.close()
    entries = log_entries(got)
    assert [e["offset"] for e in entries] == list(range(1, 300_001))
    assert all(e["content"] == f"{e['offset']:07d} {'x' * 88}" for e in entries[::997])
    assert grown < 32 * 1024 * 1024, grown


def test_an_sse_client_that_stops_reading_is_not_buffered_without_bound(
    stack: Stack, client: httpx.Client
) -> None:
    # The same for server-sent events: an ASGI body send does not wait for the client
    # either; the handler's pacing waits while the client has 256 KiB unread.
    run = start_run(client, script(stack, "wide-sse.py", WIDE))
    assert wait_for_status(stack, client, run["id"], timeout=120)["output_lines"] == 300_000
    rss_before = daphne_rss(stack)
    with client.stream("GET", f"/api/runs/{run['id']}/stream", timeout=300) as response:
        assert response.status_code == 200
        time.sleep(8)  # not reading: without pacing daphne would buffer the whole run
        grown = daphne_rss(stack) - rss_before
        frames = list(sse_frames(response))  # then everything: pausing lost nothing
    entries = [f for f in frames if f["type"] == "log_entry"]
    assert [e["offset"] for e in entries] == list(range(1, 300_001))
    assert all(e["content"] == f"{e['offset']:07d} {'x' * 88}" for e in entries[::997])
    assert frames[-1]["type"] == "exit"
    assert grown < 32 * 1024 * 1024, grown
