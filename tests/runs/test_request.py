"""One run request: ``run_request_clean`` and ``plan_resolve`` in plain Python, and the
callers that share them (the API's serializer, a library script's run, a scheduled task,
the worker)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.errors import InvalidInput
from core.roles import Role
from runs.models import Run
from runs.plan import PlanError
from runs.request import RunRequest, RunRequestInvalid, dry_run_answer, plan_resolve, run_request_clean
from runs.serializers import RunRequestSerializer
from runs.services.execution import build_plan


@pytest.fixture
def script(make_script: Callable[..., Path]) -> Path:
    return make_script("job.py", "print('hello')\n")


# -- run_request_clean ------------------------------------------------------------------------


def test_a_clean_request_is_typed_with_defaults_and_the_real_path(script: Path) -> None:
    request = run_request_clean({"path": "job.py", "args": "-v 'two words'", "timeout": "2.5"})

    assert request == RunRequest(script_path=str(script), args=("-v", "two words"), timeout=2.5)
    assert (request.log_level, request.retry_max_attempts, request.env_vars) == ("INFO", 3, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.timeout = 3  # type: ignore[misc]  # the point: it is frozen
    assert request.run_fields()["args"] == ["-v", "two words"]
    assert "dry_run" not in request.run_fields()


def test_refusals_name_every_bad_field_with_its_code(script: Path) -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), "timeout": 0, "log_level": "LOUD", "args": 5})

    exc = err.value
    assert isinstance(exc, PlanError) and isinstance(exc, InvalidInput)  # a 400 through the API
    assert exc.fields == {
        "args": ["args must be a list of strings (or one string of arguments)."],
        "timeout": ["Ensure this value is greater than or equal to 0.1."],
        "log_level": ['"LOUD" is not a valid choice.'],
    }
    assert (exc.field, exc.code) == ("args", "invalid")
    assert [p.code for p in exc.problems["log_level"]] == ["invalid_choice"]  # type: ignore[union-attr]


def test_unknown_and_unsupported_fields_are_refused_before_the_values(script: Path) -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean(
            {"script_path": str(script), "enable_visualizer": True, "foo": 1, "timeout": "soon"}
        )
    assert err.value.fields == {
        "enable_visualizer": ["enable_visualizer is not supported yet."],
        "foo": ["Unknown field 'foo'."],
    }


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean(["job.py"])
    assert err.value.fields == {"non_field_errors": ["Expected a JSON object with the run request's fields."]}


def test_path_problems_carry_the_plan_code(roots: Path) -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": "missing.py"})
    assert (err.value.field, err.value.code) == ("script_path", "not_found")


def test_null_env_values_are_named_per_variable(script: Path) -> None:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), "env_vars": {"A": None, "B": "1"}})
    assert err.value.fields == {"env_vars": ["A: This field may not be null."]}


def test_max_delay_is_checked_after_the_path(script: Path, roots: Path) -> None:
    delays = {"retry_initial_delay": 10, "retry_max_delay": 1}
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": "missing.py", **delays})
    assert err.value.field == "script_path"
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), **delays})
    assert err.value.field == "retry_max_delay"


# -- plan_resolve ---------------------------------------------------------------------------------


def test_plan_resolve_gives_command_directory_and_environment(script: Path, roots: Path) -> None:
    (roots / "data").mkdir()
    request = run_request_clean({"script_path": str(script), "args": ["x"], "working_dir": "data"})

    plan = plan_resolve(
        request,
        run_id="r1",
        correlation_id="c1",
        system_env={"SCRIPTOPS_EVENT": "deploy", "LD_PRELOAD": "never"},
    )

    assert plan.command[-2:] == (str(script), "x")
    assert plan.cwd == (roots / "data").resolve()
    assert plan.env["SCRIPTOPS_RUN_ID"] == "r1" and plan.env["SCRIPTOPS_EVENT"] == "deploy"
    assert "LD_PRELOAD" not in plan.env  # system variables are SCRIPTOPS_* only


def test_plan_resolve_rechecks_the_file_system(script: Path) -> None:
    request = run_request_clean({"script_path": str(script)})
    script.unlink()
    with pytest.raises(PlanError) as err:
        plan_resolve(request)
    assert (err.value.field, err.value.code) == ("script_path", "not_found")


@pytest.mark.django_db
def test_the_worker_resolves_with_plan_resolve(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runs.services import execution

    seen: list[RunRequest] = []
    real = execution.plan_resolve

    def spy(request: RunRequest, **kwargs: object) -> object:
        seen.append(request)
        return real(request, **kwargs)  # type: ignore[arg-type]  # passed through as given

    monkeypatch.setattr(execution, "plan_resolve", spy)
    run = Run.objects.create(script_path=str(script), args=["a"], env_vars={"MODE": "x"})

    plan = build_plan(run)

    assert seen == [RunRequest.of_record(run.request_parameters())]
    assert plan["command"][-1] == "a" and plan["env"]["MODE"] == "x"
    assert plan["env"]["SCRIPTOPS_RUN_ID"] == str(run.pk)


def test_dry_run_answer_lists_environment_names_only(script: Path) -> None:
    request = run_request_clean(
        {"script_path": str(script), "env_vars": {"TOKEN": "s3cret"}, "dry_run": True}
    )
    answer = dry_run_answer(request)
    assert answer["dry_run"] is True and answer["cwd"] == str(script.parent)
    assert "TOKEN" in answer["env"] and "s3cret" not in str(answer)


# -- the callers ----------------------------------------------------------------------------------


def test_the_serializer_answers_the_domain_errors_with_their_codes(roots: Path) -> None:
    serializer = RunRequestSerializer(data={"script_path": "missing.py", "env_vars": {"A": None}})
    assert not serializer.is_valid()
    assert serializer.errors == {"env_vars": {"A": ["This field may not be null."]}}
    assert serializer.errors["env_vars"]["A"][0].code == "null"

    serializer = RunRequestSerializer(data={"script_path": "missing.py"})
    assert not serializer.is_valid()
    assert serializer.errors["script_path"][0].code == "not_found"


@pytest.mark.django_db  # the library's launch check looks the script up
def test_the_serializer_hands_over_the_request(script: Path) -> None:
    serializer = RunRequestSerializer(data={"script_path": "job.py", "timeout": 5})
    assert serializer.is_valid(), serializer.errors
    assert serializer.run_request == run_request_clean({"script_path": "job.py", "timeout": 5})
    assert serializer.run_params() == serializer.run_request.run_fields()


@pytest.mark.django_db
def test_a_library_run_is_checked_by_the_same_function(
    client_for: Callable[[str], APIClient], script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from library.models import FolderRoot, Script
    from runs import serializers as run_serializers

    root = FolderRoot.objects.create(path=str(script.parent), name="r")
    lib = Script.objects.create(root=root, path=str(script), relpath=script.name, name=script.name)
    calls: list[object] = []
    real = run_serializers.run_request_clean

    def spy(data: object) -> RunRequest:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(run_serializers, "run_request_clean", spy)
    client = client_for(Role.EXECUTOR)

    response = client.post(f"/api/library/scripts/{lib.pk}/run", {"timeout": 0}, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {"timeout": ["Ensure this value is greater than or equal to 0.1."]}
    assert calls == [{"timeout": 0, "script_path": str(script)}]


# -- analytics fields (issue 12) ------------------------------------------------------------------


def refused(script: Path, **fields: object) -> dict[str, list[str]]:
    with pytest.raises(RunRequestInvalid) as err:
        run_request_clean({"script_path": str(script), **fields})
    return err.value.fields


def test_analytics_fields_are_typed_with_their_defaults(script: Path) -> None:
    request = run_request_clean({"script_path": str(script)})
    assert (request.performance_gates, request.alerts, request.junit_output) == ((), (), False)
    assert (request.save_baseline, request.load_baseline, request.slack_webhook) == (None, None, None)
    assert (request.history_db, request.enable_cost_tracking) == (None, False)
    nulls = dict.fromkeys(("history_db", "performance_gates", "junit_output", "save_baseline", "alerts"))
    assert run_request_clean({"script_path": str(script), **nulls}) == request


def test_analytics_fields_are_checked_and_stored(script: Path) -> None:
    request = run_request_clean(
        {
            "script_path": str(script),
            "performance_gates": [
                {"metric": "rows", "max_value": 10},
                {"metric": "a.b-c", "min_value": -1.5, "max_value": 2},
            ],
            "junit_output": "true",
            "save_baseline": "release-1.0",
            "load_baseline": "v2_rc.1",
            "enable_cost_tracking": True,
        }
    )
    fields = request.run_fields()
    assert fields["performance_gates"] == [
        {"metric": "rows", "max_value": 10.0},
        {"metric": "a.b-c", "min_value": -1.5, "max_value": 2.0},
    ]
    assert (fields["junit_output"], fields["save_baseline"], fields["load_baseline"]) == (
        True,
        "release-1.0",
        "v2_rc.1",
    )
    assert fields["enable_cost_tracking"] is True and "history_db" not in fields


def test_history_db_is_refused_unless_null(script: Path) -> None:
    message = "history_db is not supported: run history lives in the main database"
    assert refused(script, history_db="/tmp/h.db") == {
        "history_db": [f"{message} (GET /api/analytics/history)."]
    }


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        ({"metric": "rows"}, "performance_gates must be a list"),
        ([{"metric": "rows", "max_value": 1}] * 51, "At most 50 performance gates."),
        (["rows"], "performance_gates[0] must be an object"),
        ([{"metric": "rows", "max": 1}], "performance_gates[0]: unknown key 'max'"),
        ([{"metric": "1rows", "max_value": 1}], "performance_gates[0].metric must be a metric name"),
        ([{"metric": "../x", "max_value": 1}], "performance_gates[0].metric must be a metric name"),
        ([{"max_value": 1}], "performance_gates[0].metric must be a metric name"),
        ([{"metric": "rows"}], "performance_gates[0] needs max_value or min_value."),
        ([{"metric": "rows", "max_value": None}], "performance_gates[0] needs max_value or min_value."),
        (
            [{"metric": "rows", "max_value": float("nan")}],
            "performance_gates[0].max_value must be a finite number.",
        ),
        (
            [{"metric": "rows", "max_value": float("inf")}],
            "performance_gates[0].max_value must be a finite number.",
        ),
        ([{"metric": "rows", "max_value": True}], "performance_gates[0].max_value must be a number."),
        ([{"metric": "rows", "max_value": "10"}], "performance_gates[0].max_value must be a number."),
        (
            [{"metric": "rows", "min_value": 5, "max_value": 1}],
            "performance_gates[0]: min_value is greater than max_value.",
        ),
    ],
)
def test_bad_performance_gates_are_refused(script: Path, gates: object, message: str) -> None:
    problems = refused(script, performance_gates=gates)
    assert list(problems) == ["performance_gates"] and problems["performance_gates"][0].startswith(message)


def test_a_junit_path_is_refused_saying_where_the_report_is(script: Path) -> None:
    message = refused(script, junit_output="out/report.xml")["junit_output"][0]
    assert "GET /api/runs/{id}/junit" in message and "no file is written on the server" in message
    assert refused(script, junit_output=5) == {"junit_output": ["Must be a valid boolean."]}


@pytest.mark.parametrize("name", ["/tmp/base.json", "../base", "base line", "-x", "", "a" * 101, 5])
@pytest.mark.parametrize("field", ["save_baseline", "load_baseline"])
def test_baselines_are_names_not_paths(script: Path, field: str, name: object) -> None:
    if name == "":
        assert (
            getattr(run_request_clean({"script_path": str(script), field: ""}), field) is None
        )  # a form's blank
        return
    problems = refused(script, **{field: name})
    assert list(problems) == [field]


def test_cost_tracking_is_a_boolean(script: Path) -> None:
    assert refused(script, enable_cost_tracking="maybe") == {
        "enable_cost_tracking": ["Must be a valid boolean."]
    }


def test_alerts_must_be_a_list(script: Path) -> None:
    assert list(refused(script, alerts={"name": "x"})) == ["alerts"]


@pytest.mark.django_db
def test_the_api_stores_the_analytics_options_and_a_restart_keeps_them(
    script: Path, client_for: Callable[[str], APIClient]
) -> None:
    from runs.services import run_restart

    client = client_for(Role.EXECUTOR)
    body = {
        "script_path": str(script),
        "performance_gates": [{"metric": "duration_seconds", "max_value": 60}],
        "junit_output": True,
        "save_baseline": "b1",
        "enable_cost_tracking": True,
    }
    response = client.post("/api/run", body, format="json")
    assert response.status_code == 202, response.content
    run = Run.objects.get()
    assert run.performance_gates == [{"metric": "duration_seconds", "max_value": 60.0}]
    assert (run.junit_output, run.save_baseline, run.enable_cost_tracking) == (True, "b1", True)
    assert response.json()["performance_gates"] == run.performance_gates

    again = run_restart(run=run, user=None)
    assert (again.performance_gates, again.junit_output, again.save_baseline) == (
        run.performance_gates,
        True,
        "b1",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("history_db", "/tmp/h.db"),
        ("performance_gates", [{"metric": "rows"}]),
        ("junit_output", "out.xml"),
        ("save_baseline", "../base.json"),
        ("load_baseline", "/etc/passwd"),
        ("enable_cost_tracking", "sometimes"),
        ("alerts", "page me"),
    ],
)
def test_bad_analytics_fields_are_400_naming_them(
    script: Path, client_for: Callable[[str], APIClient], field: str, value: object
) -> None:
    response = client_for(Role.EXECUTOR).post(
        "/api/run", {"script_path": str(script), field: value}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["details"]) == [field]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_library_run_takes_the_analytics_options(
    client_for: Callable[[str], APIClient], script: Path
) -> None:
    from library.models import FolderRoot, Script

    root = FolderRoot.objects.create(path=str(script.parent), name="r")
    lib = Script.objects.create(root=root, path=str(script), relpath=script.name, name=script.name)
    client = client_for(Role.EXECUTOR)
    url = f"/api/library/scripts/{lib.pk}/run"

    body = {"performance_gates": [{"metric": "rows", "min_value": 1}], "junit_output": True}
    assert client.post(url, body, format="json").status_code == 202
    run = Run.objects.get()
    assert (run.performance_gates, run.junit_output, run.script_id) == (
        [{"metric": "rows", "min_value": 1.0}],
        True,
        lib.pk,
    )
    refused = client.post(url, {"history_db": "h.db"}, format="json")
    assert refused.status_code == 400 and list(refused.json()["details"]) == ["history_db"]
