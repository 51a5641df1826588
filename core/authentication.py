"""The REST API's authentication: :func:`core.principals.principal_from` for DRF.

API keys (``Authorization: Bearer sops_...`` or ``X-API-Key: sops_...``) and the
session (with the CSRF check on unsafe methods), by the same rules as the SSE views
and websockets.
"""

from __future__ import annotations

from typing import Any, cast

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.key_guard import TooManyBadKeys
from core.models import ApiKey, User
from core.principals import CsrfRefused, InvalidApiKey, csrf_failure, principal_from


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates by API key or session. ``request.auth`` is the :class:`ApiKey`
    (None for a session).

    It takes sessions too (with Django's CSRF check on unsafe methods), through the one
    function every entry point uses (:func:`core.principals.principal_from`), so it is
    the API's only authentication class.
    """

    def authenticate(self, request: Request) -> tuple[User, ApiKey | None] | None:
        try:
            principal = principal_from(
                headers=request.headers,
                # Django's user (from the session), as DRF's SessionAuthentication reads it.
                session_user=getattr(request._request, "user", None),
                # The DRF request, not the Django one: a form's csrfmiddlewaretoken is
                # read from the parsed body (as DRF's SessionAuthentication does).
                csrf=lambda: csrf_failure(cast(HttpRequest, request)),
                address=request.META.get("REMOTE_ADDR"),
            )
        except TooManyBadKeys as exc:
            # 429 with Retry-After (DRF's handler sets the header from ``wait``).
            raise exceptions.Throttled(wait=exc.retry_after, detail=str(exc)) from exc
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        except CsrfRefused as exc:
            raise exceptions.PermissionDenied(f"CSRF Failed: {exc.reason}") from exc
        if principal is None:
            return None
        return principal.user, principal.api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular's hook is untyped
    target_class = "core.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key (sops_...)."}
