"""Integration fixtures: one real stack (tests/stack.py) per test file.

A test file picks its stack with module constants: ``STACK_WORKERS`` (django-q2
workers, default 2), ``STACK_MAX_RUNS`` (the runner's capacity, default the product's) and
``STACK_ENV`` (extra environment for serve). The stack is
stopped after the file's last test, and that stop must leave no process behind.
When a test fails, the tail of the serve log of every stack it used is added to the
failure report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack

LOG_TAIL = 20_000


def _stopped(stack: Stack) -> None:
    left = stack.stop()
    assert not left, f"processes left behind by the stack in {stack.base_dir}: {left}\n{stack.log()}"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    module = request.module
    base = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
    started = Stack(
        base,
        workers=getattr(module, "STACK_WORKERS", 2),
        max_runs=getattr(module, "STACK_MAX_RUNS", None),
        extra_env=getattr(module, "STACK_ENV", None),
    )
    try:
        started.start()
        yield started
    finally:
        _stopped(started)


def _end_leftover_runs(http: httpx.Client) -> None:
    """Kill what a test left running, so a failed test cannot starve the next ones of workers."""
    listed = http.get("/api/runs", params={"status": ["queued", "running"], "page_size": 1000})
    if listed.status_code != 200:
        return
    for run in listed.json()["results"]:
        action = "kill" if run["status"] == "running" else "cancel"
        http.post(f"/api/runs/{run['id']}/{action}")


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http
        _end_leftover_runs(http)


@pytest.fixture
def new_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """A dedicated, started stack for one test: ``new_stack(workers=1)``. Stopped after it."""
    made: list[Stack] = []
    request.node.extra_stacks = made

    def make(**kwargs: Any) -> Stack:
        dedicated = Stack(tmp_path / f"stack{len(made)}", **kwargs)
        made.append(dedicated)
        return dedicated.start()

    yield make
    # Last made, first stopped: a stack sharing another's database (``share=``) stops
    # before the one that owns (and drops) it.
    for dedicated in reversed(made):
        _stopped(dedicated)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        stacks = [value for value in funcargs.values() if isinstance(value, Stack)]
        stacks += getattr(item, "extra_stacks", [])
        for used in stacks:
            report.sections.append((f"serve log of {used.base_dir}", used.log(LOG_TAIL)))
    return report
