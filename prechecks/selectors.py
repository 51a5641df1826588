"""Reads for the library's badges and filters (wired by the library later)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count

from prechecks.models import CheckFinding, CheckResult, CheckStatus, FindingSeverity, LatestCheck, RunCheck

NOT_CHECKED = "not checked"


def check_latest(*, path: str) -> CheckResult | None:
    """The latest check of a script path (cached launches included), or ``None``."""
    latest = LatestCheck.objects.select_related("result").filter(script_path=path).first()
    return latest.result if latest is not None else None


def checks_latest(*, paths: Iterable[str]) -> dict[str, CheckResult]:
    """The latest check of each of many paths, in one query (a page of the script list)."""
    rows = LatestCheck.objects.select_related("result").filter(script_path__in=list(paths))
    return {row.script_path: row.result for row in rows}


def check_badges(*, results: Iterable[CheckResult]) -> dict[int, str]:
    """A short label per result: "secret found", "2 high", "1 medium", "clean", "error".
    One aggregate query for all of them."""
    by_id = {result.pk: result for result in results}
    counts: dict[int, dict[tuple[str, str], int]] = {}
    for row in (
        CheckFinding.objects.filter(result_id__in=list(by_id))
        .values("result_id", "kind", "severity")
        .annotate(n=Count("id"))
    ):
        counts.setdefault(row["result_id"], {})[(row["kind"], row["severity"])] = row["n"]
    badges: dict[int, str] = {}
    for pk, result in by_id.items():
        found = counts.get(pk, {})
        if any(kind == "secret" for kind, _ in found):
            badges[pk] = "secret found"
        elif result.status == CheckStatus.ERROR:
            badges[pk] = "error"
        elif not found:
            badges[pk] = "clean"
        else:
            for severity in reversed(FindingSeverity.values):
                total = sum(n for (_, sev), n in found.items() if sev == severity)
                if total:
                    badges[pk] = f"{total} {severity}"
                    break
    return badges


def run_check(*, run_id: str) -> dict[str, Any] | None:
    """The ``checks`` block of a run's record: the outcome its worker recorded, or ``None``
    (no check asked for, or not made yet)."""
    row = RunCheck.objects.filter(run_id=run_id).values_list("outcome", flat=True).first()
    return dict(row) if row is not None else None
