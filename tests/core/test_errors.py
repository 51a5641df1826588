"""One error model: plain domain errors, mapped to the one JSON shape by one handler."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from rest_framework.exceptions import Throttled

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
def test_each_domain_error_answers_its_status_in_the_one_shape(error, status: int, body: dict) -> None:
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
    assert exception_handler(error, {}).status_code == 400  # type: ignore[union-attr]
    assert error.field in error.fields


def test_drf_errors_keep_the_same_shape() -> None:
    response = exception_handler(Throttled(wait=3), {})
    assert response is not None and response.status_code == 429
    assert response.data["error"] == "throttled"


def test_an_unexpected_error_is_logged_and_answers_a_generic_500(caplog) -> None:
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
