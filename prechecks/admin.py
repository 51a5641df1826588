"""Findings are evidence: read-only for everyone. Accepted risks are decisions: admins
(role ``admin`` or superusers) add, change and delete them; others may only look."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.roles import Role
from prechecks.models import AcceptedRisk, CheckFinding, CheckResult


def _is_admin(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and getattr(user, "effective_role", None) == Role.ADMIN)


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CheckFindingInline(_ReadOnly, admin.TabularInline[CheckFinding, CheckResult]):
    model = CheckFinding
    fields = ("kind", "tool", "rule_id", "severity", "confidence", "file", "line", "message", "fingerprint")
    readonly_fields = fields
    extra = 0


@admin.register(CheckResult)
class CheckResultAdmin(_ReadOnly, admin.ModelAdmin[CheckResult]):
    list_display = ("script_path", "kinds", "status", "created_at", "duration_ms")
    list_filter = ("status", "kinds")
    search_fields = ("script_path", "script_sha256")
    readonly_fields = (
        "script_path",
        "script_sha256",
        "kinds",
        "status",
        "errors",
        "notes",
        "tool_versions",
        "cache_key",
        "created_at",
        "finished_at",
        "duration_ms",
    )
    inlines = [CheckFindingInline]


@admin.register(CheckFinding)
class CheckFindingAdmin(_ReadOnly, admin.ModelAdmin[CheckFinding]):
    list_display = ("rule_id", "kind", "severity", "tool", "file", "line", "message")
    list_filter = ("kind", "severity", "tool")
    search_fields = ("rule_id", "file", "fingerprint", "result__script_path")
    readonly_fields = (
        "result",
        "kind",
        "tool",
        "rule_id",
        "severity",
        "confidence",
        "file",
        "line",
        "message",
        "fingerprint",
    )


@admin.register(AcceptedRisk)
class AcceptedRiskAdmin(admin.ModelAdmin[AcceptedRisk]):
    list_display = ("fingerprint", "script_path", "script_sha256", "accepted_by", "accepted_at", "reason")
    search_fields = ("fingerprint", "script_path", "script_sha256", "reason")
    fields = ("fingerprint", "script_path", "script_sha256", "reason", "accepted_by", "accepted_at")
    readonly_fields = ("accepted_by", "accepted_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: AcceptedRisk | None = None) -> bool:
        return _is_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: AcceptedRisk | None = None) -> bool:
        return _is_admin(request)

    def save_model(self, request: HttpRequest, obj: AcceptedRisk, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's signature)
        # Who accepted it is whoever saved it last, not a field to type in.
        obj.accepted_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
