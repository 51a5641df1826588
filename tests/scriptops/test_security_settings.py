"""Security headers in every profile, the production profile's deploy checks, and templates
the Content-Security-Policy can allow (no inline script or style)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from core.roles import Role
from tests.factories import UserFactory

BASE_DIR = Path(__file__).resolve().parents[2]


def csp_directives(value: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in value.split(";") if part.strip()}


def assert_security_headers(response) -> None:
    csp = csp_directives(response["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/login/", "/", "/library/", "/keys/", "/admin/", "/api/health", "/api/runs"]
)
def test_pages_and_api_answers_carry_the_security_headers(path: str) -> None:
    client = Client()
    if path != "/login/":
        client.force_login(UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True))

    response = client.get(path)

    assert response.status_code == 200, response.content[:300]
    assert_security_headers(response)


@pytest.mark.django_db
def test_the_default_profile_works_over_plain_http() -> None:
    response = Client().get("/login/")

    assert response.status_code == 200  # no redirect to HTTPS
    assert "Strict-Transport-Security" not in response
    assert not response.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
def test_api_docs_are_served_without_inline_script_or_style() -> None:
    client = Client()
    client.force_login(UserFactory(username="root", role=Role.ADMIN))

    page = client.get("/api/docs")
    script = client.get("/api/docs?script=")

    assert page.status_code == 200 and script.status_code == 200
    html = page.content.decode()
    assert "<style" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert script["Content-Type"].startswith("application/javascript")


def test_templates_have_no_inline_script_or_style() -> None:
    """The policy allows neither: an inline one would be blocked in the browser."""
    offenders = []
    for template in (BASE_DIR / "templates").rglob("*.html"):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(
            r"<style\b|\sstyle=|\son[a-z]+=", text
        ):
            offenders.append(str(template.relative_to(BASE_DIR)))
    assert offenders == []


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SCRIPTOPS_") and k != "DJANGO_SETTINGS_MODULE"
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "SCRIPTOPS_PROFILE": "production",
    "SCRIPTOPS_SECRET_KEY": "a-production-secret-" + "x7Kq9vW2" * 8,
    "SCRIPTOPS_ALLOWED_HOSTS": "scriptops.example.com",
    "SCRIPTOPS_CSRF_TRUSTED_ORIGINS": "https://scriptops.example.com",
}


def test_the_production_profile_passes_the_deploy_checks(tmp_path: Path) -> None:
    env = {**PRODUCTION, "SCRIPTOPS_DATA_DIR": str(tmp_path)}

    result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout + result.stderr


def test_the_default_profile_does_not_pass_them(tmp_path: Path) -> None:
    """The check above is not vacuous: without the profile, the same check complains."""
    env = {k: v for k, v in PRODUCTION.items() if k != "SCRIPTOPS_PROFILE"}

    result = _manage("check", "--deploy", "--fail-level", "WARNING", SCRIPTOPS_DATA_DIR=str(tmp_path), **env)

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stdout + result.stderr


def test_an_unknown_profile_is_refused_at_start(tmp_path: Path) -> None:
    result = _manage("check", SCRIPTOPS_PROFILE="prod", SCRIPTOPS_DATA_DIR=str(tmp_path))

    assert result.returncode != 0
    assert "SCRIPTOPS_PROFILE must be default or production" in result.stderr
