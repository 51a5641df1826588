"""Top-level URLs: the dashboard pages, the API under /api/, the admin, the OpenAPI schema and docs."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import RolePermission
from core.roles import Capability


class JsonErrorsMixin(APIView):
    """Errors as JSON even from views whose renderers are YAML or HTML templates."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        request = self.request
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    # drf-spectacular serves the schema to anyone by default (SERVE_PERMISSIONS):
    # only /api/health is public here.
    permission_classes = [RolePermission]
    required_capability = Capability.READ


class DocsView(JsonErrorsMixin, SpectacularSwaggerSplitView):
    # The split view serves Swagger UI's start-up script from ``?script`` instead of
    # inline, and our template drops the inline <style>: both allowed by the CSP.
    template_name = "scriptops/swagger_ui.html"
    # No OPTIONS: its metadata answer has no template to render (a 500).
    http_method_names = ["get", "head"]
    permission_classes = [RolePermission]
    required_capability = Capability.READ


api_patterns: list[URLPattern | URLResolver] = [
    path("", include("core.urls")),
    re_path(r"^schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^docs/?$", DocsView.as_view(url_name="schema"), name="docs"),
    path("", include("runs.urls")),
    path("", include("library.urls")),
    path("", include("scheduler.urls")),
    path("", include("analytics.urls")),
    path("", include("audit.urls")),
]

admin.site.site_header = "ScriptOps administration"
admin.site.site_title = "ScriptOps admin"
admin.site.index_title = "Operators' console"

urlpatterns = [
    # The dashboard's pages (dashboard/): shells filled from the API by static/js/.
    path("", include("dashboard.urls")),
    # Accounts moved from the project package to core: old admin links keep working.
    re_path(
        r"^admin/scriptops/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/core/%(rest)s", permanent=True, query_string=True),
    ),
    # Browsers ask for /favicon.ico wherever a page names none (a JSON answer, a file).
    path("favicon.ico", RedirectView.as_view(url="/static/img/favicon.svg", permanent=True)),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),
    path("api/", include(api_patterns)),
]

# JSON for the API and machines, an HTML page for a browser (core.exception_handler).
handler400 = "core.exception_handler.error_400"
handler403 = "core.exception_handler.error_403"
handler404 = "core.exception_handler.error_404"
handler500 = "core.exception_handler.error_500"
