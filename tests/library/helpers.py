"""Helpers of the library API tests: files on disk, a scanned root, error checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from library.models import FolderRoot, Scan, ScanState
from library.services import root_create, scan_start


def write(path: Path, text: str | bytes, *, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def scan_now(root: FolderRoot) -> Scan:
    """Scan ``root`` (tests/library/conftest.py runs the queued scan at once)."""
    scan, _ = scan_start(root=root)
    scan.refresh_from_db()
    assert scan.state == ScanState.COMPLETED, scan.message
    return scan


def scanned_root(folder: Path, *, name: str = "team", **options: Any) -> FolderRoot:
    root = root_create(name=name, path=str(folder), **options)
    scan_now(root)
    return root


def error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The JSON error body of ``response``, which must have ``status`` (and ``code``)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["message"]
    if code is not None:
        assert body["error"] == code, body
    return body


def field_error(response: Any, field: str) -> str:
    """A 400 naming ``field``: its first message."""
    body = error(response, 400, "validation_error")
    assert field in body["details"], body
    detail = body["details"][field]
    while isinstance(detail, (dict, list)):  # a list field's errors are {index: [...]}
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail)


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [row["id"] for row in response.json()["results"]]
