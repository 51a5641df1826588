"""API key authentication: ``Authorization: Bearer sops_...`` or ``X-API-Key: sops_...``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.services import api_key_authenticate


def raw_key_from_headers(headers: Any) -> str | None:
    header = headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return headers.get("X-API-Key") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates by API key. ``request.auth`` is the :class:`ApiKey`."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        raw = raw_key_from_headers(request.headers)
        if raw is None:
            return None
        key = api_key_authenticate(raw=raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key (sops_...)."}
