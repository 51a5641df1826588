"""Dashboard page of the library app: ``/library/``.

Like the pages in :mod:`dashboard.pages.runs`, the view only renders a shell and says what
the signed-in role may do; ``static/js/library.js`` fills it from the library API, so
the API's permission checks and validation stay the only ones there are.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.roles import Capability, role_allows
from dashboard.pages.base import role_context
from library.models import DEFAULT_EXCLUDE_PATTERNS, DEFAULT_INCLUDE_PATTERNS, ScriptStatus
from library.services.roots import allowed_roots


@login_required
@ensure_csrf_cookie
def library_page(request: HttpRequest) -> HttpResponse:
    """Folder roots and scans, the script browser and detail, tags and duplicates."""
    context = role_context(request)
    context.update(
        nav="library",
        # The same rule as the API's: curating scripts and tags is a write.
        can_edit=role_allows(context["role"], Capability.WRITE),
        statuses=ScriptStatus.values,
        # For the empty state and the folder picker: roots may only be registered inside these.
        allowed_roots=[str(root) for root in allowed_roots()],
        # A new root's patterns unless changed (one per line, as the form edits them).
        default_include="\n".join(DEFAULT_INCLUDE_PATTERNS),
        default_exclude="\n".join(DEFAULT_EXCLUDE_PATTERNS),
    )
    return render(request, "library/library.html", context)
