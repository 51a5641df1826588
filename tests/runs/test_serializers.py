"""The RunRecord: ``run_record`` renders what ``RunSerializer`` does, from one shared serializer."""

from __future__ import annotations

import pytest

from runs.models import RunStatus
from runs.serializers import RunSerializer, run_record
from tests.factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_run_record_is_the_serializers_output_for_each_run_in_turn() -> None:
    alice = UserFactory(username="alice")
    first = RunFactory(
        created_by=alice,
        args=["--fast"],
        env_vars={"TOKEN": "s3cret", "MODE": "x"},
        system_env={"WEBHOOK_SECRET": "abc"},
        exit_code=3,
        status=RunStatus.FAILED,
        run_status="failed",
    )
    second = RunFactory(created_by=None, args=[], env_vars={}, status=RunStatus.QUEUED, run_status=None)

    for run in (first, second, first):  # the shared serializer keeps nothing of the last run
        assert run_record(run) == RunSerializer(run).data

    record = run_record(first)
    assert record["created_by"] == "alice" and record["args"] == ["--fast"]
    assert record["env_vars"] == {"TOKEN": "********", "MODE": "********"}  # never the values
    assert record["system_env"] == ["WEBHOOK_SECRET"]
    assert run_record(second)["created_by"] is None
