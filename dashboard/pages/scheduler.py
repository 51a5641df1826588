"""Dashboard page of the scheduler app: ``/scheduler/``, a shell that ``static/js/scheduler.js`` fills.

Like every dashboard page (see ``dashboard/pages/base.py``) the view only decides who may see
the page and which controls the signed-in role gets; every read and write goes through
``/api/scheduler/`` with the session cookie, so the API's permission checks and
validation are the only ones there are.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from dashboard.pages.base import role_context
from runs.models import LogLevel, RetryStrategy
from scheduler.models import MisfirePolicy, OverlapPolicy

# The words the form shows for each policy (the values are the models' choices).
OVERLAP_WORDS: dict[str, str] = {
    OverlapPolicy.SKIP: "Skip the new trigger",
    OverlapPolicy.QUEUE: "Queue it after the active run",
    OverlapPolicy.CANCEL_PREVIOUS: "Cancel the active run, then start",
    OverlapPolicy.ALLOW: "Run side by side",
}
MISFIRE_WORDS: dict[str, str] = {
    MisfirePolicy.RUN_ONCE: "Run once to catch up",
    MisfirePolicy.SKIP: "Skip them",
}


@login_required
@ensure_csrf_cookie
def scheduler_page(request: HttpRequest) -> HttpResponse:
    """``/scheduler/``: tasks and their schedules, the dependency graph, events, the task form."""
    context = role_context(request)
    context.update(
        nav="scheduler",
        # Run now and firing events launch runs (executor and up); creating, editing,
        # pausing and deleting tasks change content (user and up), as on the API.
        can_run=context["can_execute"],
        can_manage=context["can_delete"],
        overlap_policies=[(value, OVERLAP_WORDS.get(value, value)) for value in OverlapPolicy.values],
        misfire_policies=[(value, MISFIRE_WORDS.get(value, value)) for value in MisfirePolicy.values],
        log_levels=LogLevel.values,
        retry_strategies=RetryStrategy.values,
    )
    return render(request, "scheduler/scheduler.html", context)
