"""A run's paths the kernel cannot take are a 400 naming ``script_path`` or ``working_dir``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.paths import NAME_MAX
from core.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def executor(client_for) -> APIClient:
    return client_for(Role.EXECUTOR)


@pytest.mark.parametrize(
    "script_path",
    [
        "{root}/" + "a" * (NAME_MAX + 1) + ".sh",  # one name over NAME_MAX: ENAMETOOLONG
        # Under the field's 4,096 characters, over PATH_MAX's 4,096 bytes (é is two).
        "{root}/" + "/".join(["é" * 120] * 18) + "/x.sh",
        "{root}/x\x00.sh",
    ],
    ids=["long-name", "long-path", "nul"],
)
def test_script_path_answers_400_naming_it(executor: APIClient, roots: Path, script_path: str) -> None:
    response = executor.post("/api/run", {"script_path": script_path.format(root=roots)}, format="json")

    assert response.status_code == 400, response.content[:300]
    assert "script_path" in response.json()["details"]


@pytest.mark.parametrize("name", ["a" * 300 + ".sh", "/".join(["é" * 120] * 18)])
def test_an_overlong_path_says_so(executor: APIClient, roots: Path, name: str) -> None:
    response = executor.post("/api/run", {"script_path": f"{roots}/{name}"}, format="json")

    assert "too long" in response.json()["details"]["script_path"][0]


@pytest.mark.parametrize("working_dir", ["w" * (NAME_MAX + 1), "{root}/" + "w" * 1000, "sub\x00dir"])
def test_working_dir_answers_400_naming_it(
    executor: APIClient, roots: Path, make_script, working_dir: str
) -> None:
    script = make_script("ok.sh", "echo hi\n")

    response = executor.post(
        "/api/run", {"script_path": str(script), "working_dir": working_dir.format(root=roots)}, format="json"
    )

    assert response.status_code == 400, response.content[:300]
    assert "working_dir" in response.json()["details"]


def test_an_upload_with_a_huge_name_is_stored_under_a_short_safe_one(
    executor: APIClient, roots: Path
) -> None:
    upload = SimpleUploadedFile("x" * 5000 + ".sh", b"echo hi\n")

    response = executor.post("/api/run/upload", {"file": upload, "dry_run": "true"}, format="multipart")

    assert response.status_code in (200, 202), response.content[:300]
