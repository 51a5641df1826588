"""From a run request to an execution plan: paths, interpreter, environment, retries."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runs.plan import (
    PlanError,
    RetryPolicy,
    base_environment,
    check_env_vars,
    interpreter_for,
    is_python_script,
    resolve_script,
    resolve_working_dir,
    within_roots,
)

DENY = ["LD_*", "DYLD_*", "PYTHONPATH", "BASH_ENV", "ENV", "IFS", "SCRIPTOPS_*"]


# -- resolve_script -----------------------------------------------------------------------


def test_relative_path_resolves_against_the_first_root(make_script: Callable[..., Path], roots: Path):
    script = make_script("jobs/nightly.sh", "echo hi\n")

    assert resolve_script("jobs/nightly.sh", [roots]) == script.resolve()
    assert resolve_script(str(script), [roots]) == script.resolve()


def test_script_in_a_second_root_is_allowed(tmp_path: Path, roots: Path):
    other = tmp_path / "other-root"
    other.mkdir()
    (other / "x.sh").write_text("echo x\n")

    assert resolve_script(str(other / "x.sh"), [roots, other]) == (other / "x.sh").resolve()


@pytest.mark.parametrize("raw", ["../etc/passwd", "jobs/../../secret.sh", "/tmp/../etc/passwd"])
def test_dot_dot_is_refused_even_when_it_would_stay_inside(
    raw: str, make_script: Callable[..., Path], roots: Path
):
    make_script("jobs/a.sh", "echo a\n")
    with pytest.raises(PlanError) as err:
        resolve_script(raw, [roots])
    assert (err.value.field, err.value.code) == ("script_path", "invalid_path")
    assert "'..'" in err.value.message


def test_dot_dot_inside_the_root_is_refused_too(make_script: Callable[..., Path], roots: Path):
    make_script("a.sh", "echo a\n")
    with pytest.raises(PlanError, match=r"must not contain '\.\.'"):
        resolve_script("jobs/../a.sh", [roots])


def test_nul_byte_is_refused(roots: Path):
    with pytest.raises(PlanError) as err:
        resolve_script("a.sh\x00.txt", [roots])
    assert err.value.code == "invalid_path"
    assert "NUL" in err.value.message


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_path_is_required(raw: str, roots: Path):
    with pytest.raises(PlanError) as err:
        resolve_script(raw, [roots])
    assert err.value.code == "required"


def test_symlink_inside_the_root_pointing_outside_is_refused(tmp_path: Path, roots: Path):
    outside = tmp_path / "outside.sh"
    outside.write_text("echo escaped\n")
    (roots / "innocent.sh").symlink_to(outside)

    with pytest.raises(PlanError) as err:
        resolve_script("innocent.sh", [roots])
    assert err.value.code == "path_not_allowed"
    assert "outside the allowed roots" in err.value.message


def test_symlink_staying_inside_the_root_resolves_to_its_target(
    make_script: Callable[..., Path], roots: Path
):
    target = make_script("real.sh", "echo real\n")
    (roots / "alias.sh").symlink_to(target)

    assert resolve_script("alias.sh", [roots]) == target.resolve()


def test_absolute_path_outside_the_roots_is_refused(tmp_path: Path, roots: Path):
    outside = tmp_path / "elsewhere.sh"
    outside.write_text("echo\n")
    with pytest.raises(PlanError) as err:
        resolve_script(str(outside), [roots])
    assert err.value.code == "path_not_allowed"


def test_a_sibling_sharing_the_root_prefix_is_outside(tmp_path: Path, roots: Path):
    sibling = tmp_path / (roots.name + "-evil")  # ".../scripts-evil" starts with ".../scripts"
    sibling.mkdir()
    (sibling / "x.sh").write_text("echo\n")

    with pytest.raises(PlanError) as err:
        resolve_script(str(sibling / "x.sh"), [roots])
    assert err.value.code == "path_not_allowed"
    assert not within_roots(str(sibling), [roots])
    assert within_roots(os.path.realpath(roots), [roots])


def test_directory_is_refused(roots: Path):
    (roots / "folder").mkdir()
    with pytest.raises(PlanError) as err:
        resolve_script("folder", [roots])
    assert err.value.code == "not_a_file"


def test_missing_file_is_refused(roots: Path):
    with pytest.raises(PlanError) as err:
        resolve_script("missing.py", [roots])
    assert err.value.code == "not_found"
    assert "missing.py does not exist" in err.value.message


# -- working_dir -----------------------------------------------------------------------------


def test_working_dir_defaults_to_the_script_folder(make_script: Callable[..., Path], roots: Path):
    script = make_script("jobs/a.sh", "echo\n")
    assert resolve_working_dir(None, script, [roots]) == script.parent
    assert resolve_working_dir("", script, [roots]) == script.parent


def test_working_dir_inside_the_roots_absolute_or_relative_to_the_script(
    make_script: Callable[..., Path], roots: Path
):
    script = make_script("jobs/a.sh", "echo\n")
    (roots / "jobs" / "data").mkdir()

    assert resolve_working_dir("data", script, [roots]) == (roots / "jobs" / "data").resolve()
    assert resolve_working_dir(str(roots), script, [roots]) == roots.resolve()


@pytest.mark.parametrize(
    ("raw", "code"),
    [("/", "path_not_allowed"), ("../..", "invalid_path"), ("a\x00b", "invalid_path")],
)
def test_working_dir_outside_the_roots_is_refused(
    raw: str, code: str, make_script: Callable[..., Path], roots: Path
):
    script = make_script("a.sh", "echo\n")
    with pytest.raises(PlanError) as err:
        resolve_working_dir(raw, script, [roots])
    assert (err.value.field, err.value.code) == ("working_dir", code)


def test_working_dir_symlink_escaping_the_roots_is_refused(
    tmp_path: Path, make_script: Callable[..., Path], roots: Path
):
    script = make_script("a.sh", "echo\n")
    (roots / "out").symlink_to(tmp_path)
    with pytest.raises(PlanError) as err:
        resolve_working_dir("out", script, [roots])
    assert err.value.code == "path_not_allowed"


def test_working_dir_must_be_a_directory(make_script: Callable[..., Path], roots: Path):
    script = make_script("a.sh", "echo\n")
    with pytest.raises(PlanError) as err:
        resolve_working_dir("a.sh", script, [roots])
    assert err.value.code == "not_a_directory"


# -- interpreter -------------------------------------------------------------------------------


def test_python_scripts_run_unbuffered_with_the_configured_python(make_script: Callable[..., Path]):
    script = make_script("job.py", "print(1)\n", mode=0o644)
    assert interpreter_for(script, python=sys.executable) == [sys.executable, "-u", str(script)]


def test_shell_scripts_run_with_bash_even_when_not_executable(make_script: Callable[..., Path]):
    script = make_script("job.SH", "echo\n", mode=0o644)
    command = interpreter_for(script, python=sys.executable)
    assert Path(command[0]).name == "bash"
    assert command[1:] == [str(script)]


def test_other_executable_files_run_themselves(make_script: Callable[..., Path]):
    script = make_script("job.rb", "#!/bin/sh\necho\n", mode=0o755)
    assert interpreter_for(script, python=sys.executable) == [str(script)]


def test_non_executable_file_of_another_kind_is_refused(make_script: Callable[..., Path]):
    script = make_script("notes.txt", "hello\n", mode=0o644)
    with pytest.raises(PlanError) as err:
        interpreter_for(script, python=sys.executable)
    assert (err.value.field, err.value.code) == ("script_path", "not_executable")
    assert "notes.txt" in err.value.message


# -- environment ------------------------------------------------------------------------------


def test_valid_env_vars_are_kept_as_strings():
    assert check_env_vars({"GREETING": "hi", "COUNT": 3, "_RATIO": 0.5}, DENY) == {
        "GREETING": "hi",
        "COUNT": "3",
        "_RATIO": "0.5",
    }


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "É", "A=B"])
def test_invalid_env_var_names_are_refused_by_name(name: str):
    with pytest.raises(PlanError) as err:
        check_env_vars({name: "x"}, DENY)
    assert err.value.field == "env_vars"
    assert repr(name) in err.value.message


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("LD_PRELOAD", "LD_*"),
        ("LD_LIBRARY_PATH", "LD_*"),
        ("DYLD_X", "DYLD_*"),
        ("PYTHONPATH", "PYTHONPATH"),
        ("BASH_ENV", "BASH_ENV"),
        ("ENV", "ENV"),
        ("IFS", "IFS"),
        ("SCRIPTOPS_RUN_ID", "SCRIPTOPS_*"),
    ],
)
def test_denied_env_vars_are_refused_naming_the_variable(name: str, pattern: str):
    with pytest.raises(PlanError) as err:
        check_env_vars({"FINE": "1", name: "x"}, DENY)
    assert (err.value.field, err.value.code) == ("env_vars", "denied")
    assert err.value.message == f"{name} is not allowed (matches deny pattern {pattern})."


def test_deny_patterns_match_whole_names_case_sensitively():
    assert check_env_vars({"MY_ENV": "1", "ENVIRONMENT": "2", "ld_preload": "3"}, DENY) == {
        "MY_ENV": "1",
        "ENVIRONMENT": "2",
        "ld_preload": "3",
    }


@pytest.mark.parametrize("value", [None, True, ["a"], {"a": 1}, "nul\x00byte"])
def test_env_values_must_be_plain_strings_or_numbers(value: object):
    with pytest.raises(PlanError) as err:
        check_env_vars({"NAME": value}, DENY)
    assert err.value.message.startswith("NAME: ")


def test_base_environment_is_minimal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", "/home/ops")
    monkeypatch.setenv("SCRIPTOPS_SECRET_KEY", "do-not-leak")
    env = base_environment(
        run_id="r1", correlation_id="c1", log_level="INFO", path="/bin", python_script=False
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/ops",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TZ": os.environ.get("TZ", "UTC"),
        "SCRIPTOPS_RUN_ID": "r1",
        "SCRIPTOPS_CORRELATION_ID": "c1",
        "SCRIPTOPS_LOG_LEVEL": "INFO",
    }
    py = base_environment(run_id="r1", correlation_id="c1", log_level="INFO", path="/bin", python_script=True)
    assert py == {**env, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


# -- retry policy ------------------------------------------------------------------------------


def policy(strategy: str, **kw: float) -> RetryPolicy:
    return RetryPolicy(enabled=True, strategy=strategy, rng=random.Random(7), **kw)  # type: ignore[arg-type]


def test_linear_delays_grow_by_the_initial_delay():
    p = policy("linear", initial_delay=2.0)
    assert [p.delay(n) for n in range(1, 6)] == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_exponential_delays_multiply():
    p = policy("exponential", initial_delay=1.0, multiplier=3.0)
    assert [p.delay(n) for n in range(1, 5)] == [1.0, 3.0, 9.0, 27.0]


def test_fibonacci_delays_follow_the_sequence():
    p = policy("fibonacci", initial_delay=0.5)
    assert [p.delay(n) for n in range(1, 8)] == [0.5, 0.5, 1.0, 1.5, 2.5, 4.0, 6.5]


def test_exponential_jitter_stays_between_half_and_all_of_the_exponential_delay():
    p = policy("exponential_jitter", initial_delay=1.0, multiplier=2.0, max_delay=1000.0)
    for n in range(1, 8):
        delays = {p.delay(n) for _ in range(200)}
        upper = 2.0 ** (n - 1)
        assert all(upper / 2 <= d <= upper for d in delays)
        assert len(delays) > 100  # really random


def test_exponential_jitter_is_reproducible_with_a_seeded_rng():
    first = policy("exponential_jitter", initial_delay=1.0)
    second = policy("exponential_jitter", initial_delay=1.0)
    assert [first.delay(n) for n in range(1, 6)] == [second.delay(n) for n in range(1, 6)]


@pytest.mark.parametrize("strategy", ["linear", "exponential", "fibonacci"])
def test_max_delay_clamps_every_strategy(strategy: str):
    p = policy(strategy, initial_delay=1.0, max_delay=5.0)
    assert [p.delay(n) for n in range(1, 12)][-1] == 5.0
    assert max(p.delay(n) for n in range(1, 12)) == 5.0


def test_exponential_jitter_still_jitters_once_clamped():
    # The clamp applies before the jitter: far past max_delay, delays still spread over
    # [max_delay / 2, max_delay] instead of collapsing onto max_delay (every waiting run
    # retrying in lockstep is what jitter is there to prevent).
    p = policy("exponential_jitter", initial_delay=1.0, multiplier=2.0, max_delay=10.0)
    delays = [p.delay(20) for _ in range(100)]
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert len(set(delays)) > 50


def test_schedule_lists_one_delay_per_retry():
    assert policy("linear", initial_delay=1.0, max_attempts=4).schedule() == [1.0, 2.0, 3.0]
    assert policy("exponential", initial_delay=0.5, max_attempts=1).schedule() == []


def test_schedule_is_empty_when_retries_are_disabled():
    assert RetryPolicy(enabled=False, max_attempts=5).schedule() == []


def test_schedule_stops_when_max_time_would_be_passed():
    # 1 + 2 + 4 = 7 fits in 10 s; the next (8) would end at 15.
    p = policy("exponential", initial_delay=1.0, max_attempts=10, max_time=10.0)
    assert p.schedule() == [1.0, 2.0, 4.0]


def test_schedule_for_jitter_gives_the_upper_bounds():
    p = policy("exponential_jitter", initial_delay=1.0, max_delay=5.0, max_attempts=6)
    assert p.schedule() == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("first_line", "python"),
    [
        (b"#!/usr/bin/env python3\n", True),
        (b"#!/usr/bin/python3.11 -u\n", True),
        (b"#!/usr/bin/env -S python3 -u\n", True),
        (b"#!/opt/venv/bin/pypy3\n", True),
        (b"#!/bin/bash\n", False),
        (b"#!/usr/bin/env node\n", False),
        (b"print('no shebang')\n", False),
    ],
)
def test_a_script_without_extension_is_python_by_its_shebang(
    tmp_path, first_line: bytes, python: bool
) -> None:
    script = tmp_path / "job"
    script.write_bytes(first_line + b"print(1)\n")
    assert is_python_script(script) is python
    assert is_python_script(tmp_path / "any.py") is True  # by its extension, even unread
