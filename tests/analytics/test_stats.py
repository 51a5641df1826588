"""analytics.stats: every figure checked against numpy, on known data and on random data."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import stats

DAY = 86400.0
# Values like real metrics: seconds, MB, counts. Wide enough to find rounding trouble,
# narrow enough that squares do not overflow.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=60)


def close(a: float | None, b: float, *, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    return a is not None and math.isclose(a, float(b), rel_tol=rel, abs_tol=abs_)


def np_flags(values: list[float], method: str, t: float) -> list[int]:
    """The indexes numpy's figures flag, written straight from the issue's definitions."""
    x = np.asarray(values)
    if method == "iqr":
        q1, q3 = np.percentile(x, [25, 75])
        return [int(i) for i in np.flatnonzero((x < q1 - t * (q3 - q1)) | (x > q3 + t * (q3 - q1)))]
    if method == "zscore":
        std = x.std()
        return [] if std == 0 else [int(i) for i in np.flatnonzero(np.abs(x - x.mean()) / std > t)]
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    return [] if mad == 0 else [int(i) for i in np.flatnonzero(0.6745 * np.abs(x - median) / mad > t)]


# -- percentile -------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 1, 25, 50, 75, 90, 95, 99, 99.9, 100])
def test_percentile_equals_numpy_on_known_data(q: float) -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0, 3.5, 7.25, 1e3]
    assert close(stats.percentile(values, q), np.percentile(values, q))


def test_percentile_interpolates_linearly() -> None:
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([10], 99) == 10


@given(samples, st.floats(min_value=0, max_value=100))
@settings(deadline=None)
def test_percentile_equals_numpy_on_random_data(values: list[float], q: float) -> None:
    assert close(stats.percentile(values, q), np.percentile(values, q), abs_=1e-6)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_refuses_no_values_or_q_out_of_range(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        stats.percentile(values, q)


# -- trend ------------------------------------------------------------------------------------


def np_trend(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    t0 = min(t for t, _ in points)
    x = np.array([(t - t0) / DAY for t, _ in points])
    y = np.array([v for _, v in points])
    slope, intercept = np.polyfit(x, y, 1)
    fitted = slope * x + intercept
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return float(slope), float(intercept), float(r2)


def test_trend_equals_polyfit_on_known_data() -> None:
    start = 1_700_000_000.0
    points = [(start + i * DAY, 10 + 2 * i + (-1) ** i * 0.5) for i in range(10)]
    result = stats.trend(points)
    slope, intercept, r2 = np_trend(points)
    assert close(result.slope_per_day, slope)
    assert close(result.intercept, intercept)
    assert close(result.r_squared, r2)
    assert result.n == 10
    assert close(result.first_fitted, intercept)
    assert close(result.last_fitted, intercept + slope * 9)
    assert close(result.change_percent, (slope * 9) / abs(intercept) * 100)
    assert result.direction == "increasing"


def test_trend_of_a_perfect_line_has_r_squared_one_and_exact_slope() -> None:
    points = [(i * DAY / 2, 100 - 3 * i) for i in range(8)]  # -3 per half day
    result = stats.trend(points)
    assert result.slope_per_day == pytest.approx(-6)
    assert result.intercept == pytest.approx(100)
    assert result.r_squared == pytest.approx(1)
    assert result.direction == "decreasing"


def test_trend_ignores_point_order() -> None:
    points = [(i * 3600.0, float(i % 5)) for i in range(20)]
    assert stats.trend(points) == stats.trend(list(reversed(points)))


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=90 * DAY), finite), min_size=3, max_size=50))
@settings(max_examples=150, deadline=None)
def test_trend_equals_polyfit_on_random_data(points: list[tuple[float, float]]) -> None:
    xs = {t for t, _ in points}
    ys = [v for _, v in points]
    # polyfit needs two distinct instants; a flat series has no r² (checked below).
    if len(xs) < 2 or max(xs) - min(xs) < 60 or max(ys) == min(ys):
        return
    result = stats.trend(points)
    slope, intercept, r2 = np_trend(points)
    scale = max(abs(v) for v in ys) + 1
    assert math.isclose(result.slope_per_day, slope, rel_tol=1e-6, abs_tol=1e-6 * scale)
    assert math.isclose(result.intercept, intercept, rel_tol=1e-6, abs_tol=1e-6 * scale)
    if math.isnan(r2):  # numpy's SStot underflowed to 0 (values near the smallest float)
        assert result.r_squared is None
    else:
        assert close(result.r_squared, min(1.0, max(0.0, r2)), rel=1e-6, abs_=1e-6)


def test_trend_is_stable_below_five_percent_or_three_points() -> None:
    small = [(i * DAY, 100 + 0.4 * i) for i in range(10)]  # +3.6 % over the window
    assert stats.trend(small).direction == "stable"
    two = [(0.0, 1.0), (DAY, 100.0)]
    result = stats.trend(two)
    assert result.direction == "stable"
    assert result.change_percent == pytest.approx(9900)


def test_trend_edge_cases_return_no_nan() -> None:
    empty = stats.trend([])
    assert (empty.n, empty.r_squared, empty.first_fitted, empty.direction) == (0, None, None, "stable")
    one = stats.trend([(5.0, 7.0)])
    assert (one.n, one.slope_per_day, one.intercept, one.r_squared) == (1, 0.0, 7.0, None)
    assert (one.first_fitted, one.last_fitted, one.change_percent) == (7.0, 7.0, None)
    flat = stats.trend([(i * DAY, 0.1) for i in range(5)])
    assert (flat.slope_per_day, flat.r_squared, flat.change_percent) == (0.0, None, 0.0)
    same_instant = stats.trend([(10.0, 1.0), (10.0, 3.0)])
    assert (same_instant.slope_per_day, same_instant.intercept) == (0.0, 2.0)
    from_zero = stats.trend([(0.0, 0.0), (DAY, 1.0), (2 * DAY, 2.0)])
    assert from_zero.change_percent is None
    assert from_zero.direction == "stable"
    for result in (empty, one, flat, same_instant, from_zero):
        json.dumps(result.as_dict(), allow_nan=False)


def test_trend_skips_values_that_are_not_finite() -> None:
    result = stats.trend([(0.0, 1.0), (DAY, math.nan), (2 * DAY, 3.0), (3 * DAY, math.inf)])
    assert result.n == 2
    assert result.slope_per_day == pytest.approx(1)


# -- anomalies --------------------------------------------------------------------------------

KNOWN = [10.0, 11.0, 10.5, 9.8, 10.2, 10.1, 55.0, 10.3, 9.9, 10.0, -20.0, 10.4]


@pytest.mark.parametrize("method", ["iqr", "zscore", "mad"])
def test_anomalies_flag_what_numpy_flags_on_known_data(method: str) -> None:
    t = stats.ANOMALY_DEFAULTS[method] if method != "zscore" else 2.0
    result = stats.anomalies(KNOWN, method=method, threshold=t)
    assert [a.index for a in result.anomalies] == np_flags(KNOWN, method, t)
    assert {a.value for a in result.anomalies} >= {55.0}
    assert result.n == len(KNOWN)


def test_iqr_anomalies_score_bounds_and_center() -> None:
    result = stats.anomalies(KNOWN)
    q1, q3 = np.percentile(KNOWN, [25, 75])
    iqr = q3 - q1
    assert (result.method, result.threshold) == ("iqr", 1.5)
    assert close(result.lower, q1 - 1.5 * iqr)
    assert close(result.upper, q3 + 1.5 * iqr)
    assert result.center == pytest.approx({"q1": q1, "q3": q3, "iqr": iqr})
    high = next(a for a in result.anomalies if a.value == 55.0)
    assert close(high.score, (55.0 - (q3 + 1.5 * iqr)) / iqr)
    low = next(a for a in result.anomalies if a.value == -20.0)
    assert close(low.score, ((q1 - 1.5 * iqr) + 20.0) / iqr)
    assert (high.lower, high.upper) == (result.lower, result.upper)


def test_zscore_uses_population_std() -> None:
    result = stats.anomalies(KNOWN, method="zscore", threshold=2)
    x = np.asarray(KNOWN)
    assert result.center == pytest.approx({"mean": x.mean(), "std": x.std(ddof=0)})
    assert close(result.upper, x.mean() + 2 * x.std())
    top = next(a for a in result.anomalies if a.value == 55.0)
    assert close(top.score, abs(55.0 - x.mean()) / x.std())


def test_mad_scores_are_modified_z_scores() -> None:
    result = stats.anomalies(KNOWN, method="mad")
    median = np.median(KNOWN)
    mad = np.median(np.abs(np.asarray(KNOWN) - median))
    assert result.center == pytest.approx({"median": median, "mad": mad})
    assert close(result.lower, median - 3.5 * mad / 0.6745)
    top = next(a for a in result.anomalies if a.value == 55.0)
    assert close(top.score, 0.6745 * (55.0 - median) / mad)


@given(samples, st.sampled_from(["iqr", "zscore", "mad"]), st.floats(min_value=0.5, max_value=5))
@settings(max_examples=200, deadline=None)
def test_anomalies_flag_what_numpy_flags_on_random_data(values: list[float], method: str, t: float) -> None:
    got = [a.index for a in stats.anomalies(values, method=method, threshold=t).anomalies]
    expected = np_flags(values, method, t)
    if got != expected:
        # A value exactly on a bound may fall either side by one rounding step: allow
        # only those.
        result = stats.anomalies(values, method=method, threshold=t)
        assert result.lower is not None and result.upper is not None
        for i in set(got) ^ set(expected):
            v = values[i]
            assert min(abs(v - result.lower), abs(v - result.upper)) <= 1e-9 * (abs(v) + 1)


def test_constant_values_have_no_zscore_or_mad_anomalies() -> None:
    for method in ("zscore", "mad"):
        assert stats.anomalies([4.0] * 10, method=method).anomalies == []


def test_iqr_with_zero_iqr_scores_by_distance() -> None:
    result = stats.anomalies([5.0] * 9 + [8.0])
    assert result.center["iqr"] == 0
    assert [(a.index, a.score) for a in result.anomalies] == [(9, 3.0)]


def test_anomalies_of_few_values() -> None:
    empty = stats.anomalies([], method="zscore")
    assert (empty.n, empty.lower, empty.upper, empty.anomalies, empty.center) == (0, None, None, [], {})
    for method in ("iqr", "zscore", "mad"):
        assert stats.anomalies([3.0], method=method).anomalies == []
        assert stats.anomalies([1.0, 2.0], method=method).anomalies == []


def test_anomaly_indexes_point_into_the_input_even_past_skipped_values() -> None:
    values = [1.0, math.nan, 1.0, 1.0, 1.0, 1.0, 100.0]
    assert [a.index for a in stats.anomalies(values).anomalies] == [6]


@pytest.mark.parametrize(
    ("method", "threshold"),
    [("bogus", None), ("iqr", 0), ("zscore", -1), ("mad", math.nan), ("iqr", math.inf)],
)
def test_anomalies_refuse_unknown_method_or_bad_threshold(method: str, threshold: float | None) -> None:
    with pytest.raises(ValueError):
        stats.anomalies([1.0, 2.0], method=method, threshold=threshold)


# -- baseline and describe --------------------------------------------------------------------


def test_percentile_baseline_equals_numpy() -> None:
    result = stats.baseline(KNOWN)
    x = np.asarray(KNOWN)
    expected = dict(zip(["p50", "p90", "p95", "p99"], np.percentile(x, [50, 90, 95, 99]), strict=True))
    assert result == pytest.approx({"n": 12, **expected, "mean": x.mean(), "std": x.std()})


def test_iqr_baseline_equals_numpy() -> None:
    result = stats.baseline(KNOWN, method="iqr")
    q1, q3 = np.percentile(KNOWN, [25, 75])
    iqr = q3 - q1
    assert result == pytest.approx(
        {"n": 12, "q1": q1, "q3": q3, "iqr": iqr, "lower": q1 - 1.5 * iqr, "upper": q3 + 1.5 * iqr}
    )


def test_intelligent_baseline_drops_mad_outliers_first() -> None:
    result = stats.baseline(KNOWN, method="intelligent")
    kept = [v for i, v in enumerate(KNOWN) if i not in np_flags(KNOWN, "mad", 3.5)]
    assert len(kept) == 10  # 55 and -20 go
    x = np.asarray(kept)
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    assert result == pytest.approx(
        {
            "n": 10,
            "p50": p50,
            "p90": p90,
            "p95": p95,
            "p99": p99,
            "mean": x.mean(),
            "std": x.std(),
            "removed": 2,
            "suggested_threshold": p95 * 1.2,
        }
    )


@given(samples)
@settings(deadline=None)
def test_baselines_equal_numpy_on_random_data(values: list[float]) -> None:
    result = stats.baseline(values)
    x = np.asarray(values)
    for key, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert close(result[key], np.percentile(x, q), abs_=1e-6)
    assert close(result["mean"], x.mean(), abs_=1e-6)
    assert close(result["std"], x.std(), rel=1e-7, abs_=1e-6)


@pytest.mark.parametrize("method", ["percentile", "iqr", "intelligent"])
def test_baseline_of_nothing_is_n_zero_and_nones(method: str) -> None:
    result = stats.baseline([], method=method)
    assert result["n"] == 0
    assert all(v is None for k, v in result.items() if k not in {"n", "removed"})
    json.dumps(result, allow_nan=False)


def test_baseline_of_one_value_and_constant_values() -> None:
    one = stats.baseline([4.0])
    assert one == {"n": 1, "p50": 4.0, "p90": 4.0, "p95": 4.0, "p99": 4.0, "mean": 4.0, "std": 0.0}
    const = stats.baseline([2.5] * 7, method="intelligent")
    assert (const["n"], const["removed"], const["std"]) == (7, 0, 0.0)
    assert const["suggested_threshold"] == pytest.approx(3.0)


def test_baseline_refuses_an_unknown_method() -> None:
    with pytest.raises(ValueError):
        stats.baseline([1.0], method="median")


def test_describe_equals_numpy() -> None:
    rng = random.Random(12)
    values = [rng.lognormvariate(1, 0.5) for _ in range(500)]
    x = np.asarray(values)
    assert stats.describe(values) == pytest.approx(
        {
            "n": 500,
            "mean": x.mean(),
            "p50": np.percentile(x, 50),
            "p95": np.percentile(x, 95),
            "min": x.min(),
            "max": x.max(),
        }
    )
    assert stats.describe([]) == {"n": 0, "mean": None, "p50": None, "p95": None, "min": None, "max": None}


@pytest.mark.parametrize("method", ["iqr", "mad"])
def test_scores_stay_finite_for_a_spread_near_the_smallest_float(method: str) -> None:
    values = [0.0, 5e-324, 1e-323, 5e-324, 0.0, 1e100]
    result = stats.anomalies(values, method=method)
    assert [a.index for a in result.anomalies] == [5]
    json.dumps([a.score for a in result.anomalies], allow_nan=False)


def test_huge_values_are_skipped_like_nan_instead_of_overflowing() -> None:
    values = [1.0, 2.0, 3.0, 1e300, -1e308, 4.0]
    assert stats.describe(values)["n"] == 4
    assert stats.baseline(values)["n"] == 4
    assert stats.anomalies(values, method="zscore").n == 4
    assert stats.trend([(i * DAY, v) for i, v in enumerate(values)]).n == 4
    big = [1e150, -1e150, 1e150, 0.0]  # the largest accepted: sums of squares stay finite
    json.dumps(
        [
            stats.baseline(big),
            stats.anomalies(big, method="zscore").center,
            stats.trend(list(enumerate(big))).as_dict(),
        ],
        allow_nan=False,
    )
