"""The runs pages, sign-in and the account pages of the dashboard.

The web dashboard: server-rendered page shells that JavaScript fills from the API.

Each page is a template plus a script under ``static/js/``. The views only decide
who may see a page and what the signed-in role may do (so buttons a role may not use
are never rendered); every read and write then goes through the REST API and the
websockets with the session cookie, exactly like any other client. Keeping no
parallel, page-only write path means the API's permission checks and validation are
the only ones there are.
"""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.roles import Role
from dashboard.pages.base import page as _page
from dashboard.pages.base import role_context
from runs.models import RUN_SOURCES, LogLevel, RetryStrategy, Run, RunnerStatus, RunStatus
from runs.selectors import run_analytics
from runs.serializers import run_record


@login_required
@ensure_csrf_cookie
def runs_page(request: HttpRequest) -> HttpResponse:
    """``/``: live stats, the launch form (executor and up) and the runs table."""
    return _page(
        request,
        "dashboard/runs.html",
        "runs",
        statuses=RunStatus.values,
        run_statuses=RunnerStatus.values,
        sources=RUN_SOURCES,
        log_levels=LogLevel.values,
        retry_strategies=RetryStrategy.values,
    )


@login_required
@ensure_csrf_cookie
def run_page(request: HttpRequest, pk: str) -> HttpResponse:
    """``/runs/<id>/``: one run, its live output, events, resources and attempts."""
    try:
        run_id = uuid.UUID(pk)
    except ValueError:
        run_id = None
    run = Run.objects.select_related("created_by").filter(pk=run_id).first() if run_id else None
    if run is None:
        # Rendered here rather than raised: the project's 404 handler answers JSON (API).
        context = {**role_context(request), "nav": "runs", "run_id": pk}
        return render(request, "dashboard/run_missing.html", context, status=404)
    return _page(
        request,
        "dashboard/run_detail.html",
        "runs",
        run=run,
        script_name=PurePath(run.script_path).name or "Run",
        run_data=run_record(run),
        run_analytics=run_analytics(run),  # templates/dashboard/_run_analytics.html
    )


@login_required
@ensure_csrf_cookie
def system_page(request: HttpRequest) -> HttpResponse:
    """``/system/``: host load, memory, disk, workers and the queue, refreshed every 2 s."""
    return _page(request, "dashboard/system.html", "system")


@login_required
@ensure_csrf_cookie
def keys_page(request: HttpRequest) -> HttpResponse:
    """``/keys/``: create (shown once), list and revoke API keys."""
    context = role_context(request)
    # A key never grants more than its creator's role: offer only those.
    order = [Role.READONLY, Role.EXECUTOR, Role.USER, Role.ADMIN]
    allowed = order[: order.index(Role(context["role"])) + 1] if context["role"] in Role.values else []
    return _page(request, "dashboard/keys.html", "keys", key_roles=[(r.value, r.label) for r in allowed])


class LoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): a link or an image cannot sign anyone out."""
