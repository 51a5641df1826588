"""analytics.expressions: alert conditions are parsed into a small tree, never run as Python."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.expressions import MAX_DEPTH, MAX_LENGTH, Expression, ExpressionError, parse

RUN: dict[str, float | str | None] = {
    "duration_seconds": 75.0,
    "exit_code": 1,
    "rows": 42.0,
    "db.rows": 7.0,
    "status": "failed",
    "source": "api",
}
BASELINES: dict[str, dict[str, float | None]] = {
    "duration_seconds": {"p95": 40.0, "p50": 30.0},
    "rows": {"mean": 10.0, "p50": None},
}


def holds(text: str, values: dict[str, float | str | None] | None = None) -> bool:
    return parse(text).evaluate(RUN if values is None else values, BASELINES)


# -- the language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duration_seconds > 60 and exit_code != 0", True),
        ("duration_seconds > 60 and exit_code == 0", False),
        ("duration_seconds < 60 or rows >= 42", True),
        ("not (rows > 100)", True),
        ("not rows > 100", True),
        ("status == 'failed'", True),
        ('status != "failed"', False),
        ("source == 'schedule' or status == 'failed'", True),
        ("1 < rows < 50", True),
        ("1 < rows < 40", False),
        ("(duration_seconds - 15) / 2 == 30", True),
        ("-rows + 50 == 8", True),
        ("rows * 2 >= 84.0", True),
        ("db.rows == 7", True),
        ("true", True),
        ("false or true", True),
        ("true and false", False),
        ("duration_seconds > baseline.p95 * 1.5", True),  # 75 > 60
        ("duration_seconds > baseline.p95 * 2", False),  # 75 > 80
        ("rows > baseline.rows.mean and duration_seconds > baseline.duration_seconds.p50", True),
        ("baseline.p95 * 1.5 < duration_seconds", True),  # the metric may be on either side
        ("  rows > 1", True),
    ],
)
def test_conditions_evaluate_as_written(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "missing_metric > 1",
        "missing_metric < 1",
        "missing_metric == 0",
        "missing_metric != 0",  # missing is not "different"
        "rows > baseline.rows.p50",  # the baseline has no p50 figure
        "rows > baseline.rows.p95",  # ... or not this stat at all
        "exit_code > baseline.p95",  # no baseline of exit_code
        "rows / 0 > 1",
        "rows / 0 < 1",
        "status > 1",  # a string and a number
        "rows == 'failed'",
    ],
)
def test_comparisons_with_missing_values_are_false(text: str) -> None:
    assert holds(text) is False


def test_not_of_a_missing_comparison_is_true() -> None:
    # "not (x > 1)" holds when x is missing: the comparison is false, as documented.
    assert holds("not (missing_metric > 1)") is True


def test_values_that_are_not_finite_count_as_missing() -> None:
    assert holds("rows > 1", {"rows": math.nan}) is False
    assert holds("rows < 1", {"rows": math.inf}) is False
    assert holds("rows * 1e300 * 1e300 > 1", {"rows": 1.0}) is False  # overflow


def test_names_and_baseline_refs_say_what_the_condition_needs() -> None:
    expression = parse(
        "duration_seconds > baseline.p95 * 1.5 and rows < baseline.rows.q1 or db.rows > 1 and status == 'x'"
    )
    assert expression.names() == {"duration_seconds", "rows", "db.rows", "status"}
    assert expression.baseline_refs() == {("duration_seconds", "p95"), ("rows", "q1")}
    assert parse("true").names() == frozenset()


def test_expressions_are_values() -> None:
    assert parse("rows > 1") == Expression("rows > 1")
    assert parse("rows > 1").source == "rows > 1"
    assert hash(parse("rows > 1")) == hash(Expression("rows > 1"))


# -- refused, with a message naming what and where ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("duration_seconds * 2 ** 10 > 5", "unknown operator '**' at column 22"),
        ("rows // 2 > 1", "unknown operator '//' at column 6"),
        ("rows % 2 == 1", "unknown operator '%' at column 6"),
        ("rows & 1", "unknown operator '&' at column 6"),
        ("~rows > 1", "unknown operator '~' at column 1"),
        ("rows in 'abc'", "unknown operator 'in' at column 6"),
        ("rows is not None", "unknown operator 'is not' at column 6"),
        ("rows > 1 && exit_code", "unknown operator '&&' at column 10: use 'and'"),
        ("rows > 1 || exit_code", "use 'or'"),
        ("rows = 1", "'=' is not a comparison: use '=='"),
        ("rows >", "ends too early"),
        ("(rows > 1", "'(' was never closed"),
        ("rows", "a condition must be true or false"),
        ("rows + 1", "a condition must be true or false"),
        ("'failed'", "a condition must be true or false"),
        ("rows and status == 'x'", "'rows' at column 1 is a value, not a condition"),
        ("not rows", "is a value, not a condition"),
        ("'a' * 5 > 1", "'*' needs numbers, got a string at column 1"),
        ("(rows > 1) + 1 > 0", "'+' needs numbers, got a condition"),
        ("status < 'b'", "strings can only be compared with == or != at column 10"),
        ("(rows > 1) < true", "conditions can only be compared with == or !="),
        ("rows > None", "unknown value None at column 8"),
        ("rows > 1j", "unknown value 1j"),
        ("rows > b'x'", "unknown value"),
        ("rows > 1e999", "number too large at column 8"),
        ("rows > " + "9" * 400, "number too large"),
        ("rows > baseline.median", "unknown baseline statistic 'median' at column 8"),
        ("baseline.p95 > 1", "needs exactly one metric on the other side"),
        ("rows + exit_code > baseline.p95", "write baseline.<metric>.p95"),
        ("status == 'x' and baseline > 1", "'baseline' needs a statistic"),
        ("é > 1", "unknown name 'é' at column 1"),
        ("__builtins__ > 1", "unknown name '__builtins__'"),
        ("", "empty condition"),
        ("   ", "empty condition"),
        ("rows > 1\x00", "NUL"),
    ],
)
def test_bad_conditions_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as err:
        parse(text)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('id') == 0",
        "open('/etc/passwd').read() == ''",
        "rows.__class__.__mro__ == 1",
        "().__class__.__bases__[0].__subclasses__() == 1",
        "status.upper() == 'FAILED'",
        "(lambda: 1)() == 1",
        "[x for x in ()] == 1",
        "{1: 2} == 1",
        "(rows := 5) > 1",
        "rows if rows else 1",
        "f'{rows}' == '42'",
        "rows[0] > 1",
        "10 ** 10 ** 10 > 1",
        "9 ** 999999 > 1",
        "'a' * 10 ** 9 == 'a'",
        "exec('1') == 1",
        "getattr(rows, 'real') > 1",
        "await rows",
        "rows > 1; import os",
        "*rows > 1",
    ],
)
def test_hostile_input_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_length_is_limited() -> None:
    ok = "rows > " + "1 + " * 60 + "1"
    assert len(ok) <= MAX_LENGTH
    parse(ok)
    with pytest.raises(ExpressionError, match="longer than 500 characters"):
        parse("rows > 1" + " " * MAX_LENGTH)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 70 + "rows > 1" + ")" * 70,
        "rows > " + "(" * 200 + "1" + ")" * 200,
        "rows > " + "-" * 200 + "1",
        "not " * 100 + "rows > 1",
        "rows > " + "[" * 100,
    ],
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError, match=rf"nested too deeply \(more than {MAX_DEPTH} levels\)"):
        parse(text[:MAX_LENGTH])


def test_moderate_nesting_is_fine() -> None:
    assert holds("(" * 10 + "rows > 1" + ")" * 10)
    assert holds("not not rows > 1")


@pytest.mark.parametrize("value", [None, 42, ["rows > 1"]])
def test_only_text_is_parsed(value: object) -> None:
    with pytest.raises(ExpressionError):
        parse(value)  # type: ignore[arg-type]


# -- random arithmetic matches Python's arithmetic ----------------------------------------------------

OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
leaf = st.one_of(
    st.integers(min_value=0, max_value=1000).map(lambda n: (str(n), float(n))),
    st.sampled_from([("a", 3.0), ("b", -2.5), ("c", 0.0)]),
)


def _combine(
    children: st.SearchStrategy[tuple[str, float | None]],
) -> st.SearchStrategy[tuple[str, float | None]]:
    def join(
        op: str, left: tuple[str, float | None], right: tuple[str, float | None]
    ) -> tuple[str, float | None]:
        a, b = left[1], right[1]
        value = None if a is None or b is None or (op == "/" and b == 0) else OPS[op](a, b)
        return f"({left[0]} {op} {right[0]})", value

    return st.builds(join, st.sampled_from(sorted(OPS)), children, children)


arithmetic = st.recursive(leaf, _combine, max_leaves=8)


@given(arithmetic, st.sampled_from(sorted(COMPARE)), arithmetic)
@settings(max_examples=300, deadline=None)
def test_random_comparisons_match_python_arithmetic(
    left: tuple[str, float | None], op: str, right: tuple[str, float | None]
) -> None:
    text = f"{left[0]} {op} {right[0]}"
    expected = left[1] is not None and right[1] is not None and COMPARE[op](left[1], right[1])
    assert parse(text).evaluate({"a": 3, "b": -2.5, "c": 0}, {}) is expected


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_raises_expression_error(text: str) -> None:
    try:
        expression = parse(text)
    except ExpressionError:
        return
    assert isinstance(expression.evaluate(RUN, BASELINES), bool)
