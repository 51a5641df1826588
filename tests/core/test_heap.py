"""What a process loads at startup is exempt from the cyclic collector's scans
(``core.heap.settle``): once the apps are ready, and again once daphne's application
is loaded. Each case runs in a fresh interpreter: the test process's own heap is
pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _heap_after(steps: str) -> dict[str, int]:
    code = (
        "import gc, json, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'scriptops.settings')\n"
        "out = {'frozen_before': gc.get_freeze_count()}\n"
        "import django\n"
        f"{steps}\n"
        "out['frozen'] = gc.get_freeze_count()\n"
        "out['tracked'] = len(gc.get_objects())\n"
        # Garbage made afterwards is still collected.
        "class Node: pass\n"
        "for _ in range(100):\n"
        "    a, b = Node(), Node(); a.other, b.other = b, a\n"
        "del a, b\n"
        "out['collected'] = gc.collect()\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=ROOT
    )
    found: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_apps_being_ready_freezes_what_was_loaded() -> None:
    heap = _heap_after("django.setup()")
    assert heap["frozen_before"] == 0
    # Django, DRF and every app's models: tens of thousands of objects no scan walks again.
    assert heap["frozen"] > 20_000
    assert heap["tracked"] < heap["frozen"] / 4
    assert heap["collected"] >= 200  # the 100 cycles made afterwards (their instances and dicts)


def test_daphnes_application_freezes_what_it_loaded_after_the_apps() -> None:
    ready = _heap_after("django.setup()")
    served = _heap_after("import scriptops.asgi")
    # The handler, Channels, autobahn and the URL routes came after the apps were ready.
    assert served["frozen"] > ready["frozen"]
    assert served["tracked"] < served["frozen"] / 4
    assert served["collected"] >= 200
