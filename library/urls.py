"""API URLs of the library app (mounted under /api/), at seed 001's paths; a trailing
slash is optional."""

from typing import Any

from django.urls import URLPattern, URLResolver, re_path

from library import views, views_browse

ID = r"(?P<pk>\d+)"
SCAN = r"(?P<scan_id>[0-9a-fA-F-]{32,36})"
TAG = r"(?P<tag_id>\d+)"


def _root(actions: dict[str, Any]) -> Any:
    return views.FolderRootViewSet.as_view(actions)


def _script(actions: dict[str, Any]) -> Any:
    return views.ScriptViewSet.as_view(actions)


def _tag(actions: dict[str, Any]) -> Any:
    return views.TagViewSet.as_view(actions)


urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^library/folder-roots/?$", _root({"get": "list", "post": "create"}), name="library-root-list"),
    re_path(
        rf"^library/folder-roots/{ID}/?$",
        _root({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="library-root-detail",
    ),
    re_path(rf"^library/folder-roots/{ID}/scan/?$", _root({"post": "scan"}), name="library-root-scan"),
    re_path(
        rf"^library/folder-roots/{ID}/scan/{SCAN}/?$",
        _root({"get": "scan_detail"}),
        name="library-root-scan-detail",
    ),
    re_path(rf"^library/folder-roots/{ID}/scans/?$", _root({"get": "scans"}), name="library-root-scans"),
    re_path(r"^library/scripts/?$", _script({"get": "list"}), name="library-script-list"),
    re_path(
        rf"^library/scripts/{ID}/?$",
        _script({"get": "retrieve", "patch": "partial_update"}),
        name="library-script-detail",
    ),
    re_path(rf"^library/scripts/{ID}/status/?$", _script({"put": "status"}), name="library-script-status"),
    re_path(rf"^library/scripts/{ID}/notes/?$", _script({"get": "notes"}), name="library-script-notes"),
    re_path(rf"^library/scripts/{ID}/history/?$", _script({"get": "history"}), name="library-script-history"),
    re_path(rf"^library/scripts/{ID}/content/?$", _script({"get": "content"}), name="library-script-content"),
    re_path(
        rf"^library/scripts/{ID}/tags/{TAG}/?$",
        _script({"post": "tag_attach", "delete": "tag_detach"}),
        name="library-script-tag",
    ),
    re_path(rf"^library/scripts/{ID}/run/?$", _script({"post": "run"}), name="library-script-run"),
    re_path(rf"^library/scripts/{ID}/runs/?$", _script({"get": "runs"}), name="library-script-runs"),
    re_path(r"^library/tags/?$", _tag({"get": "list", "post": "create"}), name="library-tag-list"),
    re_path(
        rf"^library/tags/{ID}/?$",
        _tag({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="library-tag-detail",
    ),
    re_path(r"^library/duplicates/?$", views.DuplicatesView.as_view(), name="library-duplicates"),
    re_path(r"^library/stats/?$", views.StatsView.as_view(), name="library-stats"),
    re_path(r"^browse/?$", views_browse.BrowseView.as_view(), name="browse"),
]
