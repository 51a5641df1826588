"""The runner's housekeeping sweeps unused uploads with the run dirs, at the same cadence,
and one failing sweep never stops the other."""

from __future__ import annotations

import threading

import pytest

from scriptops.management.commands import runner as runner_command


def test_the_uploads_sweep_runs_with_the_run_dirs_sweep_and_survives_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()
    calls: list[str] = []

    def record(name: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
        def work(**kwargs: object) -> int:
            calls.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")
            return 0

        return work

    def tick(**kwargs: object) -> None:
        calls.append("tick")
        if calls.count("tick") >= 2:
            stop.set()

    monkeypatch.setattr(runner_command, "SWEEP_INTERVAL", 0.0)
    for name in (
        "fallback_schedule_ensure",
        "prune_schedule_ensure",
        "run_reap_orphans",
        "runs_start_all_waiting",
    ):
        monkeypatch.setattr(runner_command, name, record(name))
    monkeypatch.setattr(runner_command, "run_dirs_sweep", record("run_dirs_sweep", fail=True))
    monkeypatch.setattr(runner_command, "uploads_sweep", record("uploads_sweep"))
    monkeypatch.setattr(runner_command, "tasks_fire_due", tick)

    # Its own thread, as in the runner (it closes its database connection at the end).
    keeper = threading.Thread(
        target=runner_command.housekeeping, args=(stop,), kwargs={"reap_interval": 60, "tick_interval": 0}
    )
    keeper.start()
    keeper.join(10)

    assert not keeper.is_alive()
    assert calls.count("run_dirs_sweep") == calls.count("uploads_sweep") == 2
    assert calls.count("prune_schedule_ensure") == 1  # at start-up, with the fallback schedule
    first = calls.index("run_dirs_sweep")
    assert calls[first : first + 2] == ["run_dirs_sweep", "uploads_sweep"]
