"""Fixtures shared by all tests: isolated folders, scripts, users and API clients per role."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from core.services import api_key_create
from tests.factories import UserFactory

ROLES = [Role.READONLY, Role.EXECUTOR, Role.USER, Role.ADMIN]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache: counters kept there (the rate limit, the bad
    API keys per address, all from the test client's 127.0.0.1) never carry over from
    another test of the same process."""
    from django.core.cache import caches

    caches["default"].clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's, plus: on PostgreSQL, the connections this process's other threads
    still hold (a view's worker thread, the output store's shipper within its idle second)
    are ended before the test database is dropped. Django closes only the current
    thread's; PostgreSQL refuses to drop a database in use ("being accessed by other
    users") and the database was left behind."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def roots(tmp_path: Path, settings) -> Path:
    """An allowed root, an uploads root and a runs folder of this test's own."""
    root = tmp_path / "scripts"
    root.mkdir()
    settings.ALLOWED_ROOTS = [root]
    settings.UPLOADS_ROOT = tmp_path / "uploads"
    settings.RUNS_DIR = tmp_path / "runs"
    settings.RUNS_DIR.mkdir()
    return root


@pytest.fixture
def make_script(roots: Path) -> Callable[..., Path]:
    """Write a script into the allowed root: ``make_script("a.sh", "echo hi")``."""

    def make(name: str, body: str, *, mode: int = 0o755) -> Path:
        path = roots / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip("\n"))
        path.chmod(mode)
        return path

    return make


@pytest.fixture
def user_for(db) -> Callable[[str], object]:
    def make(role: str):
        return UserFactory(username=f"{role}-user", role=role, is_superuser=False)

    return make


@pytest.fixture
def client_for(user_for) -> Callable[[str], APIClient]:
    """An API client authenticated with an API key of the given role."""

    def make(role: str) -> APIClient:
        issued = api_key_create(user=user_for(role), name=f"{role}-key", role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
        return client

    return make


@pytest.fixture
def admin_client_api(client_for) -> APIClient:
    return client_for(Role.ADMIN)


@pytest.fixture
def user_client(client_for) -> APIClient:
    return client_for(Role.USER)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove what SQLite leaves beside a file test database (its WAL and shared-memory
    files: Django deletes only the database file itself)."""
    from django.conf import settings

    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        for leftover in Path(name).parent.glob(Path(name).name + "*"):
            leftover.unlink(missing_ok=True)
