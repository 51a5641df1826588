"""Accounts: users with a role, and API keys.

A superuser always acts as ``admin``. An API key carries a role of its own but never
grants more than its user's current role (see :func:`core.roles.lesser_role`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from core.roles import Role, lesser_role

API_KEY_PREFIX = "sops_"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READONLY)

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        # The tables keep the names they had when accounts lived in the project package,
        # so an existing install upgrades without moving data (see core/migrations/0001).
        db_table = "scriptops_user"

    @property
    def effective_role(self) -> str:
        return Role.ADMIN if self.is_superuser else self.role


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """An API key. Only the SHA-256 of the key is stored; the key is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READONLY)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        db_table = "scriptops_apikey"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def effective_role(self) -> str:
        return lesser_role(self.role, self.user.effective_role)

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    @staticmethod
    def generate() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)

    def expired_at(self, when: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= when
