"""Dashboard page of the audit app: ``/audit/``, for admins only.

A shell like the other pages: ``static/js/audit.js`` fills the table from
``GET /api/audit`` with the session, and the CSV link asks the same filters of
``/api/audit/export``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

from audit.selectors import KNOWN_ACTIONS
from dashboard.pages.base import page, role_context


@login_required
@ensure_csrf_cookie
def audit_page(request: HttpRequest) -> HttpResponse:
    """Who did what: the audit log with its filters, a pager and a CSV export."""
    if not role_context(request)["is_admin"]:
        raise PermissionDenied("The audit log is for admins only.")
    return page(
        request,
        "dashboard/audit.html",
        "audit",
        actions=KNOWN_ACTIONS,
        retention_days=settings.AUDIT_RETENTION_DAYS,
    )
