"""What every dashboard page shares: the signed-in role's abilities and the page render."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.roles import Capability, Role, role_allows


def role_context(request: HttpRequest) -> dict[str, Any]:
    """What the signed-in user may do, for the templates (and, via data-*, the scripts)."""
    role = str(getattr(request.user, "effective_role", Role.READONLY))
    return {
        "role": role,
        "role_label": Role(role).label if role in Role.values else role,
        "can_execute": role_allows(role, Capability.EXECUTE),
        "can_delete": role_allows(role, Capability.WRITE),
        "is_admin": role_allows(role, Capability.ADMIN),
    }


def page(request: HttpRequest, template: str, nav: str, **extra: Any) -> HttpResponse:
    context = {**role_context(request), "nav": nav, **extra}
    return render(request, template, context)
