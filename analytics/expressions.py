"""The small, safe expression language of alert conditions.

``duration_seconds > 60 and exit_code != 0``, ``status == 'failed' or rows < 10``,
``duration_seconds > baseline.p95 * 1.5`` ("slower than usual").

The text is parsed with Python's own parser (``ast.parse(mode="eval")``, which only builds
a tree and runs nothing), then every node is checked against a short whitelist and turned
into this module's own small tree; that tree is what :meth:`Expression.evaluate` walks. No
Python code is ever compiled or run, so ``__import__('os')``, attribute tricks, calls,
lambdas and comprehensions are refused at parse time with an :class:`ExpressionError`
that names the token and its column. Size is bounded too (500 characters, 64 levels of
nesting, no ``**``), so no condition can cost more than a few microseconds.

The language:

- ``and``, ``or``, ``not``; comparisons ``< <= > >= == !=`` (chains such as
  ``1 < x < 5`` work); arithmetic ``+ - * /`` and unary ``-``; parentheses;
- numbers, ``'strings'`` (only compared with ``==`` / ``!=``), ``true`` / ``false``;
- names: a metric (``duration_seconds``, ``rows``; a custom metric with dots in its name,
  ``db.rows``, is written as is; one with ``-`` cannot be named), ``status`` (the run's
  final status, after gates), ``run_status`` and ``source``;
- ``baseline.<stat>``: the baseline of the metric on the other side of the comparison,
  and ``baseline.<metric>.<stat>``; stats: p50 p90 p95 p99 mean std q1 q3 iqr lower
  upper value.

Evaluation never raises: a comparison with a missing value (no such metric, no baseline,
a division by zero, values of different kinds) is false.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from analytics.metrics import METRIC_NAME

MAX_LENGTH: Final = 500
MAX_DEPTH: Final = 64
BASELINE_STATS: Final = frozenset(
    {"p50", "p90", "p95", "p99", "mean", "std", "q1", "q3", "iqr", "lower", "upper", "value"}
)
# Names that are not metrics: the run's facts, compared with strings.
RUN_FACTS: Final = frozenset({"status", "run_status", "source"})
IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Value = float | str | bool | None


class ExpressionError(ValueError):
    """An expression that cannot be taken; ``str(e)`` says why and where, for people."""


# -- the tree evaluate() walks ---------------------------------------------------------------

Values = Mapping[str, float | str | None]
Baselines = Mapping[str, Mapping[str, float | None]]


class _Node:
    kind = "value"  # bool | num | str | value (a name: a number or a string at run time)

    def eval(self, values: Values, baselines: Baselines) -> Value:
        raise NotImplementedError


@dataclass
class _Const(_Node):
    value: float | str | bool
    kind: str = "num"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        return self.value


@dataclass
class _Name(_Node):
    name: str
    kind: str = "value"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        return _plain(values.get(self.name))


@dataclass
class _BaselineRef(_Node):
    metric: str | None  # None: the short form, resolved by the comparison it sits in
    stat: str
    column: int
    kind: str = "value"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        stats = baselines.get(self.metric or "")
        return _number(stats.get(self.stat)) if isinstance(stats, Mapping) else None


@dataclass
class _Arith(_Node):
    op: str
    left: _Node
    right: _Node
    kind: str = "num"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        a = _number(self.left.eval(values, baselines))
        b = _number(self.right.eval(values, baselines))
        if a is None or b is None:
            return None
        if self.op == "+":
            result = a + b
        elif self.op == "-":
            result = a - b
        elif self.op == "*":
            result = a * b
        else:
            if b == 0:
                return None
            result = a / b
        return result if math.isfinite(result) else None


@dataclass
class _Negate(_Node):
    operand: _Node
    sign: float
    kind: str = "num"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        a = _number(self.operand.eval(values, baselines))
        return None if a is None else self.sign * a


_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass
class _Compare(_Node):
    operands: list[_Node]
    ops: list[str]
    kind: str = "bool"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        left = self.operands[0].eval(values, baselines)
        for op, node in zip(self.ops, self.operands[1:], strict=True):
            right = node.eval(values, baselines)
            if not _compare(op, left, right):
                return False
            left = right
        return True


@dataclass
class _Logic(_Node):
    op: str  # and | or
    operands: list[_Node]
    kind: str = "bool"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        results = (node.eval(values, baselines) is True for node in self.operands)
        return all(results) if self.op == "and" else any(results)


@dataclass
class _Not(_Node):
    operand: _Node
    kind: str = "bool"

    def eval(self, values: Values, baselines: Baselines) -> Value:
        return self.operand.eval(values, baselines) is not True


def _plain(value: object) -> Value:
    """A value from the run's mapping as the language sees it (anything else is missing)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _compare(op: str, a: Value, b: Value) -> bool:
    """A comparison: false when a side is missing or the sides are of different kinds."""
    if a is None or b is None:
        return False
    if type(a) is not type(b):  # after _plain: float, str or bool on each side
        return False
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if isinstance(a, float) and isinstance(b, float):
        return _COMPARE[op](a, b)
    return False  # strings and conditions are only compared for equality


# -- parsing ---------------------------------------------------------------------------------

_OPERATOR_TEXT: Final[dict[type[ast.AST], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Invert: "~",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITHMETIC: Final = frozenset({"+", "-", "*", "/"})
_COMPARISONS: Final = frozenset({"<", "<=", ">", ">=", "==", "!="})
_REFUSED_NODES: Final[dict[type[ast.AST], str]] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.IfExp: "'if ... else' is not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "slices are not allowed",
}


class _Builder:
    """Checks a Python AST against the whitelist and builds the evaluation tree."""

    def __init__(self, text: str, indent: int) -> None:
        self.text = text
        self.indent = indent
        self.encoded = text.encode("utf-8")
        self.names: set[str] = set()
        self.refs: set[tuple[str, str]] = set()

    # Columns are 1-based characters; ast gives 0-based UTF-8 byte offsets on one line.
    def column(self, byte_offset: int) -> int:
        return len(self.encoded[:byte_offset].decode("utf-8", "ignore")) + 1 + self.indent

    def at(self, node: ast.AST) -> str:
        return f"at column {self.column(getattr(node, 'col_offset', 0))}"

    def operator_column(self, left: ast.AST, right: ast.AST, text: str) -> int:
        """Where an operator sits: between the end of its left operand and its right one."""
        start = getattr(left, "end_col_offset", None) or 0
        end = getattr(right, "col_offset", len(self.encoded))
        found = self.encoded.find(text.split()[0].encode(), start, max(end, start))
        return self.column(found if found >= 0 else start)

    def build(self, node: ast.AST, depth: int = 0) -> _Node:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"nested too deeply (more than {MAX_DEPTH} levels) {self.at(node)}")
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            operands = [self.condition(value, depth, f"'{op}'") for value in node.values]
            return _Logic(op, operands)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            op = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
            if op not in _ARITHMETIC:
                column = self.operator_column(node.left, node.right, op)
                raise ExpressionError(f"unknown operator '{op}' at column {column}")
            left = self.arithmetic_operand(node.left, depth, op)
            right = self.arithmetic_operand(node.right, depth, op)
            return _Arith(op, left, right)
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.dotted(node)
        reason = _REFUSED_NODES.get(type(node), f"'{type(node).__name__}' is not allowed")
        raise ExpressionError(f"{reason} {self.at(node)}")

    def condition(self, node: ast.AST, depth: int, where: str) -> _Node:
        built = self.build(node, depth + 1)
        if built.kind != "bool":
            segment = ast.get_source_segment(self.text, node) or "this"
            raise ExpressionError(
                f"'{segment}' {self.at(node)} is a value, not a condition: {where} needs a "
                "comparison such as exit_code != 0"
            )
        return built

    def arithmetic_operand(self, node: ast.AST, depth: int, op: str) -> _Node:
        built = self.build(node, depth + 1)
        if built.kind not in {"num", "value"}:
            what = "a string" if built.kind == "str" else "a condition"
            raise ExpressionError(f"'{op}' needs numbers, got {what} {self.at(node)}")
        return built

    def unary(self, node: ast.UnaryOp, depth: int) -> _Node:
        if isinstance(node.op, ast.Not):
            return _Not(self.condition(node.operand, depth, "'not'"))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            operand = self.arithmetic_operand(node.operand, depth, "-" if sign < 0 else "+")
            if isinstance(operand, _Const) and isinstance(operand.value, float):
                return _Const(sign * operand.value)
            return _Negate(operand, sign)
        op = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
        raise ExpressionError(f"unknown operator '{op}' {self.at(node)}")

    def compare(self, node: ast.Compare, depth: int) -> _Node:
        nodes = [node.left, *node.comparators]
        ops: list[str] = []
        for i, op_node in enumerate(node.ops):
            op = _OPERATOR_TEXT.get(type(op_node), type(op_node).__name__)
            if op not in _COMPARISONS:
                column = self.operator_column(nodes[i], nodes[i + 1], op)
                raise ExpressionError(f"unknown operator '{op}' at column {column}")
            ops.append(op)
        operands = [self.build(n, depth + 1) for n in nodes]
        for i, op in enumerate(ops):
            for side, built in ((nodes[i], operands[i]), (nodes[i + 1], operands[i + 1])):
                if op not in {"==", "!="} and built.kind in {"str", "bool"}:
                    what = "strings" if built.kind == "str" else "conditions"
                    raise ExpressionError(f"{what} can only be compared with == or != {self.at(side)}")
        self.resolve_baselines(operands)
        return _Compare(operands, ops)

    def resolve_baselines(self, operands: list[_Node]) -> None:
        """``baseline.<stat>`` means the baseline of the metric the other side names."""
        for i, operand in enumerate(operands):
            short = [ref for ref in _walk(operand) if isinstance(ref, _BaselineRef) and ref.metric is None]
            if not short:
                continue
            others = {
                n.name
                for j, other in enumerate(operands)
                if j != i
                for n in _walk(other)
                if isinstance(n, _Name) and n.name not in RUN_FACTS
            }
            if len(others) != 1:
                raise ExpressionError(
                    f"baseline.{short[0].stat} at column {short[0].column} needs exactly one metric on "
                    f"the other side of the comparison; write baseline.<metric>.{short[0].stat}"
                )
            metric = others.pop()
            for ref in short:
                ref.metric = metric
                self.refs.add((metric, ref.stat))

    def constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool):
            return _Const(value, kind="bool")
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise ExpressionError(f"number too large {self.at(node)}") from None
            return _Const(number)
        if isinstance(value, str):
            return _Const(value, kind="str")
        shown = ast.get_source_segment(self.text, node) or repr(value)
        raise ExpressionError(f"unknown value {shown} {self.at(node)}")

    def name(self, node: ast.Name) -> _Node:
        name = node.id
        if name in {"true", "false"}:
            return _Const(name == "true", kind="bool")
        if name == "baseline":
            raise ExpressionError(f"'baseline' needs a statistic (baseline.p95) {self.at(node)}")
        if not IDENTIFIER.match(name) or name.startswith("__") or len(name) > 64:
            raise ExpressionError(f"unknown name '{name}' {self.at(node)}")
        self.names.add(name)
        return _Name(name)

    def dotted(self, node: ast.Attribute) -> _Node:
        """``baseline.<stat>``, ``baseline.<metric>.<stat>`` or a metric with dots in its
        name (``db.rows``): a chain of plain names, nothing else."""
        parts: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            raise ExpressionError(f"attribute access is not allowed {self.at(node)}")
        parts.append(current.id)
        parts.reverse()
        for part in parts:
            if not IDENTIFIER.match(part) or part.startswith("__"):
                raise ExpressionError(f"attribute access is not allowed ('{part}') {self.at(node)}")
        if parts[0] != "baseline":
            name = ".".join(parts)
            if not METRIC_NAME.match(name):
                raise ExpressionError(f"unknown name '{name}' {self.at(node)}")
            self.names.add(name)
            return _Name(name)
        stat = parts[-1]
        if stat not in BASELINE_STATS:
            raise ExpressionError(
                f"unknown baseline statistic '{stat}' {self.at(node)} "
                f"(one of {', '.join(sorted(BASELINE_STATS))})"
            )
        column = self.column(node.col_offset)
        if len(parts) == 2:
            return _BaselineRef(None, stat, column)
        metric = ".".join(parts[1:-1])
        if not METRIC_NAME.match(metric):
            raise ExpressionError(f"unknown name '{metric}' {self.at(node)}")
        self.refs.add((metric, stat))
        return _BaselineRef(metric, stat, column)


def _walk(node: _Node) -> list[_Node]:
    """The node and everything under it (a comparison's own refs are already resolved)."""
    out = [node]
    for child in _children(node):
        out.extend(_walk(child))
    return out


def _children(node: _Node) -> list[_Node]:
    if isinstance(node, _Arith):
        return [node.left, node.right]
    if isinstance(node, (_Negate, _Not)):
        return [node.operand]
    if isinstance(node, (_Compare, _Logic)):
        return list(node.operands)
    return []


def _max_bracket_depth(text: str) -> int:
    """How deeply brackets nest (outside quotes), checked before Python's parser sees it."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _syntax_message(text: str, exc: SyntaxError, indent: int) -> str:
    for wrong, right in (("&&", "and"), ("||", "or")):
        if wrong in text:
            return f"unknown operator '{wrong}' at column {text.index(wrong) + 1 + indent}: use '{right}'"
    if not exc.offset or exc.offset > len(text):
        # The parser stopped at the end: an operator without its right-hand side.
        return "the condition ends too early (an operator without its right-hand side?)"
    column = exc.offset + indent
    reason = re.split(r"\. (?:Perhaps|Maybe|Did)", exc.msg or "invalid syntax")[0]
    if text[exc.offset - 1] == "=" and text[exc.offset : exc.offset + 1] != "=":
        reason = "'=' is not a comparison: use '=='"
    return f"syntax error at column {column}: {reason}"


@dataclass(frozen=True)
class Expression:
    """A parsed condition. Build it with :func:`parse` (or ``Expression(text)``); either
    raises :class:`ExpressionError` for text that is not in the language."""

    source: str
    _tree: _Node = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _refs: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tree, names, refs = _parse(self.source)
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_refs", refs)

    def names(self) -> frozenset[str]:
        """The names the condition reads from the run's values (metrics, status...)."""
        return self._names

    def baseline_refs(self) -> frozenset[tuple[str, str]]:
        """The (metric, stat) pairs of baselines the condition compares with."""
        return self._refs

    def evaluate(self, values: Values, baselines: Baselines) -> bool:
        """True when the condition holds for these values. Never raises: a comparison
        with a missing value is false."""
        return self._tree.eval(values, baselines) is True


def _parse(text: str) -> tuple[_Node, frozenset[str], frozenset[tuple[str, str]]]:
    if not isinstance(text, str):
        raise ExpressionError("a condition must be a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters ({len(text)})")
    if not text.strip():
        raise ExpressionError("empty condition")
    if "\x00" in text:
        raise ExpressionError("NUL character in the condition")
    # One line for the parser, so its columns are the text's (tabs and newlines are
    # whitespace here; inside a quoted string they would not parse anyway).
    flat = text.translate({9: " ", 10: " ", 13: " ", 11: " ", 12: " "})
    if _max_bracket_depth(flat) > MAX_DEPTH:
        raise ExpressionError(f"nested too deeply (more than {MAX_DEPTH} levels)")
    # Python's parser refuses leading spaces ("unexpected indent"): parse without them
    # and count them back into the columns.
    body = flat.lstrip(" ")
    indent = len(flat) - len(body)
    try:
        module = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(_syntax_message(body, exc, indent)) from None
    except (ValueError, MemoryError, RecursionError):
        raise ExpressionError("cannot parse this condition") from None
    builder = _Builder(body, indent)
    tree = builder.build(module.body)
    if tree.kind != "bool":
        raise ExpressionError(
            "a condition must be true or false: compare a value, e.g. duration_seconds > 60"
        )
    return tree, frozenset(builder.names), frozenset(builder.refs)


def parse(text: str) -> Expression:
    """Parse a condition; raises :class:`ExpressionError` naming the problem and where."""
    return Expression(text)
