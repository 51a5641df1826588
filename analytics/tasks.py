"""django-q2 entry points of analytics: adapters that take ids and call services."""

from __future__ import annotations

from analytics.services.delivery import alert_deliver as _deliver


def alert_deliver(delivery_id: int) -> str | None:
    """Send one queued alert (``analytics.services.alerts.alerts_queue``)."""
    return _deliver(delivery_id=delivery_id)
