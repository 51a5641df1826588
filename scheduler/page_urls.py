"""Dashboard pages of the scheduler app."""

from django.urls import URLPattern, URLResolver, re_path

from scheduler import pages

urlpatterns: list[URLPattern | URLResolver] = [
    # A trailing slash is optional, as everywhere else (APPEND_SLASH is off).
    re_path(r"^scheduler/?$", pages.scheduler_page, name="scheduler-page"),
]
