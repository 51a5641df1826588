"""django-q2 entry points: adapters that take ids and call services."""

from __future__ import annotations

from prechecks.services import check_job_execute


def check_job(job_id: str) -> str | None:
    return check_job_execute(job_id=job_id)
