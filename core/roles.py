"""The four roles (seed 004) and what each may do.

Roles are ordered: each grants what the ones below it grant.

- ``readonly``: read everything.
- ``executor``: also launch and control runs (stop, kill, cancel, pause, restart).
- ``user``: also change and delete content (run records, later library and scheduler data).
- ``admin``: everything, including other users' API keys and the admin site.

Views declare which *capability* each action needs (:class:`Capability`); the
permission class compares it with the caller's effective role.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    READONLY = "readonly", "Read only"
    EXECUTOR = "executor", "Executor"
    USER = "user", "User"
    ADMIN = "admin", "Admin"


class Capability(models.IntegerChoices):
    READ = 0, "read"
    EXECUTE = 1, "execute"
    WRITE = 2, "write"
    ADMIN = 3, "admin"


ROLE_LEVEL: dict[str, int] = {
    Role.READONLY: Capability.READ,
    Role.EXECUTOR: Capability.EXECUTE,
    Role.USER: Capability.WRITE,
    Role.ADMIN: Capability.ADMIN,
}


def role_allows(role: str, capability: int) -> bool:
    return ROLE_LEVEL.get(role, -1) >= capability


def lesser_role(a: str, b: str) -> str:
    """The weaker of two roles: an API key never grants more than its user's role."""
    return a if ROLE_LEVEL.get(a, -1) <= ROLE_LEVEL.get(b, -1) else b
