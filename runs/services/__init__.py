"""Run services: every write to runs goes through here (see CONVENTIONS.md)."""

from runs.services.execution import run_execute
from runs.services.lifecycle import (
    ControlCommand,
    run_control,
    run_delete,
    run_dirs_sweep,
    run_enqueue,
    run_reap_orphans,
    run_restart,
    runs_delete,
    runs_enqueue_many,
    runs_hand_over,
)

__all__ = [
    "ControlCommand",
    "run_control",
    "run_delete",
    "run_dirs_sweep",
    "run_enqueue",
    "run_execute",
    "run_reap_orphans",
    "run_restart",
    "runs_delete",
    "runs_enqueue_many",
    "runs_hand_over",
]
