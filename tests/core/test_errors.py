"""One error model: plain domain errors, mapped to the one JSON shape by one handler."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, TooLarge, Unsupported
from core.exception_handler import exception_handler
from library.services import LibraryError
from runs.plan import PlanError
from scheduler.services import TaskError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            InvalidInput("path", "path is required.", "required"),
            400,
            {
                "error": "validation_error",
                "message": "path: path is required.",
                "details": {"path": ["path is required."]},
            },
        ),
        (
            InvalidInput({"name": ["Taken."], "cron": ["Bad."]}),
            400,
            {
                "error": "validation_error",
                "message": "name: Taken.",
                "details": {"name": ["Taken."], "cron": ["Bad."]},
            },
        ),
        (
            Forbidden("Only an admin may force it."),
            403,
            {"error": "permission_denied", "message": "Only an admin may force it.", "details": {}},
        ),
        (
            NotFound("Unknown webhook token."),
            404,
            {"error": "not_found", "message": "Unknown webhook token.", "details": {}},
        ),
        (
            Conflict("Run 1 is already completed."),
            409,
            {"error": "conflict", "message": "Run 1 is already completed.", "details": {}},
        ),
        (
            Conflict("gone from disk", code="script_missing"),
            409,
            {"error": "script_missing", "message": "gone from disk", "details": {}},
        ),
        (
            Gone("not on disk any more"),
            410,
            {"error": "gone", "message": "not on disk any more", "details": {}},
        ),
        (TooLarge("too big"), 413, {"error": "payload_too_large", "message": "too big", "details": {}}),
        (
            Unsupported("binary", code="binary_content"),
            415,
            {"error": "binary_content", "message": "binary", "details": {}},
        ),
    ],
)
def test_each_domain_error_answers_its_status_in_the_one_shape(
    error: Exception, status: int, body: dict[str, Any]
) -> None:
    response = exception_handler(error, {})
    assert response is not None
    assert response.status_code == status
    assert response.data == body


@pytest.mark.parametrize(
    "error",
    [
        PlanError("script_path", "x does not exist.", "not_found"),
        LibraryError("path", "x"),
        TaskError("name", "x"),
    ],
)
def test_each_apps_input_error_is_the_core_one(error: InvalidInput) -> None:
    assert isinstance(error, InvalidInput)
    response = exception_handler(error, {})
    assert response is not None and response.status_code == 400
    assert error.field in error.fields


def test_drf_errors_keep_the_same_shape() -> None:
    response = exception_handler(Throttled(wait=3), {})
    assert response is not None and response.status_code == 429
    assert response.data["error"] == "throttled"


def test_an_unexpected_error_is_logged_and_answers_a_generic_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        response = exception_handler(RuntimeError("secret detail"), {})
    assert response is not None and response.status_code == 500
    assert response.data == {"error": "internal_error", "message": "Internal server error.", "details": {}}
    assert "secret detail" not in str(response.data)
    assert any("Unhandled API error" in r.message for r in caplog.records)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def test_the_errors_module_is_plain_python() -> None:
    assert _imports(ROOT / "core" / "errors.py") <= {"__future__", "collections", "typing"}


# A URLconf of its own (``pytest.mark.urls(__name__)``): real views that raise, served
# through the real middleware, DRF's dispatch and the site's 404/500 handlers.
RAISED: dict[str, Exception] = {
    "invalid": InvalidInput("path", "path is required.", "required"),
    "forbidden": Forbidden("Only an admin may force it."),
    "not-found": NotFound("Unknown webhook token."),
    "conflict": Conflict("Run 1 is already completed."),
    "too-large": TooLarge("too big"),
    "plan": PlanError("working_dir", "/x is outside the allowed roots.", "path_not_allowed"),
    "crash": RuntimeError("secret detail"),
}


class Raising(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def get(self, request: Request, name: str) -> Response:
        raise RAISED[name]


def crashing_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret page detail")


urlpatterns = [
    path("raise/<str:name>", Raising.as_view()),
    path("page", crashing_page),
]
handler404 = "core.exception_handler.json_404"
handler500 = "core.exception_handler.json_500"


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("name", "status", "code", "message", "details"),
    [
        ("invalid", 400, "validation_error", "path: path is required.", {"path": ["path is required."]}),
        ("forbidden", 403, "permission_denied", "Only an admin may force it.", {}),
        ("not-found", 404, "not_found", "Unknown webhook token.", {}),
        ("conflict", 409, "conflict", "Run 1 is already completed.", {}),
        ("too-large", 413, "payload_too_large", "too big", {}),
        (
            "plan",
            400,
            "validation_error",
            "working_dir: /x is outside the allowed roots.",
            {"working_dir": ["/x is outside the allowed roots."]},
        ),
    ],
)
def test_a_view_raising_a_domain_error_answers_the_one_shape(
    name: str, status: int, code: str, message: str, details: dict[str, list[str]]
) -> None:
    response = Client().get(f"/raise/{name}")
    assert response.status_code == status
    assert response.json() == {"error": code, "message": message, "details": details}


@pytest.mark.urls(__name__)
def test_a_view_crashing_answers_a_logged_generic_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        response = Client(raise_request_exception=False).get("/raise/crash")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "Internal server error.", "details": {}}
    assert "secret detail" not in response.content.decode()
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.urls(__name__)
def test_a_page_crashing_answers_the_json_500_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        response = Client(raise_request_exception=False).get("/page")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "Internal server error.", "details": {}}
    assert "secret page detail" not in response.content.decode()
    assert any(r.exc_info and "secret page detail" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.urls(__name__)
def test_an_unknown_path_answers_the_json_404() -> None:
    response = Client().get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No such resource: /nowhere", "details": {}}
