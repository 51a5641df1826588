"""API URLs of the library app (mounted under /api/), at seed 001's paths; a trailing
slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from core.routers import Router
from library import views, views_browse

router = Router()
router.register("library/folder-roots", views.FolderRootViewSet, basename="library-root")
router.register("library/scripts", views.ScriptViewSet, basename="library-script")
router.register("library/tags", views.TagViewSet, basename="library-tag")

urlpatterns: list[URLPattern | URLResolver] = [
    *router.urls,
    re_path(r"^library/duplicates/?$", views.DuplicatesView.as_view(), name="library-duplicates"),
    re_path(r"^library/stats/?$", views.StatsView.as_view(), name="library-stats"),
    re_path(r"^browse/?$", views_browse.BrowseView.as_view(), name="browse"),
]
