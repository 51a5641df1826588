"""Every API parameter that takes a path, against a corpus of traversal attempts.

``..`` in all its encodings, absolute paths, a symlink inside the root pointing out of
it, NUL bytes, overlong paths and names, Unicode look-alikes and invalid UTF-8. No answer
is a 5xx; none reads (``/etc/passwd`` never shows up) or queues anything outside the
allowed roots; every refusal is a 4xx JSON error naming the problem. The requests sent
per endpoint class are printed and merged into ``SCRIPTOPS_FUZZ_REPORT`` when it is set.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core.roles import Role
from library.models import FolderRoot
from runs.models import Run
from scheduler.models import ScheduledTask
from tests.security.fuzz import Tally, record

SENT: Counter[str] = Counter()
SERVER_ERRORS: Counter[str] = Counter()
PASSWD_MARK = "root:x:0:0"


@dataclass(frozen=True)
class Hostile:
    label: str
    value: str  # what the server should see once the request is decoded
    raw_query: str | None = None  # sent as is in a query string instead of quote(value)
    # An empty query parameter means "not given" (the roots, no filter): a 2xx is right.
    empty: bool = False


def corpus(root: Path) -> list[Hostile]:
    r = str(root)
    up = "../" * 12
    items = [
        Hostile("dotdot", f"{r}/{up}etc/passwd"),
        Hostile("dotdot-relative", f"{up}etc/passwd"),
        Hostile("dotdot-%2f", f"{r}/" + "..%2f" * 12 + "etc/passwd"),
        Hostile("%2e%2e", f"{r}/" + "%2e%2e/" * 12 + "etc/passwd"),
        Hostile("double-encoded", f"{r}/" + "%252e%252e%252f" * 12 + "etc%252fpasswd"),
        Hostile("backslash", f"{r}\\" + "..\\" * 12 + "etc\\passwd"),
        Hostile("dotdotdotdot", f"{r}/" + "....//" * 12 + "etc/passwd"),
        Hostile("overlong-utf8-literal", f"{r}/" + "%c0%ae%c0%ae/" * 12 + "etc/passwd"),
        Hostile(
            "overlong-utf8-decoded",
            f"{r}/" + "\ufffd\ufffd\ufffd\ufffd/" * 12 + "etc/passwd",
            raw_query=quote(r) + "/" + "%c0%ae%c0%ae/" * 12 + "etc/passwd",
        ),
        Hostile("absolute", "/etc/passwd"),
        Hostile("absolute-dir", "/etc"),
        Hostile("root-dir", "/"),
        Hostile("home", "~/.ssh/id_rsa"),
        Hostile("symlink-out", f"{r}/escape/passwd"),
        Hostile("symlink-dir", f"{r}/escape"),
        Hostile("nul", f"{r}/job.sh\x00/../../etc/passwd"),
        Hostile("nul-end", f"{r}/job.sh\x00"),
        Hostile("overlong-path", f"{r}/" + "a" * 5000),
        Hostile("overlong-name", f"{r}/" + "b" * 300 + ".sh"),
        Hostile("overlong-name-multibyte", f"{r}/" + "é" * 200 + ".sh"),  # 400 bytes
        Hostile("deep", f"{r}/" + "d/" * 2000 + "x.sh"),
        Hostile("fullwidth-dots", f"{r}/" + "\uff0e\uff0e\uff0f" * 12 + "etc\uff0fpasswd"),
        Hostile("one-dot-leader", f"{r}/" + "\u2025/" * 12 + "etc/passwd"),
        Hostile(
            "nfkc-of-fullwidth",
            unicodedata.normalize("NFKC", f"{r}/" + "\uff0e\uff0e\uff0f" * 12 + "etc/passwd"),
        ),
        Hostile("nfd", unicodedata.normalize("NFD", f"{r}/café/../" + up + "etc/passwd")),
        Hostile("combining-dot", f"{r}/.\u0307./" + up + "etc/passwd"),
        Hostile("rtl-override", f"{r}/\u202ehs.boj"),
        Hostile(
            "invalid-utf8",
            f"{r}/\ufffd\ufffd.sh",
            raw_query=quote(r) + "/%ff%fe.sh",
        ),
        Hostile("lone-surrogate-escape", f"{r}/\\udc80.sh"),
        Hostile("proc-self", "/proc/self/environ"),
        Hostile("dev", "/dev/zero"),
        Hostile("empty", "", empty=True),
        Hostile("whitespace", "   "),
    ]
    return items


@dataclass(frozen=True)
class Target:
    klass: str
    name: str
    send: Callable[[APIClient, Hostile, Path], Any]
    # Whether a 2xx is acceptable at all (a text filter matches strings; it opens nothing).
    may_succeed: bool

    @property
    def query(self) -> bool:
        return "?" in self.name


def _query(url: str, param: str) -> Callable[[APIClient, Hostile, Path], Any]:
    def send(api: APIClient, item: Hostile, root: Path) -> Any:
        raw = item.raw_query if item.raw_query is not None else quote(item.value, safe="/")
        return api.get(url, QUERY_STRING=f"{param}={raw}")

    return send


def _json(url: str, body: Callable[[str, Path], dict[str, Any]]) -> Callable[[APIClient, Hostile, Path], Any]:
    def send(api: APIClient, item: Hostile, root: Path) -> Any:
        return api.post(url, body(item.value, root), format="json")

    return send


def _upload(api: APIClient, item: Hostile, root: Path) -> Any:
    """Multipart by hand: the file name is sent byte for byte (invalid UTF-8 included).
    No dry run: an accepted upload queues a run, whose stored path the test then checks."""
    boundary = "fuzzboundary"
    name = item.value.encode("utf-8", "surrogateescape")
    if item.label == "invalid-utf8":
        name = b"\xff\xfe/../../etc/passwd.sh"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + name.replace(b'"', b"%22").replace(b"\r", b"").replace(b"\n", b"")
        + b'"\r\nContent-Type: text/x-sh\r\n\r\necho hi\n\r\n'
        + f"--{boundary}--\r\n".encode()
    )
    return api.generic(
        "POST", "/api/run/upload/", body, content_type=f"multipart/form-data; boundary={boundary}"
    )


_names = iter(range(10**9))

TARGETS = [
    Target("library", "browse ?path", _query("/api/browse/", "path"), may_succeed=False),
    Target("runs", "POST /api/run script_path", _json("/api/run/", lambda v, r: {"script_path": v}), False),
    Target(
        "runs",
        "POST /api/run dry_run",
        _json("/api/run/", lambda v, r: {"script_path": v, "dry_run": True}),
        False,
    ),
    Target("runs", "POST /api/run/upload filename", _upload, may_succeed=True),
    Target("runs", "GET /api/runs ?script_path", _query("/api/runs/", "script_path"), may_succeed=True),
    Target("runs", "GET /api/runs ?search", _query("/api/runs/", "search"), may_succeed=True),
    Target("runs", "GET /api/runs ?script", _query("/api/runs/", "script"), may_succeed=False),
    Target(
        "prechecks/checks",
        "POST /api/library/check path",
        _json("/api/library/check/", lambda v, r: {"path": v, "kinds": ["secret"]}),
        may_succeed=False,
    ),
    Target(
        "library",
        "POST /api/library/folder-roots path",
        _json("/api/library/folder-roots/", lambda v, r: {"name": f"root-{next(_names)}", "path": v}),
        may_succeed=False,
    ),
    Target("library", "GET /api/library/scripts ?search", _query("/api/library/scripts/", "search"), True),
    Target("library", "GET /api/library/picker ?q", _query("/api/library/picker/", "q"), True),
    Target(
        "scheduler",
        "POST /api/scheduler/tasks script_path",
        _json(
            "/api/scheduler/tasks/",
            lambda v, r: {"name": f"task-{next(_names)}", "script_path": v, "interval_seconds": 600},
        ),
        may_succeed=False,
    ),
    Target("analytics", "history ?script_path", _query("/api/analytics/history/", "script_path"), True),
    Target(
        "analytics",
        "history/stats ?script_path",
        _query("/api/analytics/history/stats/", "script_path"),
        True,
    ),
    Target("analytics", "trends ?script_path", _query("/api/analytics/trends/", "script_path"), True),
    Target("analytics", "baselines ?script_path", _query("/api/analytics/baselines/", "script_path"), True),
    Target("analytics", "sparklines ?script_path", _query("/api/analytics/sparklines/", "script_path"), True),
    Target("analytics", "expected ?script_path", _query("/api/analytics/expected/", "script_path"), True),
    Target("analytics", "overview ?script_path", _query("/api/analytics/overview/", "script_path"), True),
]


@pytest.fixture
def setup(db, tmp_path: Path, roots: Path, make_script, client_for) -> Iterator[tuple[APIClient, Path]]:
    make_script("job.sh", "echo hi")
    (roots / "escape").symlink_to("/etc")
    settings.UPLOADS_ROOT.mkdir(exist_ok=True)
    yield client_for(Role.ADMIN), roots


def _inside(path: str, base: Path) -> bool:
    real = os.path.realpath(path)
    return real == str(base) or real.startswith(str(base) + os.sep)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(SENT.values())
    print(f"\npath traversal corpus: {total} requests {dict(SENT)}; 5xx {dict(SERVER_ERRORS)}")
    record("admin", Tally(sent=SENT, server_errors=SERVER_ERRORS), name="path_traversal")


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_corpus_never_escapes_the_roots(
    target: Target, setup: tuple[APIClient, Path], tmp_path: Path
) -> None:
    api, root = setup
    problems: list[str] = []
    for item in corpus(root):
        response = target.send(api, item, root)
        SENT[target.klass] += 1
        status, body = response.status_code, response.content.decode("utf-8", "replace")
        where = f"{target.name} with {item.label}: {status} {body[:200]}"
        if status >= 500:
            SERVER_ERRORS[target.klass] += 1
            problems.append(where)
        if PASSWD_MARK in body:
            problems.append(f"/etc/passwd leaked: {where}")
        if 200 <= status < 300 and not target.may_succeed and not (item.empty and target.query):
            problems.append(f"accepted: {where}")
        if 400 <= status < 500:
            error = json.loads(body)
            if not (isinstance(error.get("error"), str) and error.get("message")):
                problems.append(f"not a JSON error: {where}")
    # Nothing anywhere points outside this test's folders (the roots, uploads, runs).
    for path in Run.objects.values_list("script_path", flat=True):
        if not _inside(path, tmp_path):
            problems.append(f"a run points outside: {path}")
    for path in FolderRoot.objects.values_list("path", flat=True):
        if not _inside(path, tmp_path):
            problems.append(f"a folder root points outside: {path}")
    for path in ScheduledTask.objects.exclude(script_path="").values_list("script_path", flat=True):
        if path and not _inside(path if os.path.isabs(path) else str(root / path), tmp_path):
            problems.append(f"a task points outside: {path}")
    assert not problems, "\n".join(problems[:30])


def test_controls_accept_a_path_inside_the_root(setup: tuple[APIClient, Path]) -> None:
    """The corpus test is meaningful only if the same requests succeed with a good path."""
    api, root = setup
    good = Hostile("good", str(root / "job.sh"))
    folder = Hostile("good-folder", str(root))
    for target in TARGETS:
        response = target.send(
            api, folder if "browse" in target.name or "folder-roots" in target.name else good, root
        )
        if target.name.endswith("?script"):
            assert response.status_code == 400, response.content  # a number filter
        else:
            assert 200 <= response.status_code < 300, (target.name, response.content[:300])


def test_invalid_utf8_json_bodies_are_400(setup: tuple[APIClient, Path]) -> None:
    api, root = setup
    for url, field in [
        ("/api/run/", "script_path"),
        ("/api/library/check/", "path"),
        ("/api/library/folder-roots/", "path"),
        ("/api/scheduler/tasks/", "script_path"),
    ]:
        body = (
            b'{"name": "x", "'
            + field.encode()
            + b'": "'
            + str(root).encode()
            + b'/\xc0\xae\xc0\xae/\xff.sh"}'
        )
        response = api.generic("POST", url, body, content_type="application/json")
        SENT["invalid-utf8 bodies"] += 1
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"] == "parse_error", response.content
