"""``GET /api/system/status``: this host's load and the state of the run queue."""

from __future__ import annotations

import os
from typing import Any

import psutil
from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import Capability
from runs.models import Run, RunStatus

psutil.cpu_percent(interval=None)  # prime: the first call always answers 0.0


def system_snapshot() -> dict[str, Any]:
    """CPU, memory, disk of this host and the state of the run queue."""
    from django_q.brokers import get_broker

    vm = psutil.virtual_memory()
    disk = psutil.disk_usage(str(settings.DATA_DIR))
    try:
        queued_tasks: int | None = get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broker outage is reported, not raised
        queued_tasks = None
    running = Run.objects.filter(status=RunStatus.RUNNING)
    return {
        "cpu": {
            "count": psutil.cpu_count(),
            "percent": psutil.cpu_percent(interval=None),
            "load_average": list(os.getloadavg()),
        },
        "memory": {
            "total": vm.total,
            "available": vm.available,
            "used": vm.total - vm.available,
            "percent": vm.percent,
        },
        "disk": {
            "path": str(settings.DATA_DIR),
            "total": disk.total,
            "free": disk.free,
            "percent": disk.percent,
        },
        "workers": {
            "configured": settings.WORKERS,
            "busy": running.count(),
            "hosts": sorted(set(running.values_list("host", flat=True))),
            "broker": "redis" if settings.REDIS_URL else "orm",
        },
        "queue": {
            "queued_runs": Run.objects.filter(status=RunStatus.QUEUED).count(),
            "running_runs": running.count(),
            "paused_runs": running.filter(paused=True).count(),
            "broker_pending_tasks": queued_tasks,
        },
        "server_time": timezone.now().isoformat(),
    }


class SystemStatusView(APIView):
    """``GET /api/system/status``: CPU load, memory, disk, workers and queue."""

    required_capability = Capability.READ

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(system_snapshot())
