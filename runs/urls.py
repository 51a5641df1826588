"""Run lifecycle endpoints, at seed 001's paths; a trailing slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from core.routers import Router
from runs import streams, views, views_system

router = Router()
router.register("runs", views.RunViewSet, basename="run")

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^run/?$", views.RunCreateView.as_view(), name="run-create"),
    re_path(r"^run/upload/?$", views.RunUploadView.as_view(), name="run-upload"),
    *router.urls,
    re_path(r"^runs/(?P<pk>[0-9a-fA-F-]{32,36})/stream/?$", streams.run_stream, name="run-stream"),
    re_path(r"^execute/?$", streams.execute, name="execute"),
    re_path(r"^stats/?$", views.StatsView.as_view(), name="stats"),
    re_path(r"^system/status/?$", views_system.SystemStatusView.as_view(), name="system-status"),
]
