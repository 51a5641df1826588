"""Presets of a library script (library.services.presets):

- ``GET /api/library/scripts/{id}/presets``: yours and the shared ones;
  ``POST`` creates one (``{name, options, shared}``; sharing is for admins).
- ``GET, PATCH, DELETE /api/library/presets/{id}``: its owner or an admin changes it.
- ``POST /api/library/presets/{id}/run``: launch the script with it; the body's run
  options override the preset's (its environment is merged under the body's).

Environment values are never returned: the options show them as ``********``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.models import User
from core.permissions import caller, effective_role
from core.roles import Capability, role_allows
from library.models import Preset, Script
from library.services import script_enqueue
from library.services.presets import (
    PRESET_FIELDS,
    preset_create,
    preset_delete,
    preset_launch_options,
    preset_masked,
    preset_may_change,
    preset_update,
)
from runs.request import dry_run_answer
from runs.serializers import RunSerializer, run_record, run_request_from


def _is_admin(request: Request) -> bool:
    return role_allows(effective_role(request) or "", Capability.ADMIN)


def _visible(user: User) -> QuerySet[Preset]:
    return Preset.objects.filter(Q(owner=user) | Q(owner__isnull=True)).select_related("owner", "script")


def _body(request: Request) -> dict[str, Any]:
    data = request.data.dict() if isinstance(request.data, QueryDict) else request.data
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return dict(data)


def preset_record(preset: Preset, *, user: User, is_admin: bool) -> dict[str, Any]:
    return {
        "id": preset.pk,
        "script": preset.script_id,
        "name": preset.name,
        "shared": preset.shared,
        "owner": preset.owner.username if preset.owner else None,
        "options": preset_masked(preset.options),
        "can_change": preset_may_change(preset=preset, user=user, is_admin=is_admin),
        "created_at": preset.created_at.isoformat(),
        "updated_at": preset.updated_at.isoformat(),
    }


class PresetWrite(serializers.Serializer[Any]):
    """The body of a preset (documentation; the service checks the options)."""

    name = serializers.CharField(max_length=100)
    options = serializers.DictField(help_text=f"Run options: {', '.join(PRESET_FIELDS)}.")
    shared = serializers.BooleanField(default=False, help_text="Everyone sees it (admins only).")


class ScriptPresetsView(APIView):
    required_capability = {"get": Capability.READ, "post": Capability.EXECUTE}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        script = get_object_or_404(Script, pk=pk)
        user, admin = caller(request), _is_admin(request)
        presets = _visible(user).filter(script=script)
        return Response({"results": [preset_record(p, user=user, is_admin=admin) for p in presets]})

    @extend_schema(request=PresetWrite, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        script = get_object_or_404(Script, pk=pk)
        body = _body(request)
        shared = serializers.BooleanField().to_internal_value(body.get("shared", False))
        user, admin = caller(request), _is_admin(request)
        preset = preset_create(
            script=script,
            name=body.get("name"),
            options=body.get("options", {}),
            user=user,
            shared=shared,
            is_admin=admin,
        )
        return Response(preset_record(preset, user=user, is_admin=admin), status=status.HTTP_201_CREATED)


class PresetView(APIView):
    required_capability = {"get": Capability.READ, "patch": Capability.EXECUTE, "delete": Capability.EXECUTE}

    def _preset(self, request: Request, pk: int) -> Preset:
        return get_object_or_404(_visible(caller(request)), pk=pk)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            preset_record(self._preset(request, pk), user=caller(request), is_admin=_is_admin(request))
        )

    @extend_schema(request=PresetWrite, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request: Request, pk: int) -> Response:
        preset = self._preset(request, pk)
        body = _body(request)
        user, admin = caller(request), _is_admin(request)
        preset = preset_update(
            preset=preset, user=user, is_admin=admin, name=body.get("name"), options=body.get("options")
        )
        return Response(preset_record(preset, user=user, is_admin=admin))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        preset_delete(preset=self._preset(request, pk), user=caller(request), is_admin=_is_admin(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PresetRunView(APIView):
    required_capability = Capability.EXECUTE

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={202: RunSerializer, 200: OpenApiResponse(description="dry_run: the plan")},
    )
    def post(self, request: Request, pk: int) -> Response:
        preset = get_object_or_404(_visible(caller(request)), pk=pk)
        overrides = _body(request)
        for name in ("script_path", "path", "force"):
            if name in overrides:
                raise serializers.ValidationError(
                    {name: ["Not allowed here: the preset's script runs as it is."]}
                )
        options = preset_launch_options(preset=preset, overrides=overrides)
        run_request = run_request_from({**options, "script_path": preset.script.path})
        if run_request.dry_run:
            return Response({**dry_run_answer(run_request), "script": preset.script_id, "preset": preset.pk})
        run = script_enqueue(script=preset.script, params=run_request.run_fields(), user=caller(request))
        return Response(run_record(run), status=status.HTTP_202_ACCEPTED)
