"""Schemathesis over the API's own OpenAPI schema, in-process, for one role at a time.

Shared by the bounded run of ``make test`` (tests/security/test_schema_fuzz.py), the full
run of ``make fuzz`` and the ``fuzz`` section of ``make bench``: the number of examples
per operation comes from ``SCRIPTOPS_FUZZ_EXAMPLES`` (default: the bounded figure), and
``SCRIPTOPS_FUZZ_REPORT`` names a JSON file the per-role tallies are merged into.

Requests go through Django's WSGI handler (no server): run launches only queue a run
(the tests' transaction is never committed, so no worker ever picks it up), and the
tests' ``roots`` fixture points every allowed root, upload and run folder at tmp_path.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

BOUNDED_EXAMPLES = 6

# Endpoint classes of the closing note, by the first segment(s) after /api/.
CLASSES: tuple[tuple[str, str], ...] = (
    ("/api/run/", "runs"),
    ("/api/runs", "runs"),
    ("/api/browse", "library"),
    ("/api/library/check", "prechecks/checks"),
    ("/api/library/scripts/{id}/check", "prechecks/checks"),
    ("/api/library", "library"),
    ("/api/scheduler", "scheduler"),
    ("/api/analytics", "analytics"),
    ("/api/stats", "analytics"),
    ("/api/keys", "keys/auth"),
    ("/api/csrf_token", "keys/auth"),
)


def endpoint_class(path: str) -> str:
    for prefix, name in CLASSES:
        if path.startswith(prefix):
            return name
    return "system"


def examples() -> int:
    return int(os.environ.get("SCRIPTOPS_FUZZ_EXAMPLES", BOUNDED_EXAMPLES))


@dataclass
class Tally:
    """Requests sent and 5xx answers, per endpoint class, for one role."""

    sent: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def api_schema() -> schemathesis.schemas.BaseSchema:
    from drf_spectacular.generators import SchemaGenerator

    spec = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(json.loads(json.dumps(spec, default=str)))


@contextmanager
def in_process_app() -> Any:
    """Django's WSGI handler, without closing the test's database connection after each
    request (what Django's own test client does too)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def fuzz_role(
    issue_key: Callable[[], str],
    *,
    known: dict[str, dict[str, Any]] | None = None,
    max_examples: int | None = None,
) -> Tally:
    """Every operation of the schema, positive and negative cases.

    ``issue_key`` returns a fresh raw API key of the role; each operation gets its own,
    since fuzzing ``DELETE /api/keys/{id}`` may well revoke the one in use. ``known``
    maps a path prefix (``/api/runs/{id}``) to path parameters of rows that exist: a
    half of the cases use them, so the fuzz reaches past "404 no such run".
    """
    tally = Tally()
    count = max_examples or examples()
    schema = api_schema()
    with in_process_app() as app:
        for result in schema.get_all_operations():
            headers = {"Authorization": f"Bearer {issue_key()}"}
            _fuzz_operation(
                result.ok(), app=app, headers=headers, count=count, tally=tally, known=known or {}
            )
    return tally


def _existing(operation: Any, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Path parameters of existing rows for ``operation`` (the longest matching prefix)."""
    names = {p.name for p in operation.path_parameters}
    for prefix in sorted(known, key=len, reverse=True):
        if operation.path.startswith(prefix):
            return {k: v for k, v in known[prefix].items() if k in names}
    return {}


def _fuzz_operation(
    operation: Any,
    *,
    app: Any,
    headers: dict[str, str],
    count: int,
    tally: Tally,
    known: dict[str, dict[str, Any]],
) -> None:
    klass = endpoint_class(operation.path)
    strategies = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    existing = _existing(operation, known)
    if existing:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=existing)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    strategy = st.one_of(*strategies)

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        response = case.call(app=app, headers=headers)
        tally.sent[klass] += 1
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors[klass] += 1
            tally.failures.append(
                f"{operation.label}: {response.status_code} for {case.as_curl_command(headers=headers)}"
            )

    send()


def record(role: str, tally: Tally, name: str = "schemathesis") -> None:
    """Merge ``tally`` into the JSON report named by ``SCRIPTOPS_FUZZ_REPORT``, if any."""
    target = os.environ.get("SCRIPTOPS_FUZZ_REPORT")
    if not target:
        return
    path = Path(target)
    # pytest-xdist workers record at once: one at a time, under a lock.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        report.setdefault(name, {})[role] = {
            "sent": dict(tally.sent),
            "server_errors": dict(tally.server_errors),
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "examples_per_operation": examples(),
        }
        path.write_text(json.dumps(report, indent=2, sort_keys=True))
