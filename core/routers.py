"""The one router every app's API uses.

DRF's ``SimpleRouter`` with two house rules: the trailing slash is optional (as on every
ScriptOps URL; ``APPEND_SLASH`` is off), a route only for the methods a viewset allows,
and ``DELETE`` on a list route calls the
viewset's ``bulk_destroy`` when it has one (``DELETE /api/runs`` with a list of ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.routers import Route, SimpleRouter


def _with_bulk_destroy(route: Route) -> Route:
    if route.name != "{basename}-list":
        return route
    return route._replace(mapping={**route.mapping, "delete": "bulk_destroy"})


class Router(SimpleRouter):
    routes = [
        _with_bulk_destroy(route) if isinstance(route, Route) else route for route in SimpleRouter.routes
    ]

    def get_method_map(self, viewset: Any, method_map: Mapping[str, str]) -> dict[str, str]:
        # Only the methods the viewset allows (``http_method_names``): a viewset with
        # UpdateModelMixin that answers PATCH only gets no PUT route.
        allowed = set(viewset.http_method_names)
        return {m: a for m, a in super().get_method_map(viewset, method_map).items() if m in allowed}

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"  # SimpleRouter's argument only chooses between "/" and ""
