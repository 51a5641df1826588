"""What a run's record says once the worker has run it: the error summary of the last
attempt only, and the directory the script really ran in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runs.models import Run, RunStatus
from runs.serializers import run_record
from runs.services import lifecycle, run_enqueue, run_execute

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue without handing the run to django-q: the tests call ``run_execute`` themselves."""
    monkeypatch.setattr(lifecycle, "runs_hand_over", lambda run_ids: None)


def queue(script: Path, **params: Any) -> Run:
    return run_enqueue(params={"script_path": str(script), **params}, source="test")


def counting_failure(make_script: Callable[..., Path]) -> Path:
    """Fails every time, saying on stderr which attempt it is (counted in ``count`` beside it)."""
    return make_script(
        "fails.sh",
        """
        n=$(( $(cat count 2>/dev/null || echo 0) + 1 ))
        echo "$n" > count
        echo "attempt $n went wrong" >&2
        exit 1
        """,
    )


def test_error_summary_after_retries_holds_only_the_last_attempts_stderr(
    make_script: Callable[..., Path],
) -> None:
    run = queue(
        counting_failure(make_script), retry_on_failure=True, retry_max_attempts=3, retry_initial_delay=0.01
    )

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.attempts == 3
    assert run.error_summary is not None
    assert run.error_summary["stderr_snippet"] == "attempt 3 went wrong\n"


def test_error_summary_of_a_retried_run_keeps_the_tail_of_a_long_last_attempt(
    make_script: Callable[..., Path],
) -> None:
    script = make_script(
        "noisy.sh",
        """
        for i in $(seq 1 300); do echo "noise line $i" >&2; done
        echo "the real cause" >&2
        exit 2
        """,
    )
    run = queue(script, retry_on_failure=True, retry_max_attempts=2, retry_initial_delay=0.01)

    assert run_execute(run_id=str(run.pk)) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.error_summary is not None
    snippet = run.error_summary["stderr_snippet"]
    assert len(snippet.encode()) == 2048  # the cap: the last attempt alone wrote more than that
    assert snippet.endswith("the real cause\n")
    assert snippet.count("the real cause") == 1


def test_a_defaulted_working_dir_is_recorded_as_the_folder_the_script_ran_in(
    make_script: Callable[..., Path],
) -> None:
    script = make_script("where.sh", "pwd\n")
    run = queue(script)
    assert run_record(run)["working_dir"] is None  # queued: not decided yet

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert run.working_dir == str(script.parent.resolve())
    assert run_record(run)["working_dir"] == str(script.parent.resolve())


def test_a_given_working_dir_is_recorded_as_given(make_script: Callable[..., Path], roots: Path) -> None:
    (roots / "data").mkdir()
    script = make_script("where.sh", "pwd\n")
    run = queue(script, working_dir=str(roots / "data"))

    assert run_execute(run_id=str(run.pk)) == RunStatus.COMPLETED

    run.refresh_from_db()
    assert run.working_dir == str(roots / "data")
