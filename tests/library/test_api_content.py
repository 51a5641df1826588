"""A script's content: read fresh from disk, as text, JSON or highlighted HTML; clear
errors for large (413), binary (415), gone (410) and escaped (409) files."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from library.models import Script
from tests.library.helpers import error, field_error, scanned_root, write

pytestmark = pytest.mark.django_db

TEXT = '#!/bin/bash\n# Say hello — in UTF-8: café\necho "héllo"\n'


@pytest.fixture
def reader(roots: Path, client_for) -> APIClient:
    return client_for(Role.READONLY)


@pytest.fixture
def script(roots: Path) -> Script:
    write(roots / "team" / "hello.sh", TEXT)
    scanned_root(roots / "team")
    return Script.objects.get(name="hello.sh")


def url(script: Script) -> str:
    return f"/api/library/scripts/{script.pk}/content"


def test_the_default_is_the_raw_utf8_text(reader: APIClient, script: Script) -> None:
    response = reader.get(url(script))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode("utf-8") == TEXT


def test_it_is_read_fresh_from_disk(reader: APIClient, script: Script) -> None:
    Path(script.path).write_text("echo changed\n")  # no rescan
    assert reader.get(url(script)).content == b"echo changed\n"


def test_json_format(reader: APIClient, script: Script) -> None:
    response = reader.get(url(script), {"format": "json"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "id": script.pk,
        "path": script.path,
        "size": len(TEXT.encode()),
        "language": "shell",
        "content": TEXT,
    }


def test_html_format_is_highlighted_by_pygments(reader: APIClient, script: Script) -> None:
    body = reader.get(url(script), {"format": "html"}).json()
    assert set(body) == {"id", "path", "language", "lexer", "html", "css"}
    assert body["lexer"] == "Bash" and body["language"] == "shell"
    assert 'class="highlight"' in body["html"] and "caf" in body["html"]
    assert ".highlight" in body["css"]


def test_an_unknown_format_is_a_400(reader: APIClient, script: Script) -> None:
    assert "valid choice" in field_error(reader.get(url(script), {"format": "pdf"}), "format")


def test_a_file_past_the_cap_is_413(reader: APIClient, script: Script, settings) -> None:
    settings.LIBRARY_CONTENT_MAX_BYTES = 1024
    Path(script.path).write_text("#" * 1025)
    body = error(reader.get(url(script)), 413, "payload_too_large")
    assert "1025 bytes" in body["message"] and "1024" in body["message"]
    Path(script.path).write_text("#" * 1024)
    assert reader.get(url(script)).status_code == 200


def test_a_binary_file_is_415(reader: APIClient, script: Script) -> None:
    Path(script.path).write_bytes(b"\x7fELF\x00\x01\x02")
    assert "binary" in error(reader.get(url(script)), 415, "binary_content")["message"]
    Path(script.path).write_bytes("é".encode("latin-1") * 20)
    assert error(reader.get(url(script), {"format": "json"}), 415)


def test_a_file_gone_from_disk_is_410(reader: APIClient, script: Script) -> None:
    Path(script.path).unlink()
    assert "not on disk" in error(reader.get(url(script)), 410, "file_gone")["message"]


def test_a_file_now_resolving_outside_its_root_is_409_and_not_served(
    reader: APIClient, script: Script, tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret.txt", "top secret\n")
    Path(script.path).unlink()
    Path(script.path).symlink_to(secret)
    response = reader.get(url(script))
    body = error(response, 409, "conflict")
    assert "outside its folder root" in body["message"]
    assert b"top secret" not in response.content


def test_errors_are_json_whatever_the_format(reader: APIClient, script: Script) -> None:
    Path(script.path).unlink()
    for fmt in ("text", "json", "html"):
        error(reader.get(url(script), {"format": fmt}), 410)
    error(reader.get("/api/library/scripts/999/content"), 404, "not_found")
