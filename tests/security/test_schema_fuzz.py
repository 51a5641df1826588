"""Schemathesis over every operation of /api/schema/, as each role: no request answers 5xx.

A bounded run (``SCRIPTOPS_FUZZ_EXAMPLES``, default 6 examples per operation and mode);
``make fuzz`` runs the same with many more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.roles import Role
from core.services import api_key_create
from library.models import Preset
from scheduler.services import task_create
from tests.factories import RunFactory, UserFactory
from tests.library.factories import FolderRootFactory, ScanFactory, ScriptFactory, TagFactory
from tests.security import fuzz


# Time grows with the examples per operation (``make fuzz`` asks for many more).
def seed(roots: Path, script: Path) -> dict[str, dict[str, Any]]:
    """One row of each kind the API addresses by id, inside the test's roots: the path
    parameters the fuzz uses for a share of its cases (see ``fuzz.fuzz_role``)."""
    run = RunFactory(script_path=str(script))
    root = FolderRootFactory(path=str(roots))
    scan = ScanFactory(root=root)
    lib_script = ScriptFactory(root=root, name="job.sh", path=str(script), language="bash")
    tag = TagFactory()
    preset = Preset.objects.create(script=lib_script, name="fuzz")
    task, token = task_create(
        name="fuzz", script_path=str(script), interval_seconds=600, events=["fuzz.event"], webhook=True
    )
    admin = UserFactory(username="fuzz-owner", role=Role.ADMIN)
    other_key = api_key_create(user=admin, name="other", role=Role.ADMIN)
    return {
        "/api/runs/{id}": {"id": str(run.pk)},
        "/api/library/folder-roots/{id}": {"id": root.pk, "scan_id": scan.pk},
        "/api/library/scripts/{id}": {"id": lib_script.pk, "tag_id": tag.pk},
        "/api/library/tags/{id}": {"id": tag.pk},
        "/api/library/presets/{id}": {"id": preset.pk},
        "/api/scheduler/tasks/{id}": {"id": task.pk},
        "/api/scheduler/hooks/{token}": {"token": token},
        "/api/scheduler/events/{event_name}": {"event_name": "fuzz.event"},
        "/api/keys/{id}": {"id": other_key.key.pk},
    }


pytestmark = pytest.mark.timeout(300 + 15 * fuzz.examples())


@pytest.mark.parametrize("role", [Role.READONLY, Role.EXECUTOR, Role.USER, Role.ADMIN])
def test_no_operation_answers_5xx(role: str, db, roots, make_script) -> None:
    known = seed(roots, make_script("job.sh", "echo hi"))
    user = UserFactory(username=f"fuzz-{role}", role=role)

    def issue_key() -> str:
        return api_key_create(user=user, name="fuzz", role=role).raw

    tally = fuzz.fuzz_role(issue_key, known=known)
    fuzz.record(role, tally)
    print(f"\n{role}: sent {sum(tally.sent.values())} {dict(tally.sent)}; 5xx {dict(tally.server_errors)}")
    print(f"{role}: statuses {dict(sorted(tally.statuses.items()))}")

    assert sum(tally.sent.values()) >= 100  # every operation was reached
    # Authenticated as the role (schemathesis's negative cases also drop the key: 401s).
    assert sum(n for code, n in tally.statuses.items() if 200 <= code < 300) > 50, tally.statuses
    assert not tally.failures, "\n".join(tally.failures[:20])
