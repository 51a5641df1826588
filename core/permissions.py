"""Role-based permissions for every API view.

A view declares what each action needs with ``required_capability`` — either one
:class:`~core.roles.Capability` for the whole view, or a dict mapping action
names (viewset actions such as ``list``/``stop``, or lower-case HTTP methods for
plain ``APIView``s) to capabilities. Anything not declared needs ``ADMIN``, so a
forgotten declaration fails closed.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.models import User
from core.roles import Capability, role_allows


def caller(request: Request | HttpRequest) -> User:
    """The signed-in user of a request that passed :class:`RolePermission` (which lets no
    anonymous caller through): typed as the project's user, for services."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user


def effective_role(request: Any) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    auth = getattr(request, "auth", None)
    if auth is not None and hasattr(auth, "effective_role"):
        return str(auth.effective_role)
    return str(user.effective_role)


def required_capability(view: Any, request: Request) -> int:
    method = (request.method or "GET").lower()
    if method == "options" or getattr(view, method, None) is None:
        # OPTIONS is metadata; a method the view does not handle does nothing and
        # answers 405 to everyone signed in, rather than 403 to all but admins.
        return Capability.READ
    declared = getattr(view, "required_capability", Capability.ADMIN)
    if isinstance(declared, dict):
        action = getattr(view, "action", None) or method
        if action == "metadata":
            return Capability.READ
        return int(declared.get(action, declared.get(method, Capability.ADMIN)) or 0)
    return int(declared)


class RolePermission(BasePermission):
    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        role = effective_role(request)
        if role is None:
            return False
        return role_allows(role, required_capability(view, request))


class PublicEndpoint(BasePermission):
    """Only for /api/health and /api/csrf_token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True
