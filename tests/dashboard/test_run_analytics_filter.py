"""The phrase a run's page uses to compare the run's duration with usual."""

from __future__ import annotations

import pytest

from dashboard.templatetags.run_analytics import usual_comparison


@pytest.mark.parametrize(
    ("usual", "expected"),
    [
        (
            {"p50": 2.0, "n": 30, "ratio": 2.3},
            ("2.3\u00d7 slower than the p50 of the last 30 successful runs (2.00 s)", "slower"),
        ),
        (
            {"p50": 90.0, "n": 1, "ratio": 0.25},
            ("4.0\u00d7 faster than the p50 of the last successful run (1m 30s)", "faster"),
        ),
        (
            {"p50": 0.5, "n": 4, "ratio": 1.02},
            ("About as fast as the p50 of the last 4 successful runs (500 ms)", "same"),
        ),
    ],
)
def test_the_comparison_reads_as_times_slower_or_faster(
    usual: dict[str, float], expected: tuple[str, str]
) -> None:
    assert usual_comparison(usual) == {"text": expected[0], "kind": expected[1]}


@pytest.mark.parametrize("usual", [None, {}, {"p50": 0.0, "n": 3, "ratio": None}])
def test_without_a_usual_there_is_no_comparison(usual: dict[str, float] | None) -> None:
    assert usual_comparison(usual) is None
