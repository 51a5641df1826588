"""A run's samples file: each line is what ``json.dumps`` writes for the sample (the
runner formats it itself, several times a second per run)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from runs.engine import Sample
from runs.services.execution import sample_line

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
counts = st.integers(min_value=0, max_value=2**62)


@given(ts=finite, cpu=finite, rss=counts, children=counts, attempt=st.integers(min_value=1, max_value=1000))
def test_a_sample_line_is_what_json_dumps_writes(
    ts: float, cpu: float, rss: int, children: int, attempt: int
) -> None:
    line = sample_line(Sample(ts=ts, cpu_percent=cpu, rss=rss, children=children), attempt=attempt)
    row = {"ts": round(ts, 3), "cpu": cpu, "rss": rss, "children": children, "attempt": attempt}
    assert line == json.dumps(row) + "\n"
    assert json.loads(line) == row


def test_a_non_finite_number_falls_back_to_json_dumps() -> None:
    line = sample_line(Sample(ts=1.0, cpu_percent=math.inf, rss=1, children=0), attempt=1)
    assert line == json.dumps({"ts": 1.0, "cpu": math.inf, "rss": 1, "children": 0, "attempt": 1}) + "\n"
