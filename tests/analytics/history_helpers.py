"""Writing history straight into the tables, for the API tests (no run needed)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from analytics.models import Point, Series
from tests.factories import SeriesFactory

SCRIPT = "/srv/scripts/job.py"
OTHER = "/srv/scripts/other.py"


def record(
    values: Sequence[float],
    *,
    script_path: str = SCRIPT,
    metric: str = "duration_seconds",
    start: datetime | None = None,
    step: timedelta = timedelta(hours=1),
    statuses: Sequence[str] | None = None,
    source: str = "api",
    run_ids: Sequence[uuid.UUID] | None = None,
) -> list[Point]:
    """One point per value, ``step`` apart, the last one ``step`` before now by default;
    returned oldest first."""
    series: Series = SeriesFactory(script_path=script_path, metric=metric)
    if start is None:
        start = timezone.now() - step * len(values)
    points = [
        Point(
            series=series,
            run_id=run_ids[i] if run_ids is not None else uuid.uuid4(),
            recorded_at=start + step * i,
            value=float(value),
            status=statuses[i] if statuses is not None else "completed",
            source=source,
        )
        for i, value in enumerate(values)
    ]
    return Point.objects.bulk_create(points)
