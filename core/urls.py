"""Core API: health, CSRF token, API keys. A trailing slash is optional (APPEND_SLASH is off)."""

from django.urls import URLPattern, URLResolver, re_path

from core import views

api_keys = views.ApiKeyViewSet.as_view({"get": "list", "post": "create"})
api_key = views.ApiKeyViewSet.as_view({"get": "retrieve", "delete": "destroy"})

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    re_path(r"^csrf_token/?$", views.CsrfTokenView.as_view(), name="csrf-token"),
    re_path(r"^keys/?$", api_keys, name="apikey-list"),
    re_path(r"^keys/(?P<pk>\d+)/?$", api_key, name="apikey-detail"),
]
