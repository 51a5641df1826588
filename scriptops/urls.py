"""Top-level URLs: the dashboard pages, the API under /api/, the admin, the OpenAPI schema and docs."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from scriptops import pages, views
from scriptops.permissions import RolePermission
from scriptops.roles import Capability

api_keys = views.ApiKeyViewSet.as_view({"get": "list", "post": "create"})
api_key = views.ApiKeyViewSet.as_view({"get": "retrieve", "delete": "destroy"})


class JsonErrorsMixin:
    """Errors as JSON even from views whose renderers are YAML or HTML templates."""

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        request = self.request  # type: ignore[attr-defined]
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    # drf-spectacular serves the schema to anyone by default (SERVE_PERMISSIONS):
    # only /api/health is public here.
    permission_classes = [RolePermission]
    required_capability = Capability.READ


class DocsView(JsonErrorsMixin, SpectacularSwaggerView):
    # No OPTIONS: its metadata answer has no template to render (a 500).
    http_method_names = ["get", "head"]
    permission_classes = [RolePermission]
    required_capability = Capability.READ


api_patterns: list[URLPattern | URLResolver] = [
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    re_path(r"^system/status/?$", views.SystemStatusView.as_view(), name="system-status"),
    re_path(r"^csrf_token/?$", views.CsrfTokenView.as_view(), name="csrf-token"),
    re_path(r"^keys/?$", api_keys, name="apikey-list"),
    re_path(r"^keys/(?P<pk>\d+)/?$", api_key, name="apikey-detail"),
    re_path(r"^schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^docs/?$", DocsView.as_view(url_name="schema"), name="docs"),
    path("", include("runs.urls")),
    path("", include("library.urls")),
    path("", include("scheduler.urls")),
]

urlpatterns = [
    # The dashboard (scriptops/pages.py): page shells filled from the API by static/js/.
    # A trailing slash is optional, as on the API (APPEND_SLASH is off).
    path("", pages.runs_page, name="runs-page"),
    re_path(r"^runs/(?P<pk>[0-9a-fA-F-]{32,36})/?$", pages.run_page, name="run-page"),
    re_path(r"^system/?$", pages.system_page, name="system-page"),
    re_path(r"^keys/?$", pages.keys_page, name="keys-page"),
    re_path(r"^login/?$", pages.LoginView.as_view(), name="login"),
    re_path(r"^logout/?$", pages.LogoutView.as_view(), name="logout"),
    path("", include("library.page_urls")),
    path("", include("scheduler.page_urls")),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),
    path("api/", include(api_patterns)),
]

handler404 = "scriptops.errors.json_404"
handler500 = "scriptops.errors.json_500"
