"""Run lifecycle endpoints, at seed 001's paths; a trailing slash is optional."""

from typing import Any

from django.urls import URLPattern, re_path

from runs import streams, views, views_system

UUID = r"(?P<pk>[0-9a-fA-F-]{32,36})"

run_list = views.RunViewSet.as_view({"get": "list", "delete": "bulk_delete"})
run_detail = views.RunViewSet.as_view({"get": "retrieve", "delete": "destroy"})


def _action(name: str, method: str) -> Any:
    return views.RunViewSet.as_view({method: name})


urlpatterns: list[URLPattern] = [
    re_path(r"^run/?$", views.RunCreateView.as_view(), name="run-create"),
    re_path(r"^run/upload/?$", views.RunUploadView.as_view(), name="run-upload"),
    re_path(r"^runs/?$", run_list, name="run-list"),
    re_path(rf"^runs/{UUID}/?$", run_detail, name="run-detail"),
    *[
        re_path(rf"^runs/{UUID}/{name}/?$", _action(name, "post"), name=f"run-{name}")
        for name in ("stop", "kill", "cancel", "pause", "resume", "restart")
    ],
    *[
        re_path(rf"^runs/{UUID}/{name}/?$", _action(name, "get"), name=f"run-{name}")
        for name in ("logs", "events", "attempts", "samples")
    ],
    re_path(rf"^runs/{UUID}/stream/?$", streams.run_stream, name="run-stream"),
    re_path(r"^execute/?$", streams.execute, name="execute"),
    re_path(r"^stats/?$", views.StatsView.as_view(), name="stats"),
    re_path(r"^system/status/?$", views_system.SystemStatusView.as_view(), name="system-status"),
]
