"""API URLs of the library app (mounted under /api/), at seed 001's paths; a trailing
slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from core.routers import Router
from library import views, views_browse, views_checks, views_picker, views_presets

router = Router()
router.register("library/folder-roots", views.FolderRootViewSet, basename="library-root")
router.register("library/scripts", views.ScriptViewSet, basename="library-script")
router.register("library/tags", views.TagViewSet, basename="library-tag")

urlpatterns: list[URLPattern | URLResolver] = [
    # Before the router: its script routes would not match these, but keep them together.
    re_path(
        r"^library/scripts/(?P<pk>\d+)/check/?$",
        views_checks.ScriptCheckView.as_view(),
        name="library-script-check",
    ),
    re_path(r"^library/check/?$", views_checks.PathCheckView.as_view(), name="library-check"),
    re_path(
        r"^library/scripts/(?P<pk>\d+)/presets/?$",
        views_presets.ScriptPresetsView.as_view(),
        name="library-script-presets",
    ),
    re_path(r"^library/presets/(?P<pk>\d+)/?$", views_presets.PresetView.as_view(), name="library-preset"),
    re_path(
        r"^library/presets/(?P<pk>\d+)/run/?$",
        views_presets.PresetRunView.as_view(),
        name="library-preset-run",
    ),
    re_path(
        r"^library/checks/(?P<job_id>[0-9a-fA-F-]{32,36})/?$",
        views_checks.CheckJobView.as_view(),
        name="library-check-job",
    ),
    *router.urls,
    re_path(r"^library/duplicates/?$", views.DuplicatesView.as_view(), name="library-duplicates"),
    re_path(r"^library/stats/?$", views.StatsView.as_view(), name="library-stats"),
    re_path(r"^library/picker/?$", views_picker.PickerView.as_view(), name="library-picker"),
    re_path(r"^browse/?$", views_browse.BrowseView.as_view(), name="browse"),
]
