"""Core API: health, system status, stats, CSRF and sessions, schema and docs, errors, throttling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core.roles import Role
from core.services import api_key_create
from runs.models import Run
from tests.factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


# -- health ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/health", "/api/health/"])
def test_health_is_public_json(path: str) -> None:
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert {"version", "server_time", "uptime_seconds"} <= set(body)


def test_health_ignores_bad_credentials() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sops_wrong")
    assert client.get("/api/health").status_code == 200


def test_health_is_get_only() -> None:
    response = APIClient().post("/api/health")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# -- system status and stats -----------------------------------------------------------------------


def test_system_status_shape(client_for) -> None:
    RunFactory(status="queued", run_status=None)
    body = client_for(Role.READONLY).get("/api/system/status").json()
    assert body["cpu"]["count"] >= 1
    assert len(body["cpu"]["load_average"]) == 3
    assert 0 <= body["memory"]["percent"] <= 100
    assert body["memory"]["total"] >= body["memory"]["available"]
    assert body["disk"]["total"] > 0
    assert body["workers"]["configured"] >= 1
    assert body["workers"]["busy"] == 0
    assert body["queue"]["queued_runs"] == 1
    assert body["queue"]["running_runs"] == 0
    assert "server_time" in body


def test_stats_shape(client_for) -> None:
    RunFactory()
    body = client_for(Role.READONLY).get("/api/stats").json()
    assert {"total", "last_24h", "by_status", "by_run_status", "success_rate", "avg_duration"} <= set(body)
    assert body["total"] == body["last_24h"] == 1
    assert body["success_rate"] == 100.0


# -- sessions and CSRF ---------------------------------------------------------------------------------


@pytest.fixture
def session_client(roots: Path) -> APIClient:
    user = UserFactory(username="webuser", role=Role.EXECUTOR)
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username=user.username, password="pw-for-tests")
    return client


def test_csrf_token_endpoint(session_client: APIClient) -> None:
    response = session_client.get("/api/csrf_token")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert len(body["csrf_token"]) >= 32
    assert "csrftoken" in response.cookies


def test_session_reads_without_a_token(session_client: APIClient) -> None:
    assert session_client.get("/api/runs").status_code == 200


def test_session_unsafe_request_needs_the_csrf_token(session_client: APIClient, make_script) -> None:
    script = make_script("job.py", "print(1)\n")
    refused = session_client.post("/api/run", {"script_path": str(script)}, format="json")
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "permission_denied"
    assert "CSRF" in body["message"]
    assert not Run.objects.exists()

    token = session_client.get("/api/csrf_token").json()["csrf_token"]
    wrong = session_client.post(
        "/api/run", {"script_path": str(script)}, format="json", HTTP_X_CSRFTOKEN="x" * 32
    )
    assert wrong.status_code == 403
    accepted = session_client.post(
        "/api/run", {"script_path": str(script)}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 202
    assert accepted.json()["created_by"] == "webuser"


def test_session_delete_needs_the_csrf_token(roots: Path) -> None:
    user = UserFactory(username="editor", role=Role.USER)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    run = RunFactory()
    assert client.delete(f"/api/runs/{run.pk}").status_code == 403
    token = client.get("/api/csrf_token").json()["csrf_token"]
    assert client.delete(f"/api/runs/{run.pk}", HTTP_X_CSRFTOKEN=token).status_code == 204


def test_api_key_requests_need_no_csrf_token(roots: Path, make_script) -> None:
    issued = api_key_create(user=UserFactory(role=Role.EXECUTOR), name="k")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_X_API_KEY=issued.raw)
    script = make_script("job.py", "print(1)\n")
    assert client.post("/api/run", {"script_path": str(script)}, format="json").status_code == 202


def test_logged_out_session_is_401(session_client: APIClient) -> None:
    session_client.logout()
    assert session_client.get("/api/runs").status_code == 401


# -- schema and docs -------------------------------------------------------------------------------


def test_schema_is_an_openapi_document_listing_the_run_paths(client_for) -> None:
    response = client_for(Role.READONLY).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "ScriptOps API"
    paths = {p.rstrip("/") for p in doc["paths"]}
    for expected in (
        "/api/health",
        "/api/system/status",
        "/api/stats",
        "/api/run",
        "/api/run/upload",
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/logs",
        "/api/runs/{id}/events",
        "/api/runs/{id}/stop",
        "/api/runs/{id}/kill",
        "/api/runs/{id}/cancel",
        "/api/runs/{id}/pause",
        "/api/runs/{id}/resume",
        "/api/runs/{id}/restart",
        "/api/keys",
    ):
        assert expected in paths, expected
    runs_path = next(p for p in doc["paths"] if p.rstrip("/") == "/api/runs")
    assert {"get", "delete"} <= set(doc["paths"][runs_path])
    assert "ApiKey" in doc["components"]["securitySchemes"]


def test_schema_yaml_by_default(client_for) -> None:
    response = client_for(Role.READONLY).get("/api/schema")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi:")


def test_schema_and_docs_need_a_signed_in_caller() -> None:
    for path in ("/api/schema/", "/api/docs/"):
        response = APIClient().get(path)
        assert response.status_code == 401
        assert response.json()["error"] == "not_authenticated"


def test_docs_render_with_local_assets_only(client_for) -> None:
    client = client_for(Role.READONLY)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "docs must not load assets from a CDN"
    assert "cdn" not in html.lower()
    assets = re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        getattr(served, "close", lambda: None)()


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/nope", "/api/runs/123/nothing", "/api/keys/abc", "/api/"])
def test_unknown_api_path_is_json_404(client_for, path: str) -> None:
    response = client_for(Role.ADMIN).get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not_found"


def test_unknown_path_is_json_404_even_anonymous() -> None:
    response = APIClient().get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "/api/runs"), ("patch", "/api/stats"), ("post", "/api/runs"), ("get", "/api/run")],
)
@pytest.mark.parametrize("role", [Role.READONLY, Role.ADMIN])
def test_wrong_method_is_json_405_for_any_role(client_for, method: str, path: str, role: str) -> None:
    response = getattr(client_for(role), method)(path)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# -- throttling ------------------------------------------------------------------------------------


@pytest.fixture
def low_rate(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"principal": "3/min", "anon": "3/min"},
    }
    cache.clear()
    yield
    cache.clear()


def test_rate_limit_answers_429_json(low_rate, client_for) -> None:
    client = client_for(Role.READONLY)
    for _ in range(3):
        assert client.get("/api/runs").status_code == 200
    response = client.get("/api/stats")
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "throttled"
    assert body["message"]
    assert int(response["Retry-After"]) > 0


def test_rate_limit_is_per_key(low_rate) -> None:
    user = UserFactory(role=Role.READONLY)
    first, second = (api_key_create(user=user, name=n) for n in ("a", "b"))
    a, b = APIClient(), APIClient()
    a.credentials(HTTP_X_API_KEY=first.raw)
    b.credentials(HTTP_X_API_KEY=second.raw)
    for _ in range(3):
        a.get("/api/runs")
    assert a.get("/api/runs").status_code == 429
    assert b.get("/api/runs").status_code == 200


def test_rate_limit_per_session_user(low_rate) -> None:
    client = APIClient()
    client.force_login(UserFactory(role=Role.READONLY))
    for _ in range(3):
        assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs").status_code == 429


def test_health_is_not_rate_limited(low_rate) -> None:
    client = APIClient()
    for _ in range(6):
        assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/keys/99999999999999999999999999",
        "/api/runs?search=%00",
        "/api/runs?script_path=%00",
        "/api/runs?created_by=%00x",
        "/api/runs?page=99999999999999999999999",
        "/api/runs?page_size=-1",
        "/api/runs?ordering=%00",
        "/api/runs?status=",
        "/api/keys?role=root",
        "/api/runs/00000000-0000-0000-0000-000000000000/logs?offset=99999999999999999999999999",
        "/api/runs/00000000-0000-0000-0000-000000000000/logs?tail=%00",
    ],
)
def test_odd_query_strings_are_never_500(client_for, path: str) -> None:
    response = client_for(Role.ADMIN).get(path)
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
