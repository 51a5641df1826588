"""Account services: API keys and the bootstrap admin."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.models import ApiKey, User, hash_api_key
from core.roles import Role, lesser_role


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str


def api_key_create(
    *, user: User, name: str, role: str | None = None, expires_days: int | None = None
) -> IssuedKey:
    """Create a key for ``user``. The role is capped at the user's own role."""
    wanted = role or user.effective_role
    raw = ApiKey.generate()
    key = ApiKey.objects.create(
        user=user,
        name=name,
        role=lesser_role(wanted, user.effective_role),
        prefix=raw[:12],
        key_hash=hash_api_key(raw),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
    )
    return IssuedKey(key=key, raw=raw)


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def _key_with_user(key_hash: str) -> ApiKey | None:
    """The key with this hash, its user loaded, or None (whether usable or not).

    Runs on every API request, so written as two indexed ``raw()`` lookups: building the
    equivalent ``select_related`` queryset cost ~1 ms of Python per request, these ~0.3 ms.
    """
    quote = connection.ops.quote_name
    keys = ApiKey.objects.raw(f"SELECT * FROM {quote(ApiKey._meta.db_table)} WHERE key_hash = %s", [key_hash])
    key = next(iter(keys), None)
    if key is None:
        return None
    users = User.objects.raw(f"SELECT * FROM {quote(User._meta.db_table)} WHERE id = %s", [key.user_id])
    user = next(iter(users), None)
    if user is None:
        return None
    key.user = user
    return key


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """Return the usable key matching ``raw`` and record its use (at most once a minute)."""
    if not raw.startswith("sops_"):
        return None
    key = _key_with_user(hash_api_key(raw))
    if key is None or not key.is_active or not key.user.is_active:
        return None
    now = timezone.now()
    # Throttle the write: a busy key would otherwise write on every request.
    if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=60):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


@transaction.atomic
def user_ensure(*, username: str, role: str) -> tuple[User, bool]:
    """Return the user, creating it with ``role`` and no usable password if missing."""
    user, created = User.objects.get_or_create(username=username, defaults={"role": role})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user, created


def admin_ensure() -> str | None:
    """Make sure a superuser ``admin`` exists.

    Its password comes from ``SCRIPTOPS_ADMIN_PASSWORD``; otherwise one is generated,
    saved to ``<data dir>/admin-password`` (mode 0600) and returned so the caller can
    print it once. Returns None when nothing new needs telling.
    """
    password = settings.ADMIN_PASSWORD
    user = User.objects.filter(username="admin").first()
    if user is not None:
        if password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return None
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    User.objects.create_superuser(username="admin", email="", password=password, role=Role.ADMIN)
    if not generated:
        return None
    path = Path(settings.DATA_DIR) / "admin-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password
