"""Core API: health, CSRF token, API keys."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.models import ApiKey
from core.permissions import PublicEndpoint, caller, effective_role
from core.roles import Capability, Role, lesser_role
from core.services import api_key_create, api_key_revoke

STARTED = time.time()
VERSION = "0.1.0"


class HealthView(APIView):
    """``GET /api/health``: liveness and database reachability. Public."""

    permission_classes = [PublicEndpoint]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except Exception:  # noqa: BLE001 - any database failure means "unhealthy"
            database = "unavailable"
        healthy = database == "ok"
        return Response(
            {
                "status": "ok" if healthy else "degraded",
                "version": VERSION,
                "server_time": timezone.now().isoformat(),
                "uptime_seconds": round(time.time() - STARTED, 1),
                "database": database,
            },
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class CsrfTokenView(APIView):
    """``GET /api/csrf_token``: a token for session clients' unsafe requests (``X-CSRFToken``
    or seed 003's ``X-CSRF-Token``).

    Public (seed 003): it only hands out the token of the caller's own CSRF cookie, which
    any page of the site sets anyway, and the token alone grants nothing. No
    authentication (a stale key must not stop a client from starting over) and no
    throttle, like ``/api/health``.
    """

    permission_classes = [PublicEndpoint]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({"csrf_token": get_token(request), "success": True})


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    user: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    is_active = serializers.BooleanField(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    expires_days = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=3650)

    def to_internal_value(self, data: Any) -> Any:
        # A misspelt or read-only field (``expires``, ``user``) is an error, not ignored.
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            writable.add("csrfmiddlewaretoken")  # an HTML form's CSRF field
            unknown = sorted(str(name) for name in data if name not in writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown or read-only field {name!r}."] for name in unknown}
                )
        return super().to_internal_value(data)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "role",
            "prefix",
            "user",
            "created_at",
            "expires_at",
            "expires_days",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = ["id", "prefix", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ApiKey],
):
    """Your API keys (admins: everyone's). The key itself is returned once, on creation.

    Any signed-in role may manage its own keys: a key never grants more than its user's role.
    """

    serializer_class = ApiKeySerializer
    lookup_value_regex = r"\d+"
    required_capability = {
        "list": Capability.READ,
        "retrieve": Capability.READ,
        "create": Capability.READ,
        "destroy": Capability.READ,
    }
    filterset_fields = ["role"]
    ordering_fields = ["created_at", "name", "last_used_at"]
    search_fields = ["name", "prefix"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return ApiKey.objects.none()
        qs = ApiKey.objects.select_related("user")
        if effective_role(self.request) == Role.ADMIN:
            return qs
        return qs.filter(user_id=self.request.user.pk or 0)

    @extend_schema(responses={201: OpenApiTypes.OBJECT})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # Capped at the *caller's* role, not just the user's: a readonly key of an admin
        # must not be a way to mint an admin key.
        caller_role = effective_role(request) or Role.READONLY
        issued = api_key_create(
            user=caller(request),
            name=data["name"],
            role=lesser_role(data.get("role") or caller_role, caller_role),
            expires_days=data.get("expires_days"),
        )
        body = dict(ApiKeySerializer(issued.key).data)
        body["key"] = issued.raw
        body["message"] = "Store this key now: it is not shown again."
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke the key (it stays listed, inactive)."""
        key = api_key_revoke(key=self.get_object())
        return Response(ApiKeySerializer(key).data, status=status.HTTP_200_OK)
