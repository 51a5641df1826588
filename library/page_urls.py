"""Dashboard pages of the library app."""

from django.urls import URLPattern, URLResolver, re_path

from library import pages

urlpatterns: list[URLPattern | URLResolver] = [
    # A trailing slash is optional, as on the other pages (APPEND_SLASH is off).
    re_path(r"^library/?$", pages.library_page, name="library-page"),
]
