"""API URLs of the audit app (mounted under /api/); a trailing slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from audit import views

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^audit/?$", views.AuditView.as_view(), name="audit"),
    re_path(r"^audit/export/?$", views.AuditExportView.as_view(), name="audit-export"),
]
