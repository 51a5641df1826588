"""The launch form's script picker: library scripts matching what is typed, the ones
launched lately and most often first (plain reads; no DRF, like the selectors)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.utils import timezone

from library.models import Script, ScriptStatus
from runs.models import Run

PICKER_LIMIT = 8
DESCRIPTION_CHARS = 140
# "Recent" is what was launched in this window; older runs still count as "most run".
RECENT_DAYS = 30


def picker_scripts(*, query: str, limit: int = PICKER_LIMIT) -> list[dict[str, Any]]:
    """Up to ``limit`` scripts whose name, relative path, description or a tag contains
    ``query`` (all scripts when it is blank), archived and missing ones left out: those
    launched in the last 30 days first (newest launch first), then the most launched,
    then by path. Each with its language, a short description and its last run's status.
    Three queries at most whatever the library's size (the tag match is a subquery)."""
    scripts = Script.objects.exclude(status=ScriptStatus.ARCHIVED).filter(missing_since__isnull=True)
    text = query.strip()
    if text:
        tagged = Script.tags.through.objects.filter(tag__name__icontains=text).values("script_id")
        scripts = scripts.filter(
            Q(name__icontains=text)
            | Q(relpath__icontains=text)
            | Q(description__icontains=text)
            | Q(pk__in=tagged)
        )
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    latest = Run.objects.filter(script=OuterRef("pk")).order_by("-created_at")
    rows = (
        scripts.annotate(
            recent=Max("runs__created_at", filter=Q(runs__created_at__gte=since)),
            launched=Count("runs"),
            last_status=Subquery(latest.values("status")[:1]),
            last_run_status=Subquery(latest.values("run_status")[:1]),
        )
        .order_by(F("recent").desc(nulls_last=True), "-launched", "relpath")
        .select_related("root")[:limit]
    )
    return [
        {
            "id": script.pk,
            "name": script.name,
            "relpath": script.relpath,
            "path": script.path,
            "root_name": script.root.name,
            "language": script.language,
            "description": _short(script.description),
            "status": script.status,
            "parameters": len(script.parameters or []),
            "run_count": script.launched,
            "last_run_at": script.recent.isoformat() if script.recent else None,
            "last_status": script.last_status,
            "last_run_status": script.last_run_status,
        }
        for script in rows
    ]


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DESCRIPTION_CHARS else line[: DESCRIPTION_CHARS - 1].rstrip() + "…"
