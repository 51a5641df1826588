"""Library fixtures: queued work (scans, runs) happens at once, as a worker would do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction


@pytest.fixture(autouse=True)
def _on_commit_runs_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Services hand work to django-q2 with ``transaction.on_commit``; a test's transaction
    never commits, so run the callback at once instead (django-q2 is synchronous in
    tests/settings.py: a queued scan or run has completed when the service returns).
    The real hand-over through a broker is covered by tests/integration."""

    def now(func: Callable[[], Any], using: str | None = None, robust: bool = False) -> None:
        func()

    monkeypatch.setattr(transaction, "on_commit", now)
