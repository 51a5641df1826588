"""``runs.selectors.runs_load``: the runs a runner claimed, loaded whole by a statement
compiled once, are the rows the ORM loads."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from runs.models import Run, RunStatus
from runs.selectors import runs_load

pytestmark = pytest.mark.django_db


def test_the_runs_are_those_the_orm_loads_in_the_order_asked(user_for: Any) -> None:
    alice = user_for("executor")
    first = Run.objects.create(
        script_path="/srv/a.sh",
        args=["1", "x y"],
        env_vars={"A": "1"},
        created_by=alice,
        source="api",
        performance_gates=[{"metric": "duration_seconds", "max_value": 2.0}],
        timeout=30,
    )
    second = Run.objects.create(script_path="/srv/b.sh", status=RunStatus.RUNNING, source="schedule")
    missing = str(uuid.uuid4())

    loaded = runs_load([str(second.pk), missing, str(first.pk)])

    assert [run.pk for run in loaded] == [second.pk, first.pk]  # the missing id is skipped
    for run in loaded:
        reference = Run.objects.get(pk=run.pk)
        for field in Run._meta.concrete_fields:
            assert getattr(run, field.attname) == getattr(reference, field.attname), field.name
        assert not run._state.adding  # a saved row: save() updates it
    assert loaded[1].created_by == alice
    assert loaded[1].args == ["1", "x y"] and loaded[1].performance_gates[0]["max_value"] == 2.0


def test_an_empty_or_malformed_list_loads_nothing() -> None:
    assert runs_load([]) == []
    with pytest.raises(ValidationError):  # as the ORM refuses it: the caller's ids are run ids
        runs_load(["not-a-uuid"])
