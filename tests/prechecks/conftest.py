"""Fixtures for the pre-check tests: script files, an OSV advisory folder, a stub OSV API."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prechecks import services
from prechecks.tools import dependencies

# Built from parts so this test file itself holds no scannable secret.
AWS_KEY = "AKIA" + "Q3EGRIOSFODNN7XY"
PRIVATE_KEY_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"

ADVISORY = {
    "schema_version": "1.4.0",
    "id": "PYSEC-2099-1",
    "aliases": ["GHSA-test-0001-xxxx"],
    "summary": "Remote code execution in examplepkg",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "ExamplePkg"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0.1"}]}],
            "versions": ["1.0", "2.0.0"],
        }
    ],
    "database_specific": {"severity": "CRITICAL"},
}


@pytest.fixture(autouse=True)
def _fresh_memos() -> Iterator[None]:
    """Each test sees its advisory folder and tools as they are now, not as memoised."""
    dependencies._INDEX_CACHE.clear()
    services._ADVISORY_SIGNATURE_MEMO.clear()
    yield
    dependencies._INDEX_CACHE.clear()
    services._ADVISORY_SIGNATURE_MEMO.clear()


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a file under a scripts folder of this test: ``write("a.py", "...")``."""

    def make(name: str, body: str) -> Path:
        path = tmp_path / "scripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip("\n"))
        return path

    return make


@pytest.fixture
def secret_script(write: Callable[..., Path]) -> Path:
    return write(
        "leaky.py",
        f'''
        AWS_ACCESS_KEY_ID = "{AWS_KEY}"
        KEY = """-----BEGIN RSA PRIVATE KEY-----
        {PRIVATE_KEY_BODY}
        -----END RSA PRIVATE KEY-----"""
        print(len(KEY))
        ''',
    )


@pytest.fixture
def advisory_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "advisories" / "vulns" / "examplepkg"
    folder.mkdir(parents=True)
    (folder / "PYSEC-2099-1.json").write_text(json.dumps(ADVISORY))
    return tmp_path / "advisories"


class _OsvStub(BaseHTTPRequestHandler):
    advisories: dict[str, dict[str, Any]] = {"PYSEC-2099-1": ADVISORY}
    queries: list[Any] = []

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/querybatch":
            self._answer(404, {})
            return
        type(self).queries.append(body)
        results = []
        for query in body["queries"]:
            hit = query["package"]["name"] == "examplepkg" and query["version"] in ("1.0", "2.0.0")
            results.append(
                {"vulns": [{"id": "PYSEC-2099-1", "modified": "2099-01-01T00:00:00Z"}]} if hit else {}
            )
        self._answer(200, {"results": results})

    def do_GET(self) -> None:
        vuln_id = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/v1/vulns/") and vuln_id in self.advisories:
            self._answer(200, self.advisories[vuln_id])
        else:
            self._answer(404, {"message": "not found"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def osv_api() -> Iterator[str]:
    """A local OSV-compatible API on 127.0.0.1: its base URL."""
    _OsvStub.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OsvStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
