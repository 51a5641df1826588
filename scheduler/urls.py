"""API URLs of the scheduler app (mounted under /api/); a trailing slash is optional."""

from typing import Any

from django.urls import URLPattern, URLResolver, re_path

from scheduler import views

ID = r"(?P<pk>\d+)"


def _task(actions: dict[str, Any]) -> Any:
    return views.TaskViewSet.as_view(actions)


urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^scheduler/tasks/?$", _task({"get": "list", "post": "create"}), name="scheduler-task-list"),
    re_path(
        rf"^scheduler/tasks/{ID}/?$",
        _task({"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}),
        name="scheduler-task-detail",
    ),
    re_path(rf"^scheduler/tasks/{ID}/run/?$", _task({"post": "run"}), name="scheduler-task-run"),
    re_path(rf"^scheduler/tasks/{ID}/runs/?$", _task({"get": "runs"}), name="scheduler-task-runs"),
    re_path(rf"^scheduler/tasks/{ID}/enable/?$", _task({"post": "enable"}), name="scheduler-task-enable"),
    re_path(rf"^scheduler/tasks/{ID}/pause/?$", _task({"post": "pause"}), name="scheduler-task-pause"),
    re_path(
        rf"^scheduler/tasks/{ID}/webhook/?$",
        _task({"post": "webhook_rotate", "delete": "webhook_remove"}),
        name="scheduler-task-webhook",
    ),
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
