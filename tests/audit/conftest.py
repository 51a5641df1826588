"""Audit fixtures: the events of one action, and an admin signed in to the Django client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent


@pytest.fixture
def events() -> Callable[[str], list[AuditEvent]]:
    """``events("run.launch")``: the events of that action, oldest first."""

    def of(action: str) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(action=action).order_by("at", "id"))

    return of


def only(found: list[Any]) -> Any:
    assert len(found) == 1, f"expected exactly one event, got {found}"
    return found[0]
