"""One run request, in plain Python: what the API, a library script's run, a scheduled task
and the worker pass around.

:func:`run_request_clean` turns raw input (a JSON object, a form, a task's stored options)
into a :class:`RunRequest` or raises :class:`RunRequestInvalid` naming every bad field;
:func:`plan_resolve` turns a request into the :class:`Plan` the engine spawns (the real
script inside the allowed roots, its interpreter, its directory and environment). The API
resolves the plan to answer 400s and ``dry_run`` early; the worker resolves it again just
before spawning, because the file system may have changed in between. The worker's answer
wins.

The field rules and messages are those ``POST /api/run`` has always answered with (they
were DRF fields' once): clients and tests read them, so a change here is an API change.
No DRF and no Channels here: services import this module.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from django.conf import settings

from analytics.metrics import METRIC_NAME
from analytics.services.alerts import alert_rules_clean, alert_url_check
from core.errors import InvalidInput
from runs import conf
from runs.plan import (
    PlanError,
    RetryPolicy,
    base_environment,
    check_env_vars,
    interpreter_for,
    is_python_script,
    resolve_script,
    resolve_working_dir,
)

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # runs.models.LogLevel
RETRY_STRATEGIES: Final = ("linear", "exponential", "fibonacci", "exponential_jitter")  # RetryStrategy

MAX_ARGS: Final = 1000
MAX_ARG_LENGTH: Final = 32 * 1024
MAX_PATH_LENGTH: Final = 4096
MAX_NUMBER_STRING: Final = 1000  # a longer string is not parsed as a number (CPU guard)
MAX_GATES: Final = 50
BASELINE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
GATE_KEYS: Final = frozenset({"metric", "max_value", "min_value"})
HISTORY_DB_REFUSED: Final = (
    "history_db is not supported: run history lives in the main database (GET /api/analytics/history)."
)
JUNIT_PATH_REFUSED: Final = (
    "junit_output is true or false: the JUnit report is kept with the run and downloaded from "
    "GET /api/runs/{id}/junit; no file is written on the server."
)

# Seed 001 RunRequest fields that later issues implement. Sent with a non-default value
# they are refused, never silently ignored.
UNSUPPORTED_FIELDS: Final = (
    "enable_visualizer",
    "visualizer_format",
)
_DEFAULTS_OF_UNSUPPORTED: dict[str, object] = {"visualizer_format": "text"}
ALIASES: Final = {"path": "script_path"}

TRUE_VALUES: Final[frozenset[object]] = frozenset({"t", "y", "yes", "true", "on", "1", 1})
FALSE_VALUES: Final[frozenset[object]] = frozenset({"f", "n", "no", "false", "off", "0", 0})
_INT_DECIMAL = re.compile(r"\.0*\s*$")  # "1.0" is an integer, "1.2" is not

# The base environment's names a dry run lists (the values are the worker's).
BASE_ENV_NAMES: Final = (
    "PATH",
    "HOME",
    "LANG",
    "TZ",
    "SCRIPTOPS_RUN_ID",
    "SCRIPTOPS_CORRELATION_ID",
    "SCRIPTOPS_LOG_LEVEL",
)


# -- errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem with one field: a message for people, a stable code for programs."""

    message: str
    code: str = "invalid"


# A field's problems: a list, or per key for a mapping field (``env_vars: {"A": [...]}``).
FieldProblems: TypeAlias = list[Problem] | dict[str, list[Problem]]


def _flat(problems: FieldProblems) -> list[str]:
    if isinstance(problems, dict):
        return [f"{key}: {p.message}" for key, items in problems.items() for p in items]
    return [p.message for p in problems]


class RunRequestInvalid(PlanError):
    """A run request refused, naming every bad field (``fields``: ``{name: [message]}``).

    ``problems`` keeps each message's code and the per-key shape of ``env_vars`` problems,
    which the API's 400 answer shows as it always has.
    """

    def __init__(self, problems: Mapping[str, FieldProblems]):
        self.problems: dict[str, FieldProblems] = dict(problems)
        first = next(iter(self.problems.values()), [])
        items = [p for ps in first.values() for p in ps] if isinstance(first, dict) else first
        super().__init__(
            {name: _flat(ps) for name, ps in self.problems.items()},
            code=items[0].code if items else "invalid",
        )

    @classmethod
    def of(cls, exc: PlanError) -> RunRequestInvalid:
        return cls({exc.field: [Problem(exc.message, exc.code)]})


class _Invalid(Exception):
    """A field's value refused (internal: collected into :class:`RunRequestInvalid`)."""

    def __init__(self, problems: FieldProblems):
        super().__init__(problems)
        self.problems = problems


def _fail(message: str, code: str = "invalid") -> _Invalid:
    return _Invalid([Problem(message, code)])


# -- the request --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """A checked run request. ``script_path`` is the real path once :func:`run_request_clean`
    has resolved it; ``working_dir`` is as given (None: the script's folder)."""

    script_path: str
    args: tuple[str, ...] = ()
    timeout: float | None = None
    log_level: str = "INFO"
    retry_on_failure: bool = False
    retry_max_attempts: int = 3
    retry_strategy: str = "exponential"
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 60.0
    retry_multiplier: float = 2.0
    retry_max_time: float = 300.0
    working_dir: str | None = None
    stream_output: bool = False
    monitor_interval: float = 0.1
    env_vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    enable_history: bool = True
    # -- analytics (issue 12): what run_analyse does when the run ends --
    history_db: None = None  # accepted as null only: history lives in the main database
    performance_gates: tuple[Mapping[str, Any], ...] = ()
    junit_output: bool = False
    save_baseline: str | None = None
    load_baseline: str | None = None
    alerts: tuple[Mapping[str, Any], ...] = ()
    slack_webhook: str | None = None
    enable_cost_tracking: bool = False
    # -- pre-run checks (issue 13): what the worker checks before the script starts --
    enable_code_analysis: bool = False
    enable_secret_scanning: bool = False
    enable_dependency_scanning: bool = False
    dry_run: bool = False

    @classmethod
    def of_record(cls, values: Mapping[str, Any]) -> RunRequest:
        """The request a stored run (or task) holds: ``values`` are checked already."""
        names = [name for name in REQUEST_FIELDS if name in values]
        fields = {name: values[name] for name in names}
        fields["args"] = tuple(str(a) for a in fields.get("args") or ())
        fields["env_vars"] = MappingProxyType(dict(fields.get("env_vars") or {}))
        for name in ("performance_gates", "alerts"):
            fields[name] = tuple(fields.get(name) or ())
        return cls(**fields)

    def run_fields(self) -> dict[str, Any]:
        """The fields of a :class:`runs.models.Run` for this request (``dry_run`` is not one)."""
        return {
            "script_path": self.script_path,
            "args": list(self.args),
            "timeout": self.timeout,
            "log_level": self.log_level,
            "retry_on_failure": self.retry_on_failure,
            "retry_max_attempts": self.retry_max_attempts,
            "retry_strategy": self.retry_strategy,
            "retry_initial_delay": self.retry_initial_delay,
            "retry_max_delay": self.retry_max_delay,
            "retry_multiplier": self.retry_multiplier,
            "retry_max_time": self.retry_max_time,
            "working_dir": self.working_dir,
            "stream_output": self.stream_output,
            "monitor_interval": self.monitor_interval,
            "env_vars": dict(self.env_vars),
            "enable_history": self.enable_history,
            **self.analytics_fields(),
            **self.precheck_fields(),
        }

    def precheck_fields(self) -> dict[str, bool]:
        """The pre-run check options (stored on a run and on a scheduled task alike)."""
        return {
            "enable_code_analysis": self.enable_code_analysis,
            "enable_secret_scanning": self.enable_secret_scanning,
            "enable_dependency_scanning": self.enable_dependency_scanning,
        }

    def analytics_fields(self) -> dict[str, Any]:
        """The analytics options (stored on a run and on a scheduled task alike)."""
        return {
            "performance_gates": [dict(gate) for gate in self.performance_gates],
            "junit_output": self.junit_output,
            "save_baseline": self.save_baseline,
            "load_baseline": self.load_baseline,
            "alerts": [dict(rule) for rule in self.alerts],
            "slack_webhook": self.slack_webhook,
            "enable_cost_tracking": self.enable_cost_tracking,
        }

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            enabled=self.retry_on_failure,
            max_attempts=self.retry_max_attempts,
            strategy=self.retry_strategy,
            initial_delay=self.retry_initial_delay,
            max_delay=self.retry_max_delay,
            multiplier=self.retry_multiplier,
            max_time=self.retry_max_time,
        )


@dataclass(frozen=True)
class Plan:
    """What the engine spawns: never a shell string."""

    script: Path
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "script": str(self.script),
            "command": list(self.command),
            "cwd": str(self.cwd),
            "env": dict(self.env),
        }


# -- field rules (in the order fields are checked and their problems listed) ---------------

_REQUIRED: Final = object()


def _string(*, trim: bool, allow_blank: bool) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value == "" or (trim and str(value).strip() == ""):
            if not allow_blank:
                raise _fail("This field may not be blank.", "blank")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _fail("Not a valid string.")
        text = str(value).strip() if trim else str(value)
        problems: list[Problem] = []
        if len(text) > MAX_PATH_LENGTH:
            problems.append(
                Problem(f"Ensure this field has no more than {MAX_PATH_LENGTH} characters.", "max_length")
            )
        if "\x00" in text:
            problems.append(Problem("Null characters are not allowed.", "null_characters_not_allowed"))
        surrogate = next((ch for ch in text if 0xD800 <= ord(ch) <= 0xDFFF), None)
        if surrogate is not None:
            problems.append(
                Problem(
                    f"Surrogate characters are not allowed: U+{ord(surrogate):X}.",
                    "surrogate_characters_not_allowed",
                )
            )
        if problems:
            raise _Invalid(problems)
        return text

    return parse


def _limits(value: float, *, low: float | None, high: float | None) -> None:
    problems: list[Problem] = []
    if high is not None and value > high:
        problems.append(Problem(f"Ensure this value is less than or equal to {high}.", "max_value"))
    if low is not None and value < low:
        problems.append(Problem(f"Ensure this value is greater than or equal to {low}.", "min_value"))
    if problems:
        raise _Invalid(problems)


def _integer(*, low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, str) and len(value) > MAX_NUMBER_STRING:
            raise _fail("String value too large.", "max_string_length")
        try:
            number = int(_INT_DECIMAL.sub("", str(value)))
        except (ValueError, TypeError):
            raise _fail("A valid integer is required.") from None
        _limits(number, low=low, high=high)
        return number

    return parse


def _number(*, low: float, high: float | None = None) -> Callable[[object], float]:
    """A finite number: "nan", "inf", 1e400 and booleans are refused (NaN would be stored as
    NULL by SQLite, infinity cannot be written as strict JSON)."""

    def parse(value: object) -> float:
        if isinstance(value, bool):
            raise _fail("A valid number is required.")
        if isinstance(value, str) and len(value) > MAX_NUMBER_STRING:
            raise _fail("String value too large.", "max_string_length")
        if not isinstance(value, (str, int, float)):  # what JSON and forms send, bar lists and dicts
            raise _fail("A valid number is required.")
        try:
            number = float(value)
        except ValueError:
            raise _fail("A valid number is required.") from None
        except OverflowError:
            raise _fail("Integer value too large to convert to float", "overflow") from None
        if not math.isfinite(number):
            raise _fail("A finite number is required.", "not_finite")
        _limits(number, low=low, high=high)
        return number

    return parse


def _boolean(value: object) -> bool:
    key = value.lower() if isinstance(value, str) else value
    try:
        if key in TRUE_VALUES:
            return True
        if key in FALSE_VALUES:
            return False
    except TypeError:  # unhashable (a list, a dict)
        pass
    raise _fail("Must be a valid boolean.")


def _choice(choices: tuple[str, ...]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = str(value)
        if text not in choices:
            raise _fail(f'"{value}" is not a valid choice.', "invalid_choice")
        return text

    return parse


def _args(value: object) -> tuple[str, ...]:
    """A list of arguments; a single string is split like a shell would (no shell runs)."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise _fail(f"args could not be split: {exc}.", "unbalanced") from None
    if not isinstance(value, list):
        raise _fail("args must be a list of strings (or one string of arguments).")
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise _fail("args must be a list of strings (or one string of arguments).")
        text = str(item)
        if "\x00" in text:
            raise _fail("An argument contains a NUL byte.", "nul")
        if len(text) > MAX_ARG_LENGTH:
            raise _fail(f"An argument is longer than {MAX_ARG_LENGTH} characters.", "too_long")
        out.append(text)
    if len(out) > MAX_ARGS:
        raise _fail(f"At most {MAX_ARGS} arguments.", "too_many")
    return tuple(out)


def _env_vars(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise _fail(f'Expected a dictionary of items but got type "{type(value).__name__}".', "not_a_dict")
    values: dict[str, object] = {}
    problems: dict[str, list[Problem]] = {}
    for key, item in value.items():
        name = str(key)
        if item is None:
            problems[name] = [Problem("This field may not be null.", "null")]
            continue
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            problems[name] = [Problem("Value must be valid JSON.")]
            continue
        values[name] = item
    if problems:
        raise _Invalid(problems)
    try:
        return MappingProxyType(check_env_vars(values, settings.ENV_DENY))
    except PlanError as exc:
        raise _fail(exc.message) from None


def _history_db(value: object) -> None:
    raise _fail(HISTORY_DB_REFUSED, "not_supported")


def _junit_output(value: object) -> bool:
    if value == "":
        return False  # a form's empty field
    try:
        return _boolean(value)
    except _Invalid:
        if isinstance(value, str):
            raise _fail(JUNIT_PATH_REFUSED, "not_supported") from None
        raise


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{where} must be a number.")
    try:
        number = float(value)
    except OverflowError:
        raise _fail(f"{where} is too large.") from None
    if not math.isfinite(number):
        raise _fail(f"{where} must be a finite number.", "not_finite")
    return number


def _performance_gates(value: object) -> tuple[dict[str, Any], ...]:
    """``[{metric, max_value?, min_value?}]``: each gate names a metric (built-in or custom)
    and at least one bound; checked when the run ends (``analytics.services.runs``)."""
    if not isinstance(value, list):
        raise _fail("performance_gates must be a list of {metric, max_value?, min_value?}.")
    if len(value) > MAX_GATES:
        raise _fail(f"At most {MAX_GATES} performance gates.", "too_many")
    gates: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"performance_gates[{index}]"
        if not isinstance(item, dict):
            raise _fail(f"{where} must be an object {{metric, max_value?, min_value?}}.")
        unknown = sorted(str(key) for key in set(item) - GATE_KEYS)
        if unknown:
            raise _fail(f"{where}: unknown key {unknown[0]!r} (metric, max_value, min_value).")
        metric = item.get("metric")
        if not isinstance(metric, str) or not METRIC_NAME.match(metric):
            raise _fail(f"{where}.metric must be a metric name (letters, digits, _ . -, at most 64).")
        gate: dict[str, Any] = {"metric": metric}
        for bound in ("max_value", "min_value"):
            if item.get(bound) is not None:
                gate[bound] = _finite(item[bound], f"{where}.{bound}")
        if len(gate) == 1:
            raise _fail(f"{where} needs max_value or min_value.")
        if gate.get("min_value", -math.inf) > gate.get("max_value", math.inf):
            raise _fail(f"{where}: min_value is greater than max_value.")
        gates.append(gate)
    return tuple(gates)


def _baseline_name(value: object) -> str | None:
    if not isinstance(value, str):
        raise _fail("Not a valid string.")
    if value == "":
        return None
    if not BASELINE_NAME.match(value):
        raise _fail(
            "A baseline name, not a path: letters, digits and ._- (at most 100, starting with a "
            "letter or digit). Saved baselines: GET /api/analytics/baselines."
        )
    return value


def _alerts(value: object) -> object:
    """Shape only; the rules are checked with ``slack_webhook`` (:func:`_alerts_clean`)."""
    if not isinstance(value, list):
        raise _fail("alerts must be a list of rules [{name, condition, channels, severity?}].")
    return value


def _slack_webhook(value: object) -> str | None:
    if not isinstance(value, str):
        raise _fail("Not a valid string.")
    if value == "":
        return None
    try:
        alert_url_check(value)
    except InvalidInput as exc:
        raise _fail(exc.message, exc.code) from None
    return value


def _alerts_clean(out: dict[str, Any]) -> None:
    """The alert rules, checked once ``slack_webhook`` is (a ``slack`` channel needs it):
    conditions parsed, URLs on the allowlist (``analytics.services.alerts``)."""
    if not out["alerts"]:
        out["alerts"] = ()
        return
    try:
        rules = alert_rules_clean(out["alerts"], slack_webhook=out["slack_webhook"])
    except InvalidInput as exc:
        raise _Invalid(
            [Problem(message, exc.code) for messages in exc.fields.values() for message in messages]
        ) from None
    out["alerts"] = tuple(rules)


@dataclass(frozen=True)
class _Rule:
    parse: Callable[[object], object]
    default: object = _REQUIRED  # a value, or a callable making one
    allow_null: bool = False
    null: object = None  # what null stands for, when allowed


_RULES: Final[dict[str, _Rule]] = {
    "script_path": _Rule(_string(trim=False, allow_blank=False)),
    "args": _Rule(_args, default=tuple),
    "timeout": _Rule(_number(low=0.1), default=None, allow_null=True),
    "log_level": _Rule(_choice(LOG_LEVELS), default="INFO"),
    "retry_on_failure": _Rule(_boolean, default=False),
    "retry_max_attempts": _Rule(_integer(low=1, high=100), default=3),
    "retry_strategy": _Rule(_choice(RETRY_STRATEGIES), default="exponential"),
    "retry_initial_delay": _Rule(_number(low=0.0, high=86400), default=1.0),
    "retry_max_delay": _Rule(_number(low=0.0, high=86400), default=60.0),
    "retry_multiplier": _Rule(_number(low=1.0, high=100), default=2.0),
    "retry_max_time": _Rule(_number(low=0.0, high=7 * 86400), default=300.0),
    "working_dir": _Rule(_string(trim=True, allow_blank=True), default=None, allow_null=True),
    "stream_output": _Rule(_boolean, default=False),
    "monitor_interval": _Rule(_number(low=0.02, high=3600), default=0.1),
    "env_vars": _Rule(_env_vars, default=lambda: MappingProxyType({})),
    "enable_history": _Rule(_boolean, default=True),
    "history_db": _Rule(_history_db, default=None, allow_null=True),
    "performance_gates": _Rule(_performance_gates, default=(), allow_null=True, null=()),
    "junit_output": _Rule(_junit_output, default=False, allow_null=True, null=False),
    "save_baseline": _Rule(_baseline_name, default=None, allow_null=True),
    "load_baseline": _Rule(_baseline_name, default=None, allow_null=True),
    "alerts": _Rule(_alerts, default=(), allow_null=True, null=()),
    "slack_webhook": _Rule(_slack_webhook, default=None, allow_null=True),
    "enable_cost_tracking": _Rule(_boolean, default=False),
    "enable_code_analysis": _Rule(_boolean, default=False),
    "enable_secret_scanning": _Rule(_boolean, default=False),
    "enable_dependency_scanning": _Rule(_boolean, default=False),
    "dry_run": _Rule(_boolean, default=False),
}
REQUEST_FIELDS: Final = tuple(_RULES)


def _is_default_of_unsupported(name: str, value: object) -> bool:
    """True if ``value`` asks for nothing: null, empty, false (also "false" from a form)."""
    if value in (None, False, [], {}, "") or value == _DEFAULTS_OF_UNSUPPORTED.get(name):
        return True
    hashable = isinstance(value, (str, int, float))
    return name.startswith("enable_") and hashable and value in FALSE_VALUES


def _shape(data: Mapping[str, object]) -> dict[str, object]:
    """The fields of ``data`` under their names, or the unknown and unsupported ones refused."""
    values = dict(data)
    for alias, name in ALIASES.items():
        if alias in values and name not in values:
            values[name] = values.pop(alias)
    problems: dict[str, FieldProblems] = {}
    for name in UNSUPPORTED_FIELDS:
        if name in values:
            value = values.pop(name)
            if not _is_default_of_unsupported(name, value):
                problems[name] = [Problem(f"{name} is not supported yet.")]
    for name in sorted(set(values) - set(_RULES), key=str):
        problems[name] = [Problem(f"Unknown field {name!r}.")]
    if problems:
        raise RunRequestInvalid(problems)
    return values


def _fields(values: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems: dict[str, FieldProblems] = {}
    for name, rule in _RULES.items():
        try:
            if name not in values:
                if rule.default is _REQUIRED:
                    raise _fail("This field is required.", "required")
                out[name] = rule.default() if callable(rule.default) else rule.default
            elif values[name] is None:
                if not rule.allow_null:
                    raise _fail("This field may not be null.", "null")
                out[name] = rule.null
            else:
                out[name] = rule.parse(values[name])
        except _Invalid as exc:
            problems[name] = exc.problems
    if "alerts" not in problems and "slack_webhook" not in problems:
        try:
            _alerts_clean(out)
        except _Invalid as exc:
            problems["alerts"] = exc.problems
    if problems:
        raise RunRequestInvalid(problems)
    return out


def run_request_clean(data: object) -> RunRequest:
    """Check a run request and that it can run now: the script and working directory inside
    the allowed roots, an interpreter for it (see :func:`plan_resolve`).

    Raises :class:`RunRequestInvalid`: the unknown and unsupported fields first, then every
    field's own problems, then the first path problem, then the retry delays.
    """
    if not isinstance(data, Mapping):
        raise RunRequestInvalid(
            {"non_field_errors": [Problem("Expected a JSON object with the run request's fields.")]}
        )
    request = RunRequest(**_fields(_shape(data)))
    try:
        plan = plan_resolve(request)
    except PlanError as exc:
        raise RunRequestInvalid.of(exc) from exc
    request = replace(request, script_path=str(plan.script))
    if request.retry_max_delay < request.retry_initial_delay:
        raise RunRequestInvalid(
            {"retry_max_delay": [Problem("retry_max_delay must be at least retry_initial_delay.")]}
        )
    return request


# -- checks of higher apps ------------------------------------------------------------------
# "Would the script accept this launch?": a check per higher app (the library knows a
# script's argparse parameters), registered in its AppConfig.ready(): runs never imports
# upward. A check returns the problems it finds per field, none when it has nothing to say.
LaunchCheck = Callable[[RunRequest], Mapping[str, FieldProblems]]
_launch_checks: dict[str, LaunchCheck] = {}


def launch_check_register(*, name: str, check: LaunchCheck) -> None:
    """Register ``check`` for every launch a person or a client asks for (``POST
    /api/run``, the library's run action, the execute stream); registering a ``name``
    again replaces it (``ready()`` may run more than once in tests)."""
    _launch_checks[name] = check


def launch_check(request: RunRequest) -> None:
    """Raise :class:`RunRequestInvalid` naming what the registered checks refuse in a
    checked ``request``, before anything is queued."""
    problems: dict[str, FieldProblems] = {}
    for check in list(_launch_checks.values()):
        problems.update(check(request))
    if problems:
        raise RunRequestInvalid(problems)


def plan_resolve(
    request: RunRequest,
    *,
    run_id: str = "",
    correlation_id: str = "",
    system_env: Mapping[str, object] | None = None,
) -> Plan:
    """Resolve what spawning ``request`` takes, as the file system stands now. Raises
    :class:`~runs.plan.PlanError` naming the field (``script_path``, ``working_dir``,
    ``env_vars``).

    ``system_env``: variables set by ScriptOps itself (never from a request), so not subject
    to the deny list; only ``SCRIPTOPS_*`` names are taken.
    """
    roots = conf.allowed_roots()
    script = resolve_script(request.script_path, roots)
    cwd = resolve_working_dir(request.working_dir, script, roots)
    command = interpreter_for(script, python=settings.SCRIPT_PYTHON) + list(request.args)
    env = base_environment(
        run_id=run_id,
        correlation_id=correlation_id,
        log_level=request.log_level,
        path=settings.SCRIPT_PATH,
        python_script=is_python_script(script),
    )
    env.update(check_env_vars(request.env_vars, settings.ENV_DENY))
    env.update(
        {name: str(value) for name, value in (system_env or {}).items() if name.startswith("SCRIPTOPS_")}
    )
    return Plan(script=script, command=tuple(command), cwd=cwd, env=MappingProxyType(env))


def dry_run_answer(request: RunRequest) -> dict[str, Any]:
    """What ``dry_run`` answers (the plan, environment names only): nothing is started.
    Raises :class:`~runs.plan.PlanError` if the request cannot run any more."""
    plan = plan_resolve(request)
    policy = request.retry_policy()
    return {
        "dry_run": True,
        "valid": True,
        "script_path": request.script_path,
        "command": list(plan.command),
        "cwd": str(plan.cwd),
        "env": sorted([*BASE_ENV_NAMES, *request.env_vars]),
        "timeout": request.timeout,
        "stop_grace": settings.STOP_GRACE,
        "max_attempts": request.retry_max_attempts if request.retry_on_failure else 1,
        "retry_delays": policy.schedule(),
        "retry_strategy": request.retry_strategy if request.retry_on_failure else None,
    }
