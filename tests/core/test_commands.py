"""Management commands: create_api_key and bootstrap."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiKey, User, hash_api_key
from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def create_key(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_creates_the_user_with_the_role_and_no_usable_password() -> None:
    out, err = create_key("ci-bot", "--role", "executor")
    user = User.objects.get(username="ci-bot")
    assert user.role == Role.EXECUTOR
    assert not user.has_usable_password()
    assert not user.is_superuser
    assert "Created user ci-bot" in err
    raw = last_line(out)
    assert raw.startswith("sops_")
    key = ApiKey.objects.get(user=user)
    assert key.key_hash == hash_api_key(raw)
    assert key.role == Role.EXECUTOR
    assert key.name == "cli"
    assert key.expires_at is None


def test_printed_key_authenticates_with_that_role(roots: Path) -> None:
    raw = last_line(create_key("reader", "--role", "readonly")[0])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/runs").status_code == 200
    assert client.delete("/api/runs", ["x"], format="json").status_code == 403


def test_default_role_is_readonly() -> None:
    create_key("someone")
    assert User.objects.get(username="someone").role == Role.READONLY
    assert ApiKey.objects.get().role == Role.READONLY


def test_name_and_expiry() -> None:
    before = timezone.now()
    create_key("bob", "--role", "user", "--name", "nightly", "--expires-days", "3")
    key = ApiKey.objects.get()
    assert key.name == "nightly"
    assert key.expires_at is not None
    assert before + timedelta(days=3) <= key.expires_at <= timezone.now() + timedelta(days=3)


def test_existing_user_keeps_role_and_password_and_the_key_is_capped() -> None:
    user = UserFactory(username="alice", role=Role.READONLY)
    out, err = create_key("alice", "--role", "admin")
    user.refresh_from_db()
    assert user.role == Role.READONLY
    assert user.check_password("pw-for-tests")
    assert ApiKey.objects.get().role == Role.READONLY
    assert "capped" in err
    assert last_line(out).startswith("sops_")


def test_each_call_issues_a_new_key() -> None:
    first = last_line(create_key("bob", "--role", "user")[0])
    second = last_line(create_key("bob", "--role", "user")[0])
    assert first != second
    assert ApiKey.objects.filter(user__username="bob").count() == 2


def test_invalid_role_fails() -> None:
    with pytest.raises(CommandError, match="role"):
        create_key("bob", "--role", "root")
    assert not User.objects.filter(username="bob").exists()


@pytest.mark.parametrize("days", ["0", "-1", "soon"])
def test_invalid_expiry_fails(days: str) -> None:
    with pytest.raises(CommandError):
        create_key("bob", "--role", "user", "--expires-days", days)
    assert not ApiKey.objects.exists()


def test_username_is_required() -> None:
    with pytest.raises(CommandError):
        create_key()


def test_bootstrap_prepares_folders_and_admin(tmp_path: Path, roots: Path, settings) -> None:
    settings.DATA_DIR = tmp_path / "data"
    settings.ADMIN_PASSWORD = None
    out = StringIO()
    call_command("bootstrap", stdout=out)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.effective_role == Role.ADMIN
    password_file = settings.DATA_DIR / "admin-password"
    password = password_file.read_text().strip()
    assert password in out.getvalue()
    assert admin.check_password(password)
    assert password_file.stat().st_mode & 0o777 == 0o600
    for folder in (settings.RUNS_DIR, settings.UPLOADS_ROOT):
        assert Path(folder).is_dir()
    again = StringIO()
    call_command("bootstrap", stdout=again)
    assert password not in again.getvalue()
    assert User.objects.filter(username="admin").count() == 1
