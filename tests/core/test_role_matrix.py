"""Who may call what: one table for every endpoint under /api/, one test per cell.

``MATRIX`` declares, for each URL pattern (by name) and each of its HTTP methods, the
status expected for an anonymous caller and for each role. A second test walks the
URL resolver and fails when an endpoint or a method has no row, so a new endpoint
cannot ship without an authorisation test.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from analytics.models import RunAnalysis
from core.models import ApiKey
from core.roles import Role
from core.services import api_key_create
from runs.models import Run, RunStatus
from tests.factories import RunFactory, UserFactory

ANON = "anonymous"
COLUMNS = [ANON, Role.READONLY, Role.EXECUTOR, Role.USER, Role.ADMIN]
IGNORED_METHODS = {"head", "options"}  # HEAD mirrors GET; OPTIONS is metadata for any role

# (URL name, method):            anonymous readonly executor user  admin
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("health", "get"): (200, 200, 200, 200, 200),
    ("system-status", "get"): (401, 200, 200, 200, 200),
    ("csrf-token", "get"): (200, 200, 200, 200, 200),
    ("apikey-list", "get"): (401, 200, 200, 200, 200),
    ("apikey-list", "post"): (401, 201, 201, 201, 201),
    ("apikey-detail", "get"): (401, 200, 200, 200, 200),
    ("apikey-detail", "delete"): (401, 200, 200, 200, 200),
    ("schema", "get"): (401, 200, 200, 200, 200),
    ("docs", "get"): (401, 200, 200, 200, 200),
    ("stats", "get"): (401, 200, 200, 200, 200),
    ("run-create", "post"): (401, 403, 202, 202, 202),
    ("run-upload", "post"): (401, 403, 202, 202, 202),
    ("run-list", "get"): (401, 200, 200, 200, 200),
    ("run-list", "delete"): (401, 403, 403, 200, 200),
    ("run-detail", "get"): (401, 200, 200, 200, 200),
    ("run-detail", "delete"): (401, 403, 403, 204, 204),
    ("run-stop", "post"): (401, 403, 200, 200, 200),
    ("run-kill", "post"): (401, 403, 200, 200, 200),
    ("run-cancel", "post"): (401, 403, 200, 200, 200),
    ("run-pause", "post"): (401, 403, 200, 200, 200),
    ("run-resume", "post"): (401, 403, 200, 200, 200),
    ("run-restart", "post"): (401, 403, 202, 202, 202),
    ("run-rerun", "post"): (401, 403, 202, 202, 202),
    ("run-logs", "get"): (401, 200, 200, 200, 200),
    ("run-events", "get"): (401, 200, 200, 200, 200),
    ("run-attempts", "get"): (401, 200, 200, 200, 200),
    ("run-samples", "get"): (401, 200, 200, 200, 200),
    ("run-junit", "get"): (401, 200, 200, 200, 200),
    ("run-stream", "get"): (401, 200, 200, 200, 200),
    ("execute", "post"): (401, 403, 200, 200, 200),
}

# Plain (async) function views cannot be introspected for their methods: declare them.
FUNCTION_VIEW_METHODS: dict[str, set[str]] = {
    "run-stream": {"get"},
    "execute": {"post"},
}


# Apps keep their rows beside their own tests; they are merged here. Each module has
# MATRIX and REQUESTS as above, and optionally PUBLIC (URL names that need no login, by
# design), FUNCTION_VIEW_METHODS and METHOD_REQUESTS ({(name, method): request} for a
# method that needs another request than the name's GET/POST one).
MATRIX_MODULES = (
    "tests.library.matrix",
    "tests.scheduler.matrix",
    "tests.analytics.matrix",
    "tests.audit.matrix",
)
PUBLIC = {"health", "csrf-token"}  # csrf-token: seed 003 clients fetch it before signing in
METHOD_REQUESTS: dict[tuple[str, str], Callable[[Ctx], tuple[str, dict[str, Any]]]] = {}


@dataclass
class Ctx:
    """What a request in the matrix needs: runs in each state, a script, the caller's key."""

    finished: Run
    running: Run
    paused: Run
    script: Path
    key_id: int


def _upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("job.py", b"print('hi')\n", content_type="text/x-python")


def _junit(c: Ctx) -> tuple[str, dict[str, Any]]:
    """The finished run with a JUnit report (as a run with ``junit_output`` leaves one)."""
    RunAnalysis.objects.get_or_create(run_id=c.finished.pk, defaults={"junit": "<testsuites/>"})
    return (f"/api/runs/{c.finished.pk}/junit", {})


def _rerunnable(c: Ctx) -> Run:
    """A finished run of a script that exists (a rerun is checked as a launch is)."""
    run: Run = RunFactory(script_path=str(c.script))
    return run


# How to call each endpoint so that an allowed caller gets the expected success status.
REQUESTS: dict[str, Callable[[Ctx], tuple[str, dict[str, Any]]]] = {
    "health": lambda c: ("/api/health", {}),
    "system-status": lambda c: ("/api/system/status", {}),
    "csrf-token": lambda c: ("/api/csrf_token", {}),
    "apikey-list": lambda c: ("/api/keys", {"data": {"name": "matrix"}, "format": "json"}),
    "apikey-detail": lambda c: (f"/api/keys/{c.key_id}", {}),
    "schema": lambda c: ("/api/schema/", {}),
    "docs": lambda c: ("/api/docs/", {}),
    "stats": lambda c: ("/api/stats", {}),
    "run-create": lambda c: ("/api/run", {"data": {"script_path": str(c.script)}, "format": "json"}),
    "run-upload": lambda c: ("/api/run/upload", {"data": {"file": _upload()}, "format": "multipart"}),
    "run-list": lambda c: ("/api/runs", {}),
    "run-detail": lambda c: (f"/api/runs/{c.finished.pk}", {}),
    "run-stop": lambda c: (f"/api/runs/{c.running.pk}/stop", {}),
    "run-kill": lambda c: (f"/api/runs/{c.running.pk}/kill", {}),
    "run-cancel": lambda c: (f"/api/runs/{c.running.pk}/cancel", {}),
    "run-pause": lambda c: (f"/api/runs/{c.running.pk}/pause", {}),
    "run-resume": lambda c: (f"/api/runs/{c.paused.pk}/resume", {}),
    "run-restart": lambda c: (f"/api/runs/{c.finished.pk}/restart", {}),
    "run-rerun": lambda c: (f"/api/runs/{_rerunnable(c).pk}/rerun", {"data": {}, "format": "json"}),
    "run-logs": lambda c: (f"/api/runs/{c.finished.pk}/logs", {}),
    "run-events": lambda c: (f"/api/runs/{c.finished.pk}/events", {}),
    "run-attempts": lambda c: (f"/api/runs/{c.finished.pk}/attempts", {}),
    "run-samples": lambda c: (f"/api/runs/{c.finished.pk}/samples", {}),
    "run-junit": _junit,
    "run-stream": lambda c: (f"/api/runs/{c.finished.pk}/stream", {}),
    "execute": lambda c: ("/api/execute", {"data": {"script_path": str(c.script)}, "format": "json"}),
}


for _module in map(importlib.import_module, MATRIX_MODULES):
    MATRIX.update(_module.MATRIX)
    REQUESTS.update(_module.REQUESTS)
    PUBLIC |= getattr(_module, "PUBLIC", set())
    FUNCTION_VIEW_METHODS.update(getattr(_module, "FUNCTION_VIEW_METHODS", {}))
    METHOD_REQUESTS.update(getattr(_module, "METHOD_REQUESTS", {}))


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route, pattern


def _methods(name: str, callback: Any) -> set[str]:
    actions = getattr(callback, "actions", None)
    if actions:  # a DRF ViewSet bound to {method: action}
        return set(actions) - IGNORED_METHODS
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        assert name in FUNCTION_VIEW_METHODS, (
            f"{name} is a function view: declare its methods in FUNCTION_VIEW_METHODS and MATRIX"
        )
        return FUNCTION_VIEW_METHODS[name]
    return {m for m in view_class.http_method_names if hasattr(view_class, m)} - IGNORED_METHODS


def api_endpoints() -> dict[tuple[str, str], str]:
    """Every (URL name, method) under /api/, mapped to its route (for messages)."""
    found: dict[tuple[str, str], str] = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith("api/"):
            continue
        assert pattern.name, f"{route} has no URL name: name it and add it to MATRIX"
        for method in _methods(pattern.name, pattern.callback):
            found[(pattern.name, method)] = route
    return found


def test_every_api_endpoint_and_method_has_a_row_in_the_matrix() -> None:
    endpoints = api_endpoints()
    missing = sorted(
        f"{m.upper()} {route}" for (name, m), route in endpoints.items() if (name, m) not in MATRIX
    )
    stale = sorted(f"{m.upper()} {name}" for name, m in MATRIX if (name, m) not in endpoints)
    assert not missing, f"No authorisation row in MATRIX for: {missing}"
    assert not stale, f"MATRIX rows for endpoints that no longer exist: {stale}"
    assert set(REQUESTS) == {name for name, _ in MATRIX}


def test_the_check_reports_a_missing_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(MATRIX, ("run-kill", "post"))
    with pytest.raises(AssertionError, match=r"No authorisation row.*POST api/\^runs/.*kill"):
        test_every_api_endpoint_and_method_has_a_row_in_the_matrix()


def test_the_check_reports_a_stale_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MATRIX, ("run-kill", "put"), (401, 403, 200, 200, 200))
    with pytest.raises(AssertionError, match="no longer exist"):
        test_every_api_endpoint_and_method_has_a_row_in_the_matrix()


def test_matrix_rows_are_consistent_with_role_order() -> None:
    """A role never gets less than a weaker one; only PUBLIC endpoints need no login."""
    for (name, method), expected in MATRIX.items():
        allowed = [status not in (401, 403) for status in expected]
        assert allowed[1:] == sorted(allowed[1:]), (name, method)
        assert allowed[0] == (name in PUBLIC), (name, method)


@pytest.fixture
def ctx_for(roots: Path, make_script: Callable[..., Path]) -> Callable[[ApiKey | None], Ctx]:
    def make(key: ApiKey | None) -> Ctx:
        running = RunFactory(status=RunStatus.RUNNING, run_status=None, exit_code=None)
        paused = RunFactory(status=RunStatus.RUNNING, run_status=None, exit_code=None, paused=True)
        return Ctx(
            finished=RunFactory(),
            running=running,
            paused=paused,
            script=make_script("ok.py", "print('ok')\n"),
            key_id=key.pk if key else 0,
        )

    return make


def _call(client: APIClient, name: str, method: str, ctx: Ctx) -> Any:
    path, kwargs = METHOD_REQUESTS.get((name, method), REQUESTS[name])(ctx)
    if (name, method) == ("run-list", "delete"):  # bulk delete: a JSON list of ids
        kwargs = {"data": [str(ctx.finished.pk)], "format": "json"}
    return getattr(client, method)(path, **kwargs)


CELLS = [
    pytest.param(name, method, column, expected[i], id=f"{name}-{method}-{column}")
    for (name, method), expected in MATRIX.items()
    for i, column in enumerate(COLUMNS)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method", "column", "expected"), CELLS)
def test_role_matrix(
    name: str, method: str, column: str, expected: int, client_for: Any, ctx_for: Any
) -> None:
    if column == ANON:
        client, key = APIClient(), None
    else:
        client = client_for(column)
        key = ApiKey.objects.get(name=f"{column}-key")
    response = _call(client, name, method, ctx_for(key))
    assert response.status_code == expected, getattr(response, "data", response.content[:300])
    if expected in (401, 403):
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["error"] in ("not_authenticated", "permission_denied")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "method", "expected"),
    [pytest.param(n, m, e[1], id=f"{n}-{m}") for (n, m), e in MATRIX.items()],
)
def test_admin_key_of_a_demoted_user_acts_as_readonly(
    name: str, method: str, expected: int, ctx_for: Any
) -> None:
    """A key never grants more than its user's *current* role."""
    user = UserFactory(username="demoted", role=Role.ADMIN)
    issued = api_key_create(user=user, name="old-admin-key", role=Role.ADMIN)
    assert issued.key.role == Role.ADMIN
    user.role = Role.READONLY
    user.save(update_fields=["role"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=issued.raw)
    response = _call(client, name, method, ctx_for(issued.key))
    assert response.status_code == expected


@pytest.mark.django_db
def test_key_role_forced_above_its_user_is_still_capped(ctx_for: Any) -> None:
    user = UserFactory(username="reader", role=Role.READONLY)
    issued = api_key_create(user=user, name="k", role=Role.ADMIN)
    assert issued.key.role == Role.READONLY  # capped when issued
    ApiKey.objects.filter(pk=issued.key.pk).update(role=Role.ADMIN)  # and if the row is tampered with
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    ctx = ctx_for(issued.key)
    assert client.get("/api/runs").status_code == 200
    assert client.post("/api/run", {"script_path": str(ctx.script)}, format="json").status_code == 403
    assert client.delete(f"/api/runs/{ctx.finished.pk}").status_code == 403


@pytest.mark.django_db
def test_weaker_key_of_an_admin_acts_with_the_key_role(ctx_for: Any) -> None:
    admin = UserFactory(username="boss", role=Role.ADMIN, is_superuser=True)
    issued = api_key_create(user=admin, name="ro", role=Role.READONLY)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    ctx = ctx_for(issued.key)
    assert client.get(f"/api/runs/{ctx.finished.pk}").status_code == 200
    assert client.post(f"/api/runs/{ctx.running.pk}/stop").status_code == 403
    assert client.delete(f"/api/runs/{ctx.finished.pk}").status_code == 403


@pytest.mark.django_db
def test_superuser_acts_as_admin_whatever_its_role_field(ctx_for: Any) -> None:
    root = UserFactory(username="root", role=Role.READONLY, is_superuser=True)
    client = APIClient()
    client.force_login(root)
    ctx = ctx_for(None)
    assert client.delete(f"/api/runs/{ctx.finished.pk}").status_code == 204


@pytest.mark.django_db
def test_inactive_user_session_is_refused(ctx_for: Any) -> None:
    user = UserFactory(username="gone", role=Role.ADMIN, is_active=False)
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/runs").status_code in (401, 403)


# -- every endpoint, any input: never a 500 ------------------------------------------------


JUNK_BODIES: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"null", "application/json"),
    (b"[1, {}]", "application/json"),
    (b'"text"', "application/json"),
    (b"{bad", "application/json"),
    (b"[" * 50_000, "application/json"),
    (b'{"a": 1e999, "name": "\\u0000"}', "application/json"),
    (b"\xff\xfe\x00", "application/json"),
    (b"a=1&b=%00&file=x", "application/x-www-form-urlencoded"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    (b"<xml/>", "application/xml"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted({name for name, _ in MATRIX}))
def test_no_method_or_body_makes_any_endpoint_answer_500(name: str, client_for, ctx_for) -> None:
    client = client_for(Role.ADMIN)
    ctx = ctx_for(ApiKey.objects.get(name="admin-key"))
    path, _ = REQUESTS[name](ctx)
    for method in ("get", "post", "put", "patch", "delete", "options", "head"):
        for body, content_type in JUNK_BODIES:
            response = client.generic(method.upper(), path, body, content_type=content_type)
            assert response.status_code < 500, (method, body[:40], response.content[:300])


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted({name for name, _ in MATRIX}))
@pytest.mark.parametrize("accept", ["text/html", "application/yaml", "*/*", "application/json; q=0.1"])
def test_any_accept_header_is_never_500(name: str, accept: str, client_for, ctx_for) -> None:
    client = client_for(Role.ADMIN)
    path, _ = REQUESTS[name](ctx_for(ApiKey.objects.get(name="admin-key")))
    for method in ("get", "post", "options"):
        response = client.generic(
            method.upper(), path, b"{}", content_type="application/json", HTTP_ACCEPT=accept
        )
        assert response.status_code < 500, (method, response.content[:300])


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(n for n, m in MATRIX if m == "get"))
def test_trailing_slash_is_optional(name: str, client_for, ctx_for) -> None:
    client = client_for(Role.ADMIN)
    path, _ = REQUESTS[name](ctx_for(ApiKey.objects.get(name="admin-key")))
    toggled = path[:-1] if path.endswith("/") else path + "/"
    assert client.get(path).status_code == client.get(toggled).status_code == MATRIX[(name, "get")][-1]
