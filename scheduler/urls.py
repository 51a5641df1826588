"""API URLs of the scheduler app (mounted under /api/); a trailing slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from core.routers import Router
from scheduler import views

router = Router()
router.register("scheduler/tasks", views.TaskViewSet, basename="scheduler-task")

urlpatterns: list[URLPattern | URLResolver] = [
    *router.urls,
    re_path(
        r"^scheduler/events/(?P<event_name>[A-Za-z0-9][A-Za-z0-9._:-]{0,99})/?$",
        views.EventView.as_view(),
        name="scheduler-event",
    ),
    re_path(r"^scheduler/due/?$", views.DueView.as_view(), name="scheduler-due"),
    re_path(r"^scheduler/preview/?$", views.PreviewView.as_view(), name="scheduler-preview"),
    re_path(r"^scheduler/graph/?$", views.GraphView.as_view(), name="scheduler-graph"),
    re_path(
        r"^scheduler/hooks/(?P<token>[A-Za-z0-9_-]{1,200})/?$",
        views.HookView.as_view(),
        name="scheduler-hook",
    ),
]
