"""Scheduler settings, read from Django settings in one place (``scriptops/settings.py``
fills them from ``SCRIPTOPS_SCHEDULER_MISFIRE_GRACE``, ``SCRIPTOPS_WEBHOOK_MAX_BYTES``
and ``SCRIPTOPS_SCHEDULER_TICK_BATCH``; the defaults here serve settings without them)."""

from __future__ import annotations

from django.conf import settings


def misfire_grace() -> float:
    """Seconds a due time may be late and still count as on time (not missed).

    Larger than the coarsest tick (the django-q2 fallback schedule, once a minute and up
    to ~30 s late), so a deployment running bare ``qcluster`` still fires on time.
    """
    return float(getattr(settings, "SCHEDULER_MISFIRE_GRACE", 120.0))


def webhook_max_bytes() -> int:
    """The largest webhook body accepted (it becomes an environment variable)."""
    return int(getattr(settings, "SCHEDULER_WEBHOOK_MAX_BYTES", 64 * 1024))


def tick_batch() -> int:
    """At most this many due tasks (and finished upstream runs) are handled per tick."""
    return int(getattr(settings, "SCHEDULER_TICK_BATCH", 1000))
