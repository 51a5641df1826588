"""Core API: health, CSRF token, API keys. A trailing slash is optional (APPEND_SLASH is off)."""

from django.urls import URLPattern, URLResolver, re_path

from core import views
from core.routers import Router

router = Router()
router.register("keys", views.ApiKeyViewSet, basename="apikey")

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    re_path(r"^csrf_token/?$", views.CsrfTokenView.as_view(), name="csrf-token"),
    *router.urls,
]
