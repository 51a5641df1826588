"""The audit app's rows of the authorisation matrix (tests/core/test_role_matrix.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (URL name, method):            anonymous readonly executor user  admin
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("audit", "get"): (401, 403, 403, 403, 200),
    ("audit-export", "get"): (401, 403, 403, 403, 200),
}

REQUESTS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "audit": lambda c: ("/api/audit", {}),
    "audit-export": lambda c: ("/api/audit/export", {}),
}
