"""Turning a run request into an execution plan: path checks, interpreter, environment.

Plain Python: the API calls it to answer 400s early and for ``dry_run``; the
worker calls it again just before spawning, because the file system may have
changed in between (a file swapped for a symlink, say). The worker's answer wins.
"""

from __future__ import annotations

import fnmatch
import os
import random
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InvalidInput
from core.paths import path_check

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RETRY_STRATEGIES = ("linear", "exponential", "fibonacci", "exponential_jitter")


class PlanError(InvalidInput):
    """A request that cannot be executed. ``field`` names the offending input, ``code``
    the kind of problem (``required``, ``not_found``, ``path_not_allowed``…)."""


def _has_nul(value: str) -> bool:
    return "\x00" in value


def within_roots(path: str, roots: Iterable[Path]) -> bool:
    """True if the real path is one of the roots or below one (roots resolved too)."""
    for root in roots:
        real_root = os.path.realpath(root)
        if path == real_root or path.startswith(real_root.rstrip(os.sep) + os.sep):
            return True
    return False


def resolve_script(raw: str, roots: Sequence[Path]) -> Path:
    """Resolve ``raw`` to a real regular file inside one of ``roots``.

    Relative paths are taken relative to the first root. ``..`` segments, NUL
    bytes, symlinks leaving the roots and non-files are refused.
    """
    if not raw or not raw.strip():
        raise PlanError("script_path", "script_path is required.", "required")
    path_check(raw, field="script_path", error=PlanError)  # NUL, overlong path or name
    if ".." in Path(raw).parts:
        raise PlanError("script_path", "script_path must not contain '..'.", "invalid_path")
    candidate = Path(raw) if os.path.isabs(raw) else Path(roots[0]) / raw if roots else Path(raw)
    real = os.path.realpath(candidate)
    if not within_roots(real, roots):
        raise PlanError(
            "script_path",
            f"{raw} is outside the allowed roots ({os.pathsep.join(str(r) for r in roots)}).",
            "path_not_allowed",
        )
    if not os.path.exists(real):
        raise PlanError("script_path", f"{raw} does not exist.", "not_found")
    if not os.path.isfile(real):
        raise PlanError("script_path", f"{raw} is not a regular file.", "not_a_file")
    return Path(real)


def resolve_working_dir(raw: str | None, script: Path, roots: Sequence[Path]) -> Path:
    if not raw:
        return script.parent
    path_check(raw, field="working_dir", error=PlanError)  # NUL, overlong path or name
    if ".." in Path(raw).parts:
        raise PlanError("working_dir", "working_dir must not contain '..'.", "invalid_path")
    real = os.path.realpath(raw if os.path.isabs(raw) else script.parent / raw)
    if not within_roots(real, roots):
        raise PlanError("working_dir", f"{raw} is outside the allowed roots.", "path_not_allowed")
    if not os.path.isdir(real):
        raise PlanError("working_dir", f"{raw} is not a directory.", "not_a_directory")
    return Path(real)


# A first line that runs Python: "#!/usr/bin/env python3", "#!/usr/bin/python3.11 -u",
# "#!/usr/bin/env -S python3 -u", "#!/opt/venv/bin/pypy3".
_PYTHON_SHEBANG = re.compile(rb"#!.*?[/\s](?:python|pypy)[\d.]*(?:\s|$)")


def is_python_script(script: Path) -> bool:
    """A ``.py`` file, or one whose shebang runs Python (an executable without extension):
    its run gets unbuffered UTF-8 output (:func:`base_environment`)."""
    if script.suffix.lower() == ".py":
        return True
    try:
        with open(script, "rb") as fh:
            first_line = fh.readline(256)
    except OSError:
        return False
    return _PYTHON_SHEBANG.match(first_line) is not None


def interpreter_for(script: Path, *, python: str) -> list[str]:
    """The command prefix that runs ``script``: never a shell string."""
    suffix = script.suffix.lower()
    if suffix == ".py":
        return [python, "-u", str(script)]
    if suffix == ".sh":
        bash = shutil.which("bash") or "/bin/bash"
        return [bash, str(script)]
    if os.access(script, os.X_OK):
        return [str(script)]
    raise PlanError(
        "script_path",
        f"{script.name} is neither .py nor .sh and is not executable.",
        "not_executable",
    )


def check_env_vars(env_vars: Mapping[str, object], deny: Sequence[str]) -> dict[str, str]:
    """Validate names and values; refuse names on the deny list (glob patterns)."""
    clean: dict[str, str] = {}
    for name, value in env_vars.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise PlanError("env_vars", f"{name!r} is not a valid environment variable name.")
        for pattern in deny:
            if fnmatch.fnmatchcase(name, pattern):
                raise PlanError(
                    "env_vars", f"{name} is not allowed (matches deny pattern {pattern}).", "denied"
                )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PlanError("env_vars", f"{name}: the value must be a string or a number.")
        text = str(value)
        if _has_nul(text):
            raise PlanError("env_vars", f"{name}: the value contains a NUL byte.")
        clean[name] = text
    return clean


def base_environment(
    *, run_id: str, correlation_id: str, log_level: str, path: str, python_script: bool
) -> dict[str, str]:
    """The minimal environment a script gets; nothing of the server's own leaks in."""
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", "/"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TZ": os.environ.get("TZ", "UTC"),
        "SCRIPTOPS_RUN_ID": run_id,
        "SCRIPTOPS_CORRELATION_ID": correlation_id,
        "SCRIPTOPS_LOG_LEVEL": log_level,
    }
    if python_script:
        # Unbuffered, UTF-8 output: lines reach the viewer as they are printed.
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
    return env


@dataclass
class RetryPolicy:
    enabled: bool = False
    max_attempts: int = 3
    strategy: str = "exponential"
    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    max_time: float = 300.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed."""
        n = max(1, attempt)
        if self.strategy == "linear":
            raw = self.initial_delay * n
        elif self.strategy == "fibonacci":
            a, b = 1, 1
            for _ in range(n - 1):
                a, b = b, a + b
            raw = self.initial_delay * a
        else:
            raw = self.initial_delay * self.multiplier ** (n - 1)
            if self.strategy == "exponential_jitter":
                # "Equal jitter": half fixed, half random, so delays never collapse to 0.
                # Clamp first: jittering the unclamped value and clamping after would
                # pin every delay to max_delay once raw >= 2 * max_delay, and waiting
                # runs would retry in lockstep, which jitter is there to prevent.
                base = min(raw, self.max_delay)
                return base / 2 + self.rng.uniform(0, base / 2)
        return min(raw, self.max_delay)

    def schedule(self) -> list[float]:
        """Delays before each retry, as far as ``max_attempts`` and ``max_time`` allow
        (for jitter: the upper bounds)."""
        if not self.enabled:
            return []
        out: list[float] = []
        spent = 0.0
        for attempt in range(1, self.max_attempts):
            d = (
                self.delay(attempt)
                if self.strategy != "exponential_jitter"
                else min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
            )
            if spent + d > self.max_time:
                break
            out.append(round(d, 3))
            spent += d
        return out
