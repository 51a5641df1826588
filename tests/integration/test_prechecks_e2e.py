"""Pre-run checks on a real stack (issue 13): a script holding an AWS-style key is blocked by
the real worker before it starts (its marker file is never written), a clean script with the
same flags runs, its unchanged second launch reuses the cached check, and the secret's text
appears in no API answer, event, output, log or database row."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.helpers import event_kinds, logs, start_run, wait_for_status
from tests.stack import Stack

pytestmark = pytest.mark.integration

# Built from parts so that this test file itself holds no scannable secret.
AWS_KEY = "AKIA" + "Q3EGRIOSFODNN7XY"
FLAGS = {"enable_secret_scanning": True, "enable_code_analysis": True}


# The marker's path comes as an argument: a literal /tmp path would be a Bandit finding.
LEAKY = (
    f'import sys\nfrom pathlib import Path\nKEY = "{AWS_KEY}"\n'
    'Path(sys.argv[1]).write_text("ran")\nprint("leaky ran")\n'
)
CLEAN = 'import sys\nfrom pathlib import Path\n\nPath(sys.argv[1]).write_text("ran")\nprint("clean ran")\n'


def _everything_said(client: httpx.Client, run_id: str) -> str:
    """Every API answer about a run: record, events, output (raw and JSON), attempts."""
    answers = [
        client.get(f"/api/runs/{run_id}"),
        client.get(f"/api/runs/{run_id}/events"),
        client.get(f"/api/runs/{run_id}/logs"),
        client.get(f"/api/runs/{run_id}/logs", params={"format": "json"}),
        client.get("/api/runs", params={"page_size": 100}),
    ]
    for answer in answers:
        assert answer.status_code == 200, (answer.request.url, answer.text[:300])
    return "\n".join(answer.text for answer in answers)


def test_a_script_holding_a_secret_is_blocked_and_never_runs(stack: Stack, client: httpx.Client) -> None:
    marker = stack.base_dir / "leaky.ran"
    script = stack.script("pre/leaky.py", LEAKY)

    queued = start_run(client, str(script), args=[str(marker)], **FLAGS)
    run = wait_for_status(stack, client, queued["id"])

    assert (run["status"], run["run_status"]) == ("failed", "blocked"), run
    assert not marker.exists(), "a blocked script must never start"
    checks = run["checks"]
    assert checks["blocked"] is True and checks["status"] == "findings", checks
    secrets = [f for f in checks["findings"] if f["kind"] == "secret"]
    assert secrets and secrets[0]["line"] == 3 and secrets[0]["blocking"] is True, checks
    kinds = event_kinds(client, run["id"])
    assert "check_blocked" in kinds and "start" not in kinds, kinds
    assert "leaky ran" not in logs(client, run["id"]).text

    said = _everything_said(client, run["id"])
    assert AWS_KEY not in said
    assert "AKIA" in script.read_text()  # the check read the real file


def test_a_clean_script_runs_and_its_second_launch_is_a_cache_hit(stack: Stack, client: httpx.Client) -> None:
    marker = stack.base_dir / "clean.ran"
    script = stack.script("pre/clean.py", CLEAN)

    first = wait_for_status(stack, client, start_run(client, str(script), args=[str(marker)], **FLAGS)["id"])
    assert (first["status"], first["exit_code"]) == ("completed", 0), first
    assert marker.read_text() == "ran"
    assert first["checks"]["blocked"] is False and first["checks"]["status"] == "clean", first["checks"]
    assert first["checks"]["cached"] is False
    assert "check_passed" in event_kinds(client, first["id"])
    assert "clean ran" in logs(client, first["id"]).text

    marker.unlink()
    second = wait_for_status(stack, client, start_run(client, str(script), args=[str(marker)], **FLAGS)["id"])
    assert second["status"] == "completed" and marker.read_text() == "ran", second
    assert second["checks"]["cached"] is True, second["checks"]
    assert second["checks"]["result_id"] == first["checks"]["result_id"]


def test_the_secret_is_nowhere_in_the_database_or_the_logs(stack: Stack, client: httpx.Client) -> None:
    # After the tests above (same stack): blocked runs, checks, findings and events exist.
    marker = stack.base_dir / "again.ran"
    script = stack.script("pre/again.py", LEAKY)
    run = wait_for_status(stack, client, start_run(client, str(script), args=[str(marker)], **FLAGS)["id"])
    assert run["run_status"] == "blocked" and not marker.exists()

    dump = stack.manage("dumpdata", "--natural-foreign", "--indent", "0").stdout
    rows = json.loads(dump)
    models = {row["model"] for row in rows}
    assert {"prechecks.checkfinding", "prechecks.runcheck", "runs.runevent"} <= models, sorted(models)
    assert AWS_KEY not in dump
    # Every file the stack wrote: the database file itself, output files, the serve log.
    for path in [*stack.data_dir.rglob("*"), stack.log_path]:
        if path.is_file():
            assert AWS_KEY.encode() not in path.read_bytes(), path
