"""POST /api/run/upload: store a .py/.sh script under the uploads root and queue it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.roles import Role
from runs.models import EventKind, Run, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(roots: Path, client_for) -> APIClient:
    return client_for(Role.EXECUTOR)


def upload(client: APIClient, name: str = "job.py", content: bytes = b"print('hi')\n", **fields: Any) -> Any:
    data = {"file": SimpleUploadedFile(name, content), **fields}
    return client.post("/api/run/upload", data, format="multipart")


def stored_files() -> list[Path]:
    root = Path(settings.UPLOADS_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content[:400]
    body = response.json()
    assert body["message"]
    if field:
        assert field in body["details"], body
    assert not Run.objects.exists()
    assert stored_files() == [], "a refused upload must not leave files behind"
    return body


@pytest.mark.parametrize(("name", "interpreter"), [("job.py", "python"), ("job.sh", "bash")])
def test_script_is_stored_and_queued(client: APIClient, name: str, interpreter: str) -> None:
    response = upload(client, name, b"echo hi\n" if name.endswith(".sh") else b"print(1)\n")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["source"] == "upload"
    (stored,) = stored_files()
    assert stored.name == name
    assert stored.is_relative_to(Path(settings.UPLOADS_ROOT))
    run = Run.objects.get(pk=body["id"])
    assert run.status == RunStatus.QUEUED
    assert Path(run.script_path) == stored.resolve()
    assert list(run.events.values_list("kind", flat=True)) == [EventKind.QUEUED]


def test_two_uploads_with_the_same_name_do_not_collide(client: APIClient) -> None:
    upload(client, "same.py", b"print(1)\n")
    upload(client, "same.py", b"print(2)\n")
    files = stored_files()
    assert len(files) == 2
    assert {f.read_bytes() for f in files} == {b"print(1)\n", b"print(2)\n"}


@pytest.mark.parametrize("name", ["job.txt", "job", "job.py.exe", "job.PYC", "Makefile", ".bashrc"])
def test_other_extensions_are_400(client: APIClient, name: str) -> None:
    assert_error(upload(client, name), 400, "file")


def test_upper_case_extension_is_accepted(client: APIClient) -> None:
    assert upload(client, "JOB.PY").status_code == 202


def test_too_big_is_413(client: APIClient, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 100
    body = assert_error(upload(client, content=b"#" * 101 + b"\n"), 413)
    assert body["error"] == "payload_too_large"
    assert "100" in body["message"]
    assert upload(client, content=b"#" * 99 + b"\n").status_code == 202


def test_empty_file_is_400(client: APIClient) -> None:
    assert_error(upload(client, content=b""), 400, "file")


def test_missing_file_is_400(client: APIClient) -> None:
    response = client.post("/api/run/upload", {"timeout": "5"}, format="multipart")
    assert_error(response, 400, "file")


def test_file_sent_as_a_plain_field_is_400(client: APIClient) -> None:
    response = client.post("/api/run/upload", {"file": "print(1)"}, format="multipart")
    assert_error(response, 400, "file")


def test_json_body_is_415(client: APIClient) -> None:
    response = client.post("/api/run/upload", {"script_path": "x.py"}, format="json")
    assert_error(response, 415)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../evil.sh", "evil.sh"),
        ("..\\..\\evil.sh", "evil.sh"),
        ("/etc/cron.d/evil.py", "evil.py"),
        ("my script (1).py", "my_script_1_.py"),
        ("..evil.py", "evil.py"),
        ("a;rm -rf $HOME.sh", "a_rm_-rf_HOME.sh"),
        ("ünïcødé.py", "n_c_d_.py"),
    ],
)
def test_name_is_sanitised_and_stays_inside_uploads(client: APIClient, name: str, expected: str) -> None:
    response = upload(client, name, b"echo hi\n")
    assert response.status_code == 202, response.content
    (stored,) = stored_files()
    assert stored.resolve().is_relative_to(Path(settings.UPLOADS_ROOT).resolve())
    assert stored.name == expected
    assert stored.parent.parent == Path(settings.UPLOADS_ROOT)


def test_very_long_name_is_shortened_keeping_the_extension(client: APIClient) -> None:
    assert upload(client, "a" * 300 + ".py").status_code == 202
    (stored,) = stored_files()
    assert stored.suffix == ".py"
    assert len(stored.name) <= 100


def test_form_fields_are_honoured(client: APIClient) -> None:
    response = upload(
        client,
        args='["--name", "two words"]',
        timeout="7.5",
        env_vars='{"GREETING": "hi"}',
        retry_on_failure="true",
        retry_max_attempts="2",
    )
    assert response.status_code == 202, response.content
    run = Run.objects.get()
    assert run.args == ["--name", "two words"]
    assert run.timeout == 7.5
    assert run.env_vars == {"GREETING": "hi"}
    assert run.retry_on_failure is True
    assert run.retry_max_attempts == 2


def test_string_args_are_shell_split(client: APIClient) -> None:
    assert upload(client, args="-v 'a b'").status_code == 202
    assert Run.objects.get().args == ["-v", "a b"]


def test_dry_run_upload_plans_and_keeps_nothing(client: APIClient) -> None:
    response = upload(client, dry_run="true", args="x")
    assert response.status_code == 200
    plan = response.json()
    assert plan["dry_run"] is True
    assert plan["command"][-1] == "x"
    assert not Run.objects.exists()
    assert stored_files() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"script_path": "/etc/passwd"}, "script_path"),
        ({"path": "other.py"}, "script_path"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": "nan"}, "timeout"),
        ({"args": "[1"}, "args"),
        ({"args": "'unbalanced"}, "args"),
        ({"env_vars": "{bad json"}, "env_vars"),
        ({"env_vars": '{"LD_PRELOAD": "x.so"}'}, "env_vars"),
        ({"env_vars": "A=1"}, "env_vars"),
        ({"working_dir": "/"}, "working_dir"),
        ({"retry_strategy": "sometimes"}, "retry_strategy"),
        ({"enable_visualizer": "true"}, "enable_visualizer"),
    ],
)
def test_bad_form_fields_are_400_and_store_nothing(
    client: APIClient, fields: dict[str, str], field: str
) -> None:
    assert_error(upload(client, **fields), 400, field)


def test_extra_file_field_is_400(client: APIClient) -> None:
    data = {"file": SimpleUploadedFile("a.py", b"print(1)\n"), "other": SimpleUploadedFile("b.py", b"x")}
    assert_error(client.post("/api/run/upload", data, format="multipart"), 400, "other")


def test_readonly_cannot_upload(roots: Path, client_for) -> None:
    response = upload(client_for(Role.READONLY))
    assert response.status_code == 403
    assert stored_files() == []


def test_unsupported_options_switched_off_in_a_form_are_accepted(client: APIClient) -> None:
    response = upload(client, enable_cost_tracking="false", enable_visualizer="0", junit_output="")
    assert response.status_code == 202, response.content
