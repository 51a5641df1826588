"""API URLs of the analytics app (mounted under /api/); a trailing slash is optional."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
