"""``GET /api/browse?path=`` (seed 003): list a folder inside the allowed roots.

Everything is resolved (``realpath``) before it is checked, so a symlink cannot lead
out of the roots: asking for such a folder is a 403, and entries of a listed folder
whose real path leaves the roots are left out.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import Capability
from library.selectors import browse_folder, browse_roots
from library.serializers import BrowseSerializer
from library.services.roots import allowed_roots


class BrowseView(APIView):
    """``GET /api/browse``: a folder's files and folders, or the allowed roots."""

    required_capability = Capability.READ

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "path",
                OpenApiTypes.STR,
                description="An absolute folder path inside the allowed roots; omit it for the roots.",
            )
        ],
        responses={
            200: BrowseSerializer,
            400: OpenApiResponse(description="Not an absolute path, or not a folder."),
            403: OpenApiResponse(description="Outside the allowed roots."),
            404: OpenApiResponse(description="No such folder."),
        },
    )
    def get(self, request: Request) -> Response:
        """Folders first, then files, by name. ``parent`` is null at an allowed root."""
        roots = allowed_roots()
        raw = request.query_params.get("path", "")
        if not raw:
            return Response(browse_roots(roots))
        return Response(browse_folder(raw, roots))
