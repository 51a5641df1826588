"""The host id that tells machines with the same name apart (core.hostid)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from django.test import override_settings

from core import hostid


@pytest.fixture(autouse=True)
def _fresh() -> None:
    hostid.host_id.cache_clear()
    yield
    hostid.host_id.cache_clear()


def test_the_derived_id_names_the_host_and_is_stable_within_the_machine() -> None:
    first = hostid.host_id()
    hostid.host_id.cache_clear()
    assert hostid.host_id() == first
    name, digest = first.rsplit("#", 1)
    assert name == socket.gethostname()[:80]
    assert len(digest) == 16


def test_another_process_on_this_machine_derives_the_same_id() -> None:
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'scriptops.settings');"
        "django.setup(); from core.hostid import host_id; print(host_id())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == hostid.host_id()


def test_another_pid_namespace_gives_another_id(monkeypatch: pytest.MonkeyPatch) -> None:
    here = hostid.host_id()
    hostid.host_id.cache_clear()
    # Stands in for a container on the same kernel (creating a pid namespace needs root
    # privileges the test run may not have): the namespace paths point elsewhere.
    monkeypatch.setattr(hostid, "_NAMESPACES", ("/proc/self/ns/net", "/proc/self/ns/uts"))
    assert hostid.host_id() != here


@override_settings(HOST_ID="rack-3-node-7")
def test_the_setting_wins() -> None:
    assert hostid.host_id() == "rack-3-node-7"
