"""POST /api/run: every bad input is a 400 JSON error naming the problem, never a 500."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.roles import Role
from runs.models import EventKind, Run, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client_for) -> APIClient:
    return client_for(Role.EXECUTOR)


@pytest.fixture
def script(make_script: Callable[..., Path]) -> Path:
    return make_script("job.py", "print('hello')\n")


def post(client: APIClient, body: Any) -> Any:
    return client.post("/api/run", body, format="json")


def assert_400(response: Any, field: str | None = None, *, text: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["message"]
    if field is not None:
        assert field in body["details"], body
    if text is not None:
        assert text in str(body), body
    assert not Run.objects.exists()
    return body


# -- the happy path -------------------------------------------------------------------


def test_valid_request_queues_a_run(client: APIClient, script: Path) -> None:
    response = post(client, {"script_path": str(script), "args": ["a", "b c"], "timeout": 30})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["run_status"] is None
    assert body["args"] == ["a", "b c"]
    assert body["created_by"] == "executor-user"
    run = Run.objects.get(pk=body["id"])
    assert run.status == RunStatus.QUEUED
    assert run.script_path == str(script)
    assert list(run.events.values_list("kind", flat=True)) == [EventKind.QUEUED]


def test_relative_path_is_taken_from_the_first_root(client: APIClient, script: Path) -> None:
    response = post(client, {"script_path": "job.py"})
    assert response.status_code == 202
    assert response.json()["script_path"] == str(script)


def test_path_alias_is_accepted(client: APIClient, script: Path) -> None:
    response = post(client, {"path": str(script)})
    assert response.status_code == 202
    assert Run.objects.get().script_path == str(script)


def test_string_args_are_shell_split_without_a_shell(client: APIClient, script: Path) -> None:
    response = post(client, {"script_path": str(script), "args": "--name 'two words' $HOME;rm"})
    assert response.status_code == 202
    assert Run.objects.get().args == ["--name", "two words", "$HOME;rm"]


def test_number_args_become_strings(client: APIClient, script: Path) -> None:
    assert post(client, {"script_path": str(script), "args": [1, 2.5]}).status_code == 202
    assert Run.objects.get().args == ["1", "2.5"]


def test_env_var_values_are_never_returned(client: APIClient, script: Path) -> None:
    response = post(client, {"script_path": str(script), "env_vars": {"TOKEN": "s3cret", "N": 3}})
    assert response.status_code == 202
    assert response.json()["env_vars"] == {"TOKEN": "********", "N": "********"}
    assert "s3cret" not in response.content.decode()
    assert Run.objects.get().env_vars == {"TOKEN": "s3cret", "N": "3"}


def test_unsupported_fields_at_their_defaults_are_accepted(client: APIClient, script: Path) -> None:
    body = {
        "script_path": str(script),
        "enable_visualizer": False,
        "visualizer_format": "text",
        "history_db": None,
        "performance_gates": [],
        "alerts": [],
        "junit_output": None,
        "save_baseline": None,
        "load_baseline": None,
        "slack_webhook": None,
        "enable_code_analysis": False,
        "enable_secret_scanning": False,
        "enable_dependency_scanning": False,
        "enable_cost_tracking": False,
    }
    assert post(client, body).status_code == 202


# -- dry run -----------------------------------------------------------------------------


def test_dry_run_returns_the_plan_and_starts_nothing(client: APIClient, script: Path) -> None:
    response = post(
        client,
        {
            "script_path": str(script),
            "args": ["x"],
            "timeout": 12,
            "env_vars": {"MY_VAR": "1"},
            "retry_on_failure": True,
            "retry_max_attempts": 4,
            "retry_strategy": "linear",
            "retry_initial_delay": 2,
            "dry_run": True,
        },
    )
    assert response.status_code == 200
    plan = response.json()
    assert plan["dry_run"] is True
    assert plan["command"][-2:] == [str(script), "x"]
    assert plan["cwd"] == str(script.parent)
    assert "MY_VAR" in plan["env"]
    assert "1" not in plan["env"]
    assert plan["timeout"] == 12
    assert plan["retry_delays"] == [2.0, 4.0, 6.0]
    assert plan["max_attempts"] == 4
    assert not Run.objects.exists()


def test_dry_run_still_validates(client: APIClient, roots: Path) -> None:
    assert_400(post(client, {"script_path": "missing.py", "dry_run": True}), "script_path")


def test_dry_run_of_a_shell_script_uses_bash(client: APIClient, make_script) -> None:
    script = make_script("job.sh", "echo hi\n")
    plan = post(client, {"script_path": str(script), "dry_run": True}).json()
    assert plan["command"][0].endswith("bash")
    assert plan["retry_delays"] == []


# -- body shape ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], ["job.py"], "job.py", 42, None, True])
def test_body_that_is_not_an_object_is_400(client: APIClient, roots: Path, body: Any) -> None:
    assert_400(post(client, body))


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b"", b'{"script_path": "a.py",}', b"\xff\xfe", b"[" * 100_000]
)
def test_invalid_json_is_400(client: APIClient, roots: Path, raw: bytes) -> None:
    response = client.post("/api/run", raw, content_type="application/json")
    assert_400(response)


def test_nan_literal_is_400(client: APIClient, script: Path) -> None:
    raw = f'{{"script_path": "{script}", "timeout": NaN}}'.encode()
    assert_400(client.post("/api/run", raw, content_type="application/json"))


def test_unknown_content_type_is_415_json(client: APIClient, roots: Path) -> None:
    response = client.post("/api/run", b"script_path: a.py", content_type="application/yaml")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_form_encoded_request_is_understood(client: APIClient, script: Path) -> None:
    response = client.post("/api/run", {"script_path": str(script), "timeout": "5"})
    assert response.status_code == 202, response.content
    assert Run.objects.get().timeout == 5


def test_html_form_csrf_field_is_not_an_unknown_field(client: APIClient, script: Path) -> None:
    body = {"script_path": str(script), "csrfmiddlewaretoken": "x" * 32}
    assert client.post("/api/run", body).status_code == 202


def test_missing_script_path_is_400(client: APIClient, roots: Path) -> None:
    assert_400(post(client, {}), "script_path")
    assert_400(post(client, {"args": []}), "script_path")


@pytest.mark.parametrize("name", ["scriptpath", "foo", "__proto__", "id", "status"])
def test_unknown_fields_are_400_naming_them(client: APIClient, script: Path, name: str) -> None:
    body = assert_400(post(client, {"script_path": str(script), name: 1}), name)
    assert name in body["message"] or name in str(body["details"])


def test_all_unknown_fields_are_named(client: APIClient, script: Path) -> None:
    body = assert_400(post(client, {"script_path": str(script), "foo": 1, "bar": 2}))
    assert {"foo", "bar"} <= set(body["details"])


# -- field types ---------------------------------------------------------------------------

BAD_VALUES: list[tuple[str, Any]] = [
    ("script_path", ["a.py"]),
    ("script_path", {"p": 1}),
    ("script_path", None),
    ("script_path", ""),
    ("script_path", "x" * 5000),
    ("args", {"a": 1}),
    ("args", 5),
    ("args", [["nested"]]),
    ("args", [None]),
    ("args", [True]),
    ("args", "unbalanced 'quote"),
    ("args", ["a\x00b"]),
    ("args", ["x"] * 1001),
    ("timeout", "soon"),
    ("timeout", -1),
    ("timeout", 0),
    ("timeout", "nan"),
    ("timeout", "inf"),
    ("timeout", "-inf"),
    ("timeout", 10**400),
    ("timeout", [1]),
    ("timeout", True),
    ("log_level", "LOUD"),
    ("log_level", 3),
    ("retry_on_failure", "maybe"),
    ("retry_on_failure", [True]),
    ("retry_max_attempts", "three"),
    ("retry_max_attempts", 0),
    ("retry_max_attempts", -2),
    ("retry_max_attempts", 2.5),
    ("retry_max_attempts", 10**30),
    ("retry_strategy", "random"),
    ("retry_strategy", None),
    ("retry_initial_delay", "x"),
    ("retry_initial_delay", -1),
    ("retry_initial_delay", "nan"),
    ("retry_max_delay", "Infinity"),
    ("retry_multiplier", 0.5),
    ("retry_multiplier", "NaN"),
    ("retry_max_time", -5),
    ("retry_max_time", "nan"),
    ("working_dir", ["dir"]),
    ("stream_output", "often"),
    ("monitor_interval", 0),
    ("monitor_interval", "fast"),
    ("monitor_interval", "nan"),
    ("env_vars", ["A=1"]),
    ("env_vars", "A=1"),
    ("env_vars", None),
    ("env_vars", {"A": None}),
    ("env_vars", {"A": {"nested": 1}}),
    ("env_vars", {"A": True}),
    ("env_vars", {"A": "a\x00b"}),
    ("enable_history", "sometimes"),
    ("dry_run", "perhaps"),
]


@pytest.mark.parametrize(
    ("field", "value"), BAD_VALUES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_VALUES)]
)
def test_malformed_field_is_400(client: APIClient, script: Path, field: str, value: Any) -> None:
    body = {"script_path": str(script), field: value}
    result = assert_400(post(client, body), field)
    assert result["error"] in ("validation_error", "invalid")


@pytest.mark.parametrize("field", ["timeout", "retry_max_delay", "retry_multiplier", "monitor_interval"])
@pytest.mark.parametrize("literal", ["1e400", "-1e400", "Infinity", "-Infinity"])
def test_json_numbers_that_overflow_to_infinity_are_400(
    client: APIClient, script: Path, field: str, literal: str
) -> None:
    raw = f'{{"script_path": "{script}", "{field}": {literal}}}'.encode()
    assert_400(client.post("/api/run", raw, content_type="application/json"))


def test_strings_for_numbers_and_booleans_are_coerced(client: APIClient, script: Path) -> None:
    body = {
        "script_path": str(script),
        "timeout": "2.5",
        "retry_max_attempts": "5",
        "retry_on_failure": "true",
        "monitor_interval": "0.5",
    }
    assert post(client, body).status_code == 202
    run = Run.objects.get()
    assert (run.timeout, run.retry_max_attempts, run.retry_on_failure) == (2.5, 5, True)


def test_max_delay_below_initial_delay_is_400(client: APIClient, script: Path) -> None:
    body = {"script_path": str(script), "retry_initial_delay": 10, "retry_max_delay": 1}
    assert_400(post(client, body), "retry_max_delay")


def test_null_timeout_means_no_timeout(client: APIClient, script: Path) -> None:
    assert post(client, {"script_path": str(script), "timeout": None}).status_code == 202
    assert Run.objects.get().timeout is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("enable_visualizer", True),
        ("visualizer_format", "json"),
    ],
)
def test_unsupported_fields_with_values_are_400(
    client: APIClient, script: Path, field: str, value: Any
) -> None:
    body = assert_400(post(client, {"script_path": str(script), field: value}), field)
    assert "not supported yet" in body["details"][field][0]


# -- environment variables ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "BASH_ENV",
        "ENV",
        "IFS",
        "SHELLOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "SCRIPTOPS_RUN_ID",
    ],
)
def test_denied_env_var_is_400_naming_it(client: APIClient, script: Path, name: str) -> None:
    body = assert_400(
        post(client, {"script_path": str(script), "env_vars": {"OK": "1", name: "x"}}), "env_vars"
    )
    assert name in body["message"]
    assert name in str(body["details"]["env_vars"])


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A=B", "É", "A\x00"])
def test_invalid_env_var_name_is_400_naming_it(client: APIClient, script: Path, name: str) -> None:
    body = assert_400(post(client, {"script_path": str(script), "env_vars": {name: "x"}}), "env_vars")
    assert repr(name) in body["details"]["env_vars"][0]


# -- paths ---------------------------------------------------------------------------------------


def test_traversal_is_400(client: APIClient, roots: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.py").write_text("print(1)\n")
    assert_400(post(client, {"script_path": "../outside.py"}), "script_path", text="..")
    assert_400(post(client, {"script_path": f"{roots}/../outside.py"}), "script_path")
    assert_400(post(client, {"script_path": "sub/../../outside.py"}), "script_path")


def test_absolute_path_outside_the_roots_is_400(client: APIClient, roots: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("print(1)\n")
    assert_400(post(client, {"script_path": str(outside)}), "script_path", text="outside the allowed roots")
    assert_400(post(client, {"script_path": "/etc/passwd"}), "script_path")


def test_root_prefix_sibling_is_outside(client: APIClient, roots: Path) -> None:
    sibling = roots.parent / (roots.name + "-evil")
    sibling.mkdir()
    (sibling / "x.py").write_text("print(1)\n")
    assert_400(post(client, {"script_path": str(sibling / "x.py")}), "script_path")


def test_nul_byte_in_path_is_400(client: APIClient, script: Path) -> None:
    assert_400(post(client, {"script_path": str(script) + "\x00.txt"}), "script_path")
    assert_400(post(client, {"script_path": str(script), "working_dir": "a\x00b"}), "working_dir")


def test_symlink_escaping_the_root_is_400(client: APIClient, roots: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text("print(1)\n")
    (roots / "link.py").symlink_to(outside)
    (roots / "linkdir").symlink_to(tmp_path)
    assert_400(post(client, {"script_path": "link.py"}), "script_path", text="outside")
    assert_400(post(client, {"script_path": "linkdir/secret.py"}), "script_path")


def test_symlink_staying_inside_the_root_is_fine(client: APIClient, script: Path, roots: Path) -> None:
    (roots / "alias.py").symlink_to(script)
    assert post(client, {"script_path": "alias.py"}).status_code == 202


def test_directory_is_400(client: APIClient, roots: Path) -> None:
    (roots / "folder").mkdir()
    assert_400(post(client, {"script_path": "folder"}), "script_path", text="not a regular file")
    assert_400(post(client, {"script_path": str(roots)}), "script_path")


def test_missing_file_is_400(client: APIClient, roots: Path) -> None:
    assert_400(post(client, {"script_path": "nope.py"}), "script_path", text="does not exist")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_400(client: APIClient, roots: Path) -> None:
    os.mkfifo(roots / "pipe.py")
    assert_400(post(client, {"script_path": "pipe.py"}), "script_path")


def test_non_executable_unknown_kind_is_400(client: APIClient, make_script) -> None:
    make_script("data.txt", "hello\n", mode=0o644)
    assert_400(post(client, {"script_path": "data.txt"}), "script_path")


def test_working_dir_outside_the_roots_is_400(client: APIClient, script: Path, tmp_path: Path) -> None:
    body = {"script_path": str(script), "working_dir": str(tmp_path)}
    assert_400(post(client, body), "working_dir", text="outside the allowed roots")
    assert_400(post(client, {"script_path": str(script), "working_dir": "/"}), "working_dir")
    assert_400(post(client, {"script_path": str(script), "working_dir": ".."}), "working_dir")


def test_working_dir_that_is_a_file_is_400(client: APIClient, script: Path) -> None:
    assert_400(post(client, {"script_path": str(script), "working_dir": str(script)}), "working_dir")


def test_working_dir_inside_the_roots_is_used(client: APIClient, script: Path, roots: Path) -> None:
    (roots / "work").mkdir()
    plan = post(client, {"script_path": str(script), "working_dir": "work", "dry_run": True}).json()
    assert plan["cwd"] == str(roots / "work")


def test_uploads_root_is_an_allowed_root(client: APIClient, roots: Path, settings) -> None:
    uploaded = Path(settings.UPLOADS_ROOT) / "abc" / "up.py"
    uploaded.parent.mkdir(parents=True)
    uploaded.write_text("print(1)\n")
    assert post(client, {"script_path": str(uploaded)}).status_code == 202
