"""Which machine this process runs on, as the run records name it.

Runs record two things: ``host``, the host name people read, and ``host_id``, which
tells two hosts apart even when their names are the same (containers started from one
image, cloned VMs). Only the id decides that a run "lives here": a dead worker pid or
a process tree is looked up on this machine only when the run's id is this machine's,
so a runner never fails or kills another host's run because the names match.

The id is ``SCRIPTOPS_HOST_ID`` when set, else the host name plus a digest of the
kernel's boot id and this process's pid and mount namespaces: two containers on one
kernel differ by namespace, two machines (or two boots) by boot id.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket

from django.conf import settings

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_NAMESPACES = ("/proc/self/ns/pid", "/proc/self/ns/mnt")


def host_name() -> str:
    return socket.gethostname()


@functools.cache
def host_id() -> str:
    configured: str = getattr(settings, "HOST_ID", "") or ""
    if configured:
        return configured[:100]
    parts = [host_name()]
    try:
        with open(_BOOT_ID, encoding="ascii") as fh:
            parts.append(fh.read().strip())
    except OSError:
        parts.append("no-boot-id")
    for ns in _NAMESPACES:
        try:
            parts.append(str(os.stat(ns).st_ino))
        except OSError:
            parts.append("-")
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{host_name()[:80]}#{digest}"
