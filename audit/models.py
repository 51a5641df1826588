"""The audit log: who did what, when, from where. Append-only.

A row is written once by :func:`audit.services.record` and never changed: ``save()``
refuses to update an existing row and ``delete()`` refuses outright. Only the retention
cleanup removes rows (:func:`audit.services.audit_prune`, through the queryset's
``_raw_delete``, which neither calls ``Model.delete`` nor sends signals).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditRefused(Exception):
    """An attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        # The one update allowed: a deleted user's ``on_delete=SET_NULL`` (Django's
        # collector does it with ``update``); ``actor_name`` keeps who it was.
        if kwargs.keys() == {"actor"} and kwargs["actor"] is None:
            return super().update(**kwargs)
        raise AuditRefused("Audit events are append-only: they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditRefused("Audit events are deleted only by the retention cleanup (audit_prune).")


class AuditEvent(models.Model):
    """One thing someone (or the system: ``actor`` null, ``actor_name`` empty) did.

    ``action`` is a dotted name, ``<object type>.<verb>`` (``run.launch``,
    ``auth.login_failed``, ``api_key.revoke``); ``object_type``/``object_id`` name what it
    was done to; ``actor_name`` keeps the username when the user is later deleted.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "at"], name="audit_actor_at_idx"),
            models.Index(fields=["action", "at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AuditRefused("Audit events are append-only: they cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditRefused("Audit events are deleted only by the retention cleanup (audit_prune).")
