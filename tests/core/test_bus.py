"""The wake-up bus (core.bus), default backend: Unix datagram sockets in a directory.

Real sockets and real processes: a subprocess publishes, this process's subscription
receives. Each test gets a directory of its own (``bus.configure``), so parallel test
processes never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import bus

WAIT = 10.0  # a deadline against a hang, not a speed assertion


@pytest.fixture
def bus_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "bus"
    bus.configure(redis_url=None, directory=directory)
    yield directory
    bus.reset()


async def received(sub: bus.Subscription, payload: str) -> set[str]:
    """Everything the subscription got up to and including ``payload``."""
    got: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while payload not in got:
        assert loop.time() < deadline, got
        got |= await sub.wait(deadline - loop.time())
    return got


def publish_from_another_process(directory: Path, channel: str, payload: str) -> None:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from core import bus
        bus.configure(redis_url=None, directory=Path({str(directory)!r}))
        bus.publish({channel!r}, {payload!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], timeout=60)


def test_a_message_from_another_process_reaches_the_subscribers_of_its_channel(bus_dir: Path) -> None:
    async def body() -> None:
        async with bus.subscribe("run:a") as a, bus.subscribe("run:b") as b, bus.subscribe("run:a") as a2:
            # One socket for the whole process, whatever the number of subscriptions.
            assert len(os.listdir(bus_dir)) == 1
            assert a.live and b.live and a2.live  # at once: every message reaches the socket
            await asyncio.to_thread(publish_from_another_process, bus_dir, "run:a", "o")
            assert await received(a, "o") == {"o"}
            assert await received(a2, "o") == {"o"}
            await asyncio.to_thread(publish_from_another_process, bus_dir, "run:b", "s")
            assert await received(b, "s") == {"s"}
            assert await a.wait(0) == set()  # b's message was not a's

    asyncio.run(body())


async def received_all(sub: bus.Subscription, payloads: set[str]) -> set[str]:
    got: set[str] = set()
    while not payloads <= got:
        got |= await received(sub, sorted(payloads - got)[0])
    return got


def test_publish_many_wakes_the_subscribers_of_each_channel(bus_dir: Path) -> None:
    async def body() -> None:
        async with bus.subscribe("run:m1") as a, bus.subscribe("run:m2") as b:
            bus.publish_many([("run:m1", "s"), ("run:m2", "x"), ("run:m1", "o")])
            assert await received_all(a, {"s", "o"}) == {"s", "o"}
            assert await received(b, "x") == {"x"}

    asyncio.run(body())


def test_a_wake_up_that_arrives_while_the_subscriber_is_busy_is_kept(bus_dir: Path) -> None:
    async def body() -> None:
        async with bus.subscribe("run:x") as sub:
            bus.publish("run:x", "o")
            assert await received(sub, "o") == {"o"}
            # Busy (not waiting): both arrive meanwhile, and both are handed over next.
            bus.publish("run:x", "o")
            bus.publish("run:x", "s")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            got: set[str] = set()
            while got != {"o", "s"}:
                assert loop.time() < deadline, got
                await asyncio.sleep(0.01)
                if sub.pending():
                    got |= sub.take()
            assert await sub.wait(0) == set()  # taken means gone, nothing else cleared

    asyncio.run(body())


def test_a_socket_whose_owner_is_gone_is_removed_by_the_next_publisher(bus_dir: Path) -> None:
    bus_dir.mkdir(parents=True, exist_ok=True)
    # A process killed without cleaning up leaves its socket file behind.
    dead = bus_dir / f"{bus._host_tag()}.99999.deadbeef"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(dead))
    sock.close()
    # Another host's socket (a data dir shared over NFS): never ours to judge.
    foreign = bus_dir / "zzzzzz.1.cafe"
    foreign.write_text("")
    assert dead.exists()
    bus.publish("run:y", "s")  # never raises
    assert not dead.exists()
    assert foreign.exists()

    async def body() -> None:
        async with bus.subscribe("run:y") as sub:
            bus.publish("run:y", "s")
            assert await received(sub, "s") == {"s"}

    asyncio.run(body())


def test_publishing_without_subscribers_or_directory_entries_never_fails(bus_dir: Path) -> None:
    for _ in range(3):
        bus.publish("nobody:listens", "o")


def test_a_directory_path_too_long_for_a_unix_socket_still_works(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 60) / ("e" * 60) / "bus"
    assert len(str(directory)) > 108
    bus.configure(redis_url=None, directory=directory)
    try:

        async def body() -> None:
            async with bus.subscribe("run:long") as sub:
                await asyncio.to_thread(publish_from_another_process, directory, "run:long", "o")
                assert await received(sub, "o") == {"o"}

        asyncio.run(body())
    finally:
        bus.reset()


def test_the_socket_is_removed_when_the_process_ends(bus_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from core import bus
        bus.configure(redis_url=None, directory=Path({str(bus_dir)!r}))
        async def main():
            async with bus.subscribe("c"):
                print(len(list(Path({str(bus_dir)!r}).iterdir())), flush=True)
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "1"
    assert os.listdir(bus_dir) == []


def test_a_full_receiver_gets_every_message_once_it_reads(bus_dir: Path) -> None:
    """Linux queues only a few datagrams per Unix socket (net.unix.max_dgram_qlen): a
    burst to a reader that is busy is held back and sent merged, never dropped."""
    bus_dir.mkdir(parents=True, exist_ok=True)
    name = f"{bus._host_tag()}.busy.{os.getpid()}"
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(bus_dir / name))
    try:
        publisher = bus.UnixPublisher(bus_dir)
        sent = {f"run:{i}" for i in range(300)}
        for channel in sorted(sent):
            publisher.publish(channel, "s")  # nobody reads yet: the queue fills up
        got: set[str] = set()
        reader.settimeout(WAIT)
        while got != sent:
            for channel, payload in bus._decode(reader.recv(65536)):
                assert payload == "s"
                got.add(channel)
        assert got == sent
    finally:
        reader.close()


# -- the Redis backend (the PostgreSQL + Redis pass sets SCRIPTOPS_REDIS_URL) ------------------

needs_redis = pytest.mark.skipif(
    not os.environ.get("SCRIPTOPS_REDIS_URL"), reason="SCRIPTOPS_REDIS_URL is not set: no Redis to talk to"
)


@pytest.fixture
def redis_bus(tmp_path: Path) -> Iterator[str]:
    url = os.environ["SCRIPTOPS_REDIS_URL"]
    bus.configure(redis_url=url, directory=tmp_path / "bus")
    yield url
    bus.reset()


def publish_over_redis(url: str, channel: str, payload: str) -> None:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from core import bus
        bus.configure(redis_url={url!r}, directory=Path("/nonexistent"))
        bus.publish({channel!r}, {payload!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], timeout=60)


@needs_redis
def test_redis_a_subscription_is_usable_at_once_and_woken_when_live(redis_bus: str) -> None:
    """``subscribe`` never waits for Redis: the subscription is woken with LIVE once Redis
    has confirmed it, and nothing published from then on is missed. Rounds of leaving and
    following the same channels again, while the reader is busy or idle."""
    channel = f"run:{os.urandom(6).hex()}"

    async def body() -> None:
        for round_ in range(5):
            async with bus.subscribe(channel, f"{channel}:{round_}") as sub:
                assert await sub.until_live(WAIT)
                assert bus.LIVE in await received(sub, bus.LIVE)
                publish_over_redis(redis_bus, f"{channel}:{round_}", f"p{round_}")
                assert f"p{round_}" in await received(sub, f"p{round_}")

    asyncio.run(body())


@needs_redis
def test_redis_following_a_live_channel_again_is_live_at_once(redis_bus: str) -> None:
    channel = f"run:{os.urandom(6).hex()}"

    async def body() -> None:
        async with bus.subscribe(channel) as first:
            assert await first.until_live(WAIT)
            async with bus.subscribe(channel) as second:
                assert second.live and not second.pending()  # no wait, no extra read
                bus.publish(channel, "both")
                assert "both" in await received(second, "both")
                assert "both" in await received(first, "both")

    asyncio.run(body())


@needs_redis
def test_redis_many_subscribers_each_get_their_channel(redis_bus: str) -> None:
    prefix = os.urandom(6).hex()

    async def body() -> None:
        async with contextlib.AsyncExitStack() as stack:
            # Made at once: their SUBSCRIBEs go out together, each is confirmed.
            subs = [await stack.enter_async_context(bus.subscribe(f"run:{prefix}:{i}")) for i in range(50)]
            for sub in subs:
                assert await sub.until_live(WAIT)
                assert sub.take() == {bus.LIVE}
            for i in (0, 17, 49):
                bus.publish(f"run:{prefix}:{i}", f"to-{i}")
            for i in (0, 17, 49):
                assert f"to-{i}" in await received(subs[i], f"to-{i}")
            assert not subs[1].pending()

    asyncio.run(body())


@needs_redis
def test_redis_publish_many_wakes_the_subscribers_of_each_channel(redis_bus: str) -> None:
    prefix = os.urandom(6).hex()

    async def body() -> None:
        async with bus.subscribe(f"{prefix}:1") as a, bus.subscribe(f"{prefix}:2") as b:
            assert await a.until_live(WAIT) and await b.until_live(WAIT)
            a.take(), b.take()
            bus.publish_many([(f"{prefix}:1", "s"), (f"{prefix}:2", "x"), (f"{prefix}:1", "o")])
            assert await received_all(a, {"s", "o"}) == {"s", "o"}
            assert await received(b, "x") == {"x"}

    asyncio.run(body())
