"""The statistics analytics answers with: percentiles, trends, anomalies, baselines.

Pure Python (``math`` only, no Django, no numpy): the API, the run's analysis and the
benchmarks call these with plain sequences of floats. Every figure follows numpy's
definition so people can check it (tests/analytics/test_stats.py compares each one with
numpy on known and random data):

- percentiles: ``numpy.percentile`` default (linear interpolation between closest ranks);
- trend: ordinary least squares, ``numpy.polyfit(x, y, 1)`` with x in days;
- std: the population standard deviation (``numpy.std``, ddof=0).

Sums use :func:`math.fsum` so a long series of similar values does not lose precision.
Results meant for JSON never hold NaN or infinity (JSON has neither): a figure that does
not exist (the std of nothing, r² of a flat line) is None. Values that are not finite (or
beyond ±1e150) in the input are skipped; the run engine never records them, so this is
only a safety net.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SECONDS_PER_DAY = 86400.0
# A fitted change smaller than this (in %) over the window is "stable" (issue 12).
STABLE_PERCENT = 5.0
# Consistency constant of the modified z-score (Iglewicz and Hoaglin): 0.6745 ≈ Φ⁻¹(0.75).
MAD_SCALE = 0.6745

ANOMALY_METHODS = ("iqr", "zscore", "mad")
ANOMALY_DEFAULTS = {"iqr": 1.5, "zscore": 3.0, "mad": 3.5}
BASELINE_METHODS = ("percentile", "iqr", "intelligent")
IQR_K = 1.5
INTELLIGENT_MAD_THRESHOLD = 3.5
INTELLIGENT_MARGIN = 1.2

Number = float | int | None
# Values beyond this are skipped like NaN: no metric comes near it, and it keeps every
# square, sum of squares and product below float overflow.
LIMIT = 1e150


def _usable(value: float) -> bool:
    """Finite and within ±LIMIT (so every square and sum of squares stays finite)."""
    return math.isfinite(value) and abs(value) <= LIMIT


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if _usable(v)]


def _json_float(value: float | None) -> float | None:
    """None for a figure JSON cannot carry (NaN, ±inf)."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _ratio(a: float, b: float) -> float:
    """a / b for b > 0, kept finite: a spread near the smallest float could make it inf."""
    return min(a / b, sys.float_info.max)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _pstd(values: Sequence[float], mean: float) -> float:
    """Population standard deviation (numpy ddof=0), two-pass for accuracy."""
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def _percentile_sorted(ordered: Sequence[float], q: float) -> float:
    """numpy's "linear" method on already sorted values: rank (n-1)·q/100, interpolated."""
    # numpy's virtual index for alpha = beta = 1, written as numpy does so the rounding
    # (and so the last bit of the result) is the same.
    fraction_q = q / 100.0
    rank = len(ordered) * fraction_q + (1 - fraction_q) - 1
    rank = min(max(rank, 0.0), len(ordered) - 1.0)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    a, b = ordered[low], ordered[high]
    if fraction == 0 or a == b:
        return a
    # numpy's _lerp: from the nearer end, so the result stays within [a, b].
    diff = b - a
    if fraction >= 0.5:
        return b - diff * (1 - fraction)
    return a + diff * fraction


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) as ``numpy.percentile(values, q)`` computes it.

    Raises ValueError for no (finite) values or ``q`` outside 0..100: there is no answer
    to give, and a made-up 0 would look like a measurement."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(_finite(values))
    if not ordered:
        raise ValueError("percentile of no values")
    return _percentile_sorted(ordered, q)


# -- trend -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """The least-squares line of a metric over time (x in days since the first point).

    ``intercept`` is the fitted value at the first point; ``direction`` is ``stable`` when
    there are fewer than 3 points or the fitted change over the window is under 5 %."""

    n: int
    slope_per_day: float
    intercept: float
    r_squared: float | None
    first_fitted: float | None
    last_fitted: float | None
    change_percent: float | None
    direction: str  # increasing | decreasing | stable

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON has no NaN/inf: an overflowing input must not break the response.
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data


def trend(points: Sequence[tuple[float, float]]) -> Trend:
    """Ordinary least squares of ``value`` against time for ``(unix seconds, value)`` points
    (order does not matter: they are sorted by time). Equal to ``numpy.polyfit(x, y, 1)``
    with ``x = (t - t_first) / 86400``; ``r² = 1 - SSres/SStot`` (None for a flat series or
    fewer than 2 points); ``change_percent`` is the fitted change over the window relative
    to the fitted first value (None when that is 0)."""
    clean = sorted((float(t), float(v)) for t, v in points if _usable(t) and _usable(v))
    n = len(clean)
    if n == 0:
        return Trend(0, 0.0, 0.0, None, None, None, None, "stable")
    t0 = clean[0][0]
    xs = [(t - t0) / SECONDS_PER_DAY for t, _ in clean]
    ys = [v for _, v in clean]
    y_mean = _mean(ys)
    flat = max(ys) == min(ys)
    if flat:
        y_mean = ys[0]  # exact: fsum(n·c)/n may differ from c in the last bit
    x_mean = _mean(xs)
    sxx = math.fsum((x - x_mean) ** 2 for x in xs)
    if sxx == 0:
        # One point, or every point at the same instant: no slope can be fitted; the
        # best constant is the mean (what polyfit's least-norm solution tends to).
        slope, intercept = 0.0, y_mean
    else:
        sxy = math.fsum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
        slope = sxy / sxx
        intercept = y_mean - slope * x_mean
    first_fitted = intercept
    last_fitted = intercept + slope * xs[-1]
    r_squared: float | None = None
    if n >= 2 and not flat:
        ss_tot = math.fsum((y - y_mean) ** 2 for y in ys)
        ss_res = math.fsum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
        # Mathematically within [0, 1] for OLS with an intercept; rounding can step out.
        # (ss_tot can underflow to 0 for values near the smallest float: no r² then.)
        if ss_tot > 0:
            r_squared = _json_float(min(1.0, max(0.0, 1.0 - ss_res / ss_tot)))
    change: float | None = None
    if n >= 2 and first_fitted != 0:
        change = _json_float((last_fitted - first_fitted) / abs(first_fitted) * 100.0)
    if n < 3 or change is None or abs(change) < STABLE_PERCENT:
        direction = "stable"
    else:
        direction = "increasing" if change > 0 else "decreasing"
    return Trend(
        n=n,
        slope_per_day=slope,
        intercept=intercept,
        r_squared=r_squared,
        first_fitted=first_fitted,
        last_fitted=last_fitted,
        change_percent=change,
        direction=direction,
    )


# -- anomalies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    """One flagged value: its index in the input, how far out it is and the bounds."""

    index: int
    value: float
    score: float
    lower: float
    upper: float


@dataclass(frozen=True)
class AnomalyResult:
    method: str
    threshold: float
    n: int
    lower: float | None
    upper: float | None
    center: dict[str, float] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)


def anomalies(
    values: Sequence[float], *, method: str = "iqr", threshold: float | None = None
) -> AnomalyResult:
    """The values that stand out, by ``method``:

    - ``iqr``: outside [Q1 - k·IQR, Q3 + k·IQR], k = ``threshold`` (default 1.5); score =
      distance beyond the nearer bound in IQRs (the distance itself when IQR is 0);
    - ``zscore``: |x - mean| / std above ``threshold`` (default 3), population std; a
      constant series has no anomalies;
    - ``mad``: modified z-score 0.6745·|x - median| / MAD above ``threshold`` (default 3.5);
      MAD 0 flags nothing.

    ``Anomaly.index`` is the position in ``values``. Raises ValueError for an unknown method
    or a threshold that is not a positive number."""
    if method not in ANOMALY_METHODS:
        raise ValueError(f"unknown method {method!r} (one of {', '.join(ANOMALY_METHODS)})")
    t = ANOMALY_DEFAULTS[method] if threshold is None else float(threshold)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    indexed = [(i, float(v)) for i, v in enumerate(values) if _usable(v)]
    n = len(indexed)
    if n == 0:
        return AnomalyResult(method=method, threshold=t, n=0, lower=None, upper=None)
    data = [v for _, v in indexed]
    found: list[Anomaly] = []
    if method == "iqr":
        ordered = sorted(data)
        q1 = _percentile_sorted(ordered, 25)
        q3 = _percentile_sorted(ordered, 75)
        iqr = q3 - q1
        lower, upper = q1 - t * iqr, q3 + t * iqr
        for i, v in indexed:
            if v < lower or v > upper:
                distance = lower - v if v < lower else v - upper
                score = _ratio(distance, iqr) if iqr > 0 else distance
                found.append(Anomaly(i, v, score, lower, upper))
        center = {"q1": q1, "q3": q3, "iqr": iqr}
    elif method == "zscore":
        mean = _mean(data)
        std = _pstd(data, mean)
        lower, upper = mean - t * std, mean + t * std
        if std > 0:
            for i, v in indexed:
                score = _ratio(abs(v - mean), std)
                if score > t:
                    found.append(Anomaly(i, v, score, lower, upper))
        center = {"mean": mean, "std": std}
    else:  # mad
        median = _percentile_sorted(sorted(data), 50)
        mad = _percentile_sorted(sorted(abs(v - median) for v in data), 50)
        spread = t * mad / MAD_SCALE
        lower, upper = median - spread, median + spread
        if mad > 0:
            for i, v in indexed:
                score = _ratio(MAD_SCALE * abs(v - median), mad)
                if score > t:
                    found.append(Anomaly(i, v, score, lower, upper))
        center = {"median": median, "mad": mad}
    return AnomalyResult(
        method=method,
        threshold=t,
        n=n,
        lower=_json_float(lower),
        upper=_json_float(upper),
        center=center,
        anomalies=found,
    )


# -- baselines -------------------------------------------------------------------------------

_PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "mean", "std")
_IQR_KEYS = ("q1", "q3", "iqr", "lower", "upper")


def _percentile_set(data: list[float]) -> dict[str, Number]:
    if not data:
        return {"n": 0, **dict.fromkeys(_PERCENTILE_KEYS)}
    ordered = sorted(data)
    mean = _mean(data)
    return {
        "n": len(data),
        "p50": _percentile_sorted(ordered, 50),
        "p90": _percentile_sorted(ordered, 90),
        "p95": _percentile_sorted(ordered, 95),
        "p99": _percentile_sorted(ordered, 99),
        "mean": _json_float(mean),
        "std": _json_float(_pstd(data, mean)),
    }


def baseline(values: Sequence[float], *, method: str = "percentile") -> dict[str, Number]:
    """What "usual" is for a metric, by ``method``:

    - ``percentile``: ``{n, p50, p90, p95, p99, mean, std}`` (population std);
    - ``iqr``: ``{n, q1, q3, iqr, lower, upper}`` with bounds Q1 - 1.5·IQR, Q3 + 1.5·IQR;
    - ``intelligent``: the values whose modified z-score is above 3.5 are dropped first,
      then the percentile set of the rest (``n`` counts the rest), plus ``removed`` (how
      many were dropped) and ``suggested_threshold`` = p95 of the rest * 1.2, a gate value.

    No values: ``{"n": 0}`` and every other key None (``removed`` 0). Raises ValueError for
    an unknown method."""
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown method {method!r} (one of {', '.join(BASELINE_METHODS)})")
    data = _finite(values)
    if method == "percentile":
        return _percentile_set(data)
    if method == "iqr":
        if not data:
            return {"n": 0, **dict.fromkeys(_IQR_KEYS)}
        ordered = sorted(data)
        q1 = _percentile_sorted(ordered, 25)
        q3 = _percentile_sorted(ordered, 75)
        iqr = q3 - q1
        return {
            "n": len(data),
            "q1": q1,
            "q3": q3,
            "iqr": iqr,
            "lower": _json_float(q1 - IQR_K * iqr),
            "upper": _json_float(q3 + IQR_K * iqr),
        }
    outliers = {a.index for a in anomalies(data, method="mad", threshold=INTELLIGENT_MAD_THRESHOLD).anomalies}
    kept = [v for i, v in enumerate(data) if i not in outliers]
    result = _percentile_set(kept)
    p95 = result["p95"]
    result["removed"] = len(outliers)
    result["suggested_threshold"] = _json_float(float(p95) * INTELLIGENT_MARGIN) if p95 is not None else None
    return result


def describe(values: Sequence[float]) -> dict[str, Number]:
    """A benchmark's summary of one metric: ``{n, mean, p50, p95, min, max}`` (None for
    each figure when there are no values)."""
    data = _finite(values)
    if not data:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "min": None, "max": None}
    ordered = sorted(data)
    return {
        "n": len(data),
        "mean": _json_float(_mean(data)),
        "p50": _percentile_sorted(ordered, 50),
        "p95": _percentile_sorted(ordered, 95),
        "min": ordered[0],
        "max": ordered[-1],
    }
