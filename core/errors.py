"""The domain's errors, in plain Python, and the one JSON error shape.

Services, selectors and the engine's plan raise these; they never import DRF. One
exception handler (:mod:`core.exception_handler`) turns them, and DRF's own, into the
answer every client sees::

    {"error": <code>, "message": <text>, "details": {<field>: [<text>, ...]}}

``details`` holds per-field messages for invalid input. Which HTTP status each class
means is decided there, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DomainError(Exception):
    """A request the domain refuses: a message for people, a stable code for programs."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class InvalidInput(DomainError):
    """Bad input, naming each field: ``InvalidInput("path", "…")`` or
    ``InvalidInput({"name": ["…"], "cron": ["…"]})``. ``field``/``message`` are the
    first problem; ``code`` says what kind it is (``required``, ``not_found``…)."""

    default_code = "invalid"

    def __init__(
        self, field_or_fields: str | Mapping[str, Sequence[str]], message: str = "", code: str = "invalid"
    ):
        if isinstance(field_or_fields, str):
            fields = {field_or_fields: [message]}
        else:
            fields = {name: [str(text) for text in texts] for name, texts in field_or_fields.items()}
        if not fields:
            fields = {"non_field_errors": ["Invalid input."]}
        self.fields: dict[str, list[str]] = fields
        self.field, texts = next(iter(fields.items()))
        super().__init__(texts[0] if texts else "Invalid input.", code=code)


class Forbidden(DomainError):
    default_code = "permission_denied"


class NotFound(DomainError):
    default_code = "not_found"


class Conflict(DomainError):
    """The resource's state does not allow this (a run already finished, a name taken)."""

    default_code = "conflict"


class Gone(DomainError):
    default_code = "gone"


class TooLarge(DomainError):
    default_code = "payload_too_large"


class Unsupported(DomainError):
    """The resource is of a kind this action cannot serve (a binary file as text)."""

    default_code = "unsupported_media_type"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details or {}}


def first_message(detail: Any) -> str:
    """One line for ``message``: the first problem, prefixed by its field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = first_message(value)
            return text if key in ("non_field_errors", "detail") else f"{key}: {text}"
        return "Invalid input."
    if isinstance(detail, list):
        return first_message(detail[0]) if detail else "Invalid input."
    return str(detail)
