"""``GET /api/library/picker?q=``: the launch form's script picker (library.picker)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import Capability
from library.picker import picker_scripts


class PickerQuery(serializers.Serializer[Any]):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=20, default=8)


class PickerView(APIView):
    """Scripts matching ``q`` in their name, path, description or tags (all when blank),
    the ones launched lately and most often first, each with its language, a short
    description and its last run's status. Archived and missing scripts are left out."""

    required_capability = Capability.READ

    @extend_schema(
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="What the user typed."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 20 (default 8)."),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        query = PickerQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = picker_scripts(query=query.validated_data["q"], limit=query.validated_data["limit"])
        return Response({"results": found})
