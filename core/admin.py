from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.models import ApiKey, User
from core.services import api_key_create, api_key_revoke, api_key_update, user_delete, user_save


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    list_display = ("username", "email", "role", "is_superuser", "is_active", "last_login")
    list_filter = ("role", "is_superuser", "is_active")
    fieldsets = (*(BaseUserAdmin.fieldsets or ()), ("ScriptOps", {"fields": ("role",)}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("ScriptOps", {"fields": ("role",)}))

    # Through the account services, so each change is in the audit log.
    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's signature)
        user_save(user=obj, created=not change, changed=list(form.changed_data) if change else [])

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        user_delete(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_delete(user=user)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    """Keys are created here with a generated secret, shown once in a message."""

    list_display = (
        "name",
        "user",
        "role",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("role", "revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("user", "name", "role", "expires_at", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_keys"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:  # noqa: FBT001 (Django's signature)
        if change:
            api_key_update(key=obj, changed=list(form.changed_data))
            return
        issued = api_key_create(user=obj.user, name=obj.name, role=obj.role)
        if obj.expires_at:
            issued.key.expires_at = obj.expires_at
            issued.key.save(update_fields=["expires_at"])
        obj.pk = issued.key.pk
        obj.key_hash = issued.key.key_hash
        obj.prefix = issued.key.prefix
        self.message_user(
            request,
            f"API key created: {issued.raw} — copy it now, it is not shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
