"""The runs API: list, detail, events, attempts, samples, logs, stats, delete and control."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import Role
from runs.logstore import LogWriter
from runs.models import Control, EventKind, Run, RunAttempt, RunEvent, RunStatus
from runs.serializers import RunSerializer
from runs.services import run_execute
from tests.factories import RunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(roots: Path, client_for) -> APIClient:
    return client_for(Role.USER)


def queued(**kwargs: Any) -> Run:
    return RunFactory(status=RunStatus.QUEUED, run_status=None, exit_code=None, **kwargs)


def running(**kwargs: Any) -> Run:
    return RunFactory(status=RunStatus.RUNNING, run_status=None, exit_code=None, **kwargs)


def ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content[:400]
    body = response.json()
    assert body["message"]
    if code:
        assert body["error"] == code
    return body


# -- list ---------------------------------------------------------------------------------------


def test_list_is_paginated_newest_first(client: APIClient) -> None:
    now = timezone.now()
    runs = [RunFactory(created_at=now - timedelta(minutes=i)) for i in range(5)]
    body = client.get("/api/runs", {"page_size": 2}).json()
    assert body["count"] == 5
    assert [r["id"] for r in body["results"]] == [str(runs[0].pk), str(runs[1].pk)]
    assert body["next"] and body["previous"] is None
    last = client.get("/api/runs", {"page_size": 2, "page": 3})
    assert ids(last) == [str(runs[4].pk)]
    assert_error(client.get("/api/runs", {"page": 9}), 404, "not_found")


def test_list_trailing_slash_is_optional(client: APIClient) -> None:
    RunFactory()
    assert client.get("/api/runs/").json()["count"] == 1
    assert client.get("/api/runs").json()["count"] == 1


def test_filter_by_status_and_run_status(client: APIClient) -> None:
    ok = RunFactory()
    failed = RunFactory(status=RunStatus.FAILED, run_status="failed", exit_code=1)
    timed_out = RunFactory(status=RunStatus.FAILED, run_status="timeout", exit_code=None)
    waiting = queued()
    assert set(ids(client.get("/api/runs", {"status": "failed"}))) == {str(failed.pk), str(timed_out.pk)}
    both = client.get("/api/runs?status=queued&status=completed")
    assert set(ids(both)) == {str(ok.pk), str(waiting.pk)}
    assert ids(client.get("/api/runs", {"run_status": "timeout"})) == [str(timed_out.pk)]
    body = assert_error(client.get("/api/runs", {"status": "exploded"}), 400, "validation_error")
    assert "status" in body["details"]


def test_filter_by_script_path_created_by_and_dates(client: APIClient) -> None:
    alice = UserFactory(username="alice")
    now = timezone.now()
    old = RunFactory(script_path="/srv/scripts/backup.py", created_at=now - timedelta(days=3))
    new = RunFactory(script_path="/srv/scripts/report.sh", created_by=alice, created_at=now)
    assert ids(client.get("/api/runs", {"script_path": "BACKUP"})) == [str(old.pk)]
    assert ids(client.get("/api/runs", {"created_by": "alice"})) == [str(new.pk)]
    since = (now - timedelta(days=1)).isoformat()
    assert ids(client.get("/api/runs", {"created_after": since})) == [str(new.pk)]
    assert ids(client.get("/api/runs", {"created_before": since})) == [str(old.pk)]
    assert_error(client.get("/api/runs", {"created_after": "yesterday"}), 400)
    assert_error(client.get("/api/runs", {"correlation_id": "not-a-uuid"}), 400)


def test_latest_per_script_keeps_each_scripts_newest_run_among_the_filtered(client: APIClient) -> None:
    now = timezone.now()
    a_old = RunFactory(script_path="/srv/a.py", created_at=now - timedelta(hours=3))
    a_new = RunFactory(script_path="/srv/a.py", created_at=now - timedelta(hours=1))
    b_failed = RunFactory(
        script_path="/srv/b.sh",
        status=RunStatus.FAILED,
        run_status="failed",
        created_at=now - timedelta(hours=2),
    )
    b_new = RunFactory(script_path="/srv/b.sh", created_at=now)

    grouped = client.get("/api/runs", {"latest_per_script": "true"}).json()
    assert grouped["count"] == 2
    assert [r["id"] for r in grouped["results"]] == [str(b_new.pk), str(a_new.pk)]
    # Over what the other filters keep: each script's newest failed run.
    failed = client.get("/api/runs", {"latest_per_script": "true", "status": "failed"})
    assert ids(failed) == [str(b_failed.pk)]
    assert ids(client.get("/api/runs", {"latest_per_script": "false"}))[-1] == str(a_old.pk)
    assert_error(client.get("/api/runs", {"latest_per_script": "sometimes"}), 400)


def test_filter_by_source(client: APIClient) -> None:
    scheduled = RunFactory(source="scheduler", task_name="nightly backup")
    RunFactory(source="api")
    rows = client.get("/api/runs", {"source": "scheduler"}).json()["results"]
    assert [r["id"] for r in rows] == [str(scheduled.pk)]
    assert rows[0]["task_name"] == "nightly backup"


def test_list_rows_are_run_records(client: APIClient) -> None:
    alice = UserFactory(username="alice")
    runs = [
        RunFactory(created_by=alice, env_vars={"TOKEN": "s3cret"}, args=["--fast"]),
        RunFactory(status=RunStatus.FAILED, run_status="failed", exit_code=2, error_summary={"exit_code": 2}),
    ]
    rows = {row["id"]: row for row in client.get("/api/runs").json()["results"]}
    for run in runs:
        assert rows[str(run.pk)] == RunSerializer(run).data
    assert rows[str(runs[0].pk)]["env_vars"] == {"TOKEN": "********"}
    assert rows[str(runs[0].pk)]["created_by"] == "alice"


def test_filters_validate_each_request_on_its_own(client: APIClient) -> None:
    # The filter form class is built once per process: no request's values or errors
    # may reach the next.
    failed = RunFactory(status=RunStatus.FAILED, run_status="failed", exit_code=1)
    RunFactory()
    assert_error(client.get("/api/runs", {"status": "exploded"}), 400, "validation_error")
    assert ids(client.get("/api/runs", {"status": "failed"})) == [str(failed.pk)]
    assert client.get("/api/runs").json()["count"] == 2
    body = assert_error(client.get("/api/runs", {"created_after": "yesterday", "status": "failed"}), 400)
    assert set(body["details"]) == {"created_after"}


def test_search_matches_path_and_error_summary(client: APIClient) -> None:
    a = RunFactory(script_path="/x/alpha.py")
    b = RunFactory(
        script_path="/x/beta.py",
        status=RunStatus.FAILED,
        run_status="failed",
        error_summary={"exit_code": 2, "stderr_snippet": "KeyError: 'wombat'"},
    )
    assert ids(client.get("/api/runs", {"search": "alpha"})) == [str(a.pk)]
    assert ids(client.get("/api/runs", {"search": "wombat"})) == [str(b.pk)]
    assert ids(client.get("/api/runs", {"search": str(b.correlation_id)})) == [str(b.pk)]


def test_ordering(client: APIClient) -> None:
    runs = [RunFactory(duration=d) for d in (3.0, 1.0, 2.0)]
    by_duration = ids(client.get("/api/runs", {"ordering": "duration"}))
    assert by_duration == [str(runs[1].pk), str(runs[2].pk), str(runs[0].pk)]
    assert ids(client.get("/api/runs", {"ordering": "-duration"})) == by_duration[::-1]
    # An unknown ordering field is ignored, not an error.
    assert client.get("/api/runs", {"ordering": "password"}).status_code == 200


# -- detail, events, attempts, samples -----------------------------------------------------------


def test_list_filters_never_hide_a_run_addressed_by_its_id(client: APIClient) -> None:
    failed = RunFactory(status=RunStatus.FAILED, run_status="failed", exit_code=1)
    assert ids(client.get("/api/runs", {"status": "completed"})) == []
    for path in (f"/api/runs/{failed.pk}", f"/api/runs/{failed.pk}/events", f"/api/runs/{failed.pk}/logs"):
        assert client.get(path, {"status": "completed", "search": "nothing-like-it"}).status_code == 200, path


def test_detail_is_the_run_record(client: APIClient) -> None:
    run = RunFactory(
        status=RunStatus.FAILED,
        run_status="failed",
        exit_code=3,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        error_summary={"exit_code": 3, "stderr_snippet": "boom", "status": "failed"},
    )
    body = client.get(f"/api/runs/{run.pk}").json()
    for name in (
        "id",
        "status",
        "started_at",
        "finished_at",
        "correlation_id",
        "run_status",
        "error_summary",
    ):
        assert name in body
    assert body["status"] == "failed"
    assert body["run_status"] == "failed"
    assert body["correlation_id"] == str(run.correlation_id)
    assert body["error_summary"]["stderr_snippet"] == "boom"
    assert client.get(f"/api/runs/{run.pk}/").status_code == 200


@pytest.mark.parametrize("suffix", ["", "/events", "/attempts", "/samples", "/logs", "/cancel", "/restart"])
def test_unknown_run_is_json_404(client: APIClient, suffix: str) -> None:
    for run_id in (uuid.uuid4(), "-" * 36, "a" * 32):
        method = client.post if suffix in ("/cancel", "/restart") else client.get
        assert_error(method(f"/api/runs/{run_id}{suffix}"), 404, "not_found")


def test_unknown_api_path_is_json_404(client: APIClient) -> None:
    assert_error(client.get("/api/runs/not-a-uuid"), 404, "not_found")
    assert_error(client.get("/api/nothing-here"), 404, "not_found")


def test_events_are_listed_oldest_first(client: APIClient) -> None:
    run = RunFactory()
    now = timezone.now()
    RunEvent.objects.create(run=run, kind=EventKind.START, timestamp=now, data={"attempt": 1})
    RunEvent.objects.create(run=run, kind=EventKind.QUEUED, timestamp=now - timedelta(seconds=1))
    body = client.get(f"/api/runs/{run.pk}/events").json()
    assert [e["kind"] for e in body] == ["queued", "start"]
    assert body[1]["data"] == {"attempt": 1}


def test_attempts_are_listed_in_order(client: APIClient) -> None:
    run = RunFactory(attempts=2)
    now = timezone.now()
    RunAttempt.objects.create(run=run, number=2, started_at=now, exit_code=0, run_status="success")
    RunAttempt.objects.create(run=run, number=1, started_at=now, exit_code=1, run_status="failed")
    body = client.get(f"/api/runs/{run.pk}/attempts").json()
    assert [(a["number"], a["exit_code"]) for a in body] == [(1, 1), (2, 0)]


def test_samples_are_read_from_the_output_dir(client: APIClient) -> None:
    run = RunFactory()
    run.output_dir.mkdir(parents=True)
    rows = [{"ts": 1.0 + i, "cpu": 10.0, "rss": 1000 + i, "children": 0, "attempt": 1} for i in range(3)]
    # The last line is being written by the worker right now: it must not break the answer.
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"ts": 4.0, "cp'
    (run.output_dir / "samples.jsonl").write_text(text)
    assert client.get(f"/api/runs/{run.pk}/samples").json() == rows


def test_samples_of_a_run_without_output_is_empty(client: APIClient) -> None:
    assert client.get(f"/api/runs/{RunFactory().pk}/samples").json() == []


# -- logs --------------------------------------------------------------------------------------------


def write_output(run: Run, chunks: list[tuple[str, bytes]], **writer_kwargs: Any) -> LogWriter:
    writer = LogWriter(Path(settings.RUNS_DIR) / str(run.pk), cap_bytes=1 << 20, **writer_kwargs)
    for i, (stream, data) in enumerate(chunks):
        writer.write(stream, data, 1_700_000_000.0 + i)
    writer.close()
    return writer


@pytest.fixture
def logged_run(client: APIClient) -> Run:
    run = RunFactory()
    write_output(run, [("stdout", b"out1\nout2\n"), ("stderr", b"err1\n"), ("stdout", b"out3\n")])
    return run


def test_logs_are_plain_text_in_arrival_order(client: APIClient, logged_run: Run) -> None:
    response = client.get(f"/api/runs/{logged_run.pk}/logs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"out1\nout2\nerr1\nout3\n"
    assert response["X-Next-Offset"] == str(len(response.content))
    assert response["X-Output-Truncated"] == "false"
    assert response["X-Dropped-Bytes"] == "0"
    assert response["X-Run-Status"] == "completed"


def test_the_viewers_stream_filter_is_applied_by_the_server(client: APIClient) -> None:
    run = RunFactory()
    write_output(
        run,
        [
            ("stdout", b"".join(b"out%d\n" % i for i in range(600))),
            ("system", b"=== attempt 2 of 2 ===\n"),
            ("stderr", b"err1\nerr2\n"),
            ("stdout", b"last\n"),
        ],
    )
    url = f"/api/runs/{run.pk}/logs"
    # The newest page of stderr holds both stderr lines however much stdout came first.
    errs = client.get(url, {"streams": "stderr", "limit": 50}).json()
    assert [(x["n"], x["stream"], x["text"]) for x in errs["lines"]] == [
        (602, "stderr", "err1"),
        (603, "stderr", "err2"),
    ]
    both = client.get(url, {"streams": "stderr,system", "limit": 50}).json()
    assert [x["text"] for x in both["lines"]] == ["=== attempt 2 of 2 ===", "err1", "err2"]
    hits = client.get(url, {"streams": "stdout", "q": "out59"}).json()
    assert [x["text"] for x in hits["lines"]] == ["out59"] + [f"out{i}" for i in range(590, 600)]
    bad = client.get(url, {"streams": "stdout,nope"})
    assert_error(bad, 400)
    assert "streams" in bad.json()["details"]


def test_first_error_is_the_first_stderr_line_or_an_earlier_line_matching_the_pattern(
    client: APIClient,
) -> None:
    run = RunFactory()
    write_output(
        run, [("stdout", b"starting\nfine\n"), ("stdout", b"ERROR: disk full\n"), ("stderr", b"boom\n")]
    )
    first = client.get(f"/api/runs/{run.pk}/logs", {"first_error": "true"}).json()["first_error"]
    assert (first["n"], first["text"], first["why"]) == (3, "ERROR: disk full", "pattern")
    quiet = RunFactory()
    write_output(quiet, [("stdout", b"all good\nno errors so far\n"), ("stderr", b"warning\n")])
    found = client.get(f"/api/runs/{quiet.pk}/logs", {"first_error": "true"}).json()["first_error"]
    # The pattern matches whole words: "errors" is not "error"; the stderr line is first.
    assert (found["n"], found["text"], found["why"]) == (3, "warning", "stderr")
    clean = RunFactory()
    write_output(clean, [("stdout", b"ok\n")])
    assert client.get(f"/api/runs/{clean.pk}/logs", {"first_error": "true"}).json()["first_error"] is None


def test_logs_by_stream(client: APIClient, logged_run: Run) -> None:
    out = client.get(f"/api/runs/{logged_run.pk}/logs", {"stream": "stdout"})
    assert out.content == b"out1\nout2\nout3\n"
    assert out["X-Next-Offset"] == "15"
    err = client.get(f"/api/runs/{logged_run.pk}/logs", {"stream": "stderr"})
    assert err.content == b"err1\n"
    assert err["X-Next-Offset"] == "5"


def test_logs_offset_resumes_where_the_last_read_ended(client: APIClient, logged_run: Run) -> None:
    url = f"/api/runs/{logged_run.pk}/logs"
    first = client.get(url, {"stream": "stdout", "offset": 5})
    assert first.content == b"out2\nout3\n"
    again = client.get(url, {"stream": "stdout", "offset": first["X-Next-Offset"]})
    assert again.content == b""
    assert again["X-Next-Offset"] == first["X-Next-Offset"]
    assert client.get(url, {"offset": 12}).content == b"r1\nout3\n"
    limited = client.get(url, {"limit": 3})
    assert limited.content == b"out"
    assert limited["X-Next-Offset"] == "3"


def test_logs_tail(client: APIClient, logged_run: Run) -> None:
    url = f"/api/runs/{logged_run.pk}/logs"
    assert client.get(url, {"tail": 2}).content == b"err1\nout3\n"
    assert client.get(url, {"tail": 2, "stream": "stdout"}).content == b"out2\nout3\n"
    assert client.get(url, {"tail": 100, "stream": "stderr"}).content == b"err1\n"
    assert client.get(url, {"tail": 1})["X-Next-Offset"] == "20"


@pytest.mark.parametrize(
    "query",
    [
        {"stream": "both"},
        {"offset": -1},
        {"offset": "x"},
        {"tail": 0},
        {"tail": "many"},
        {"limit": 0},
    ],
)
def test_logs_bad_query_is_400_json(client: APIClient, logged_run: Run, query: dict[str, Any]) -> None:
    body = assert_error(client.get(f"/api/runs/{logged_run.pk}/logs", query), 400, "validation_error")
    assert set(query) <= set(body["details"])


def test_logs_of_a_run_without_output(client: APIClient) -> None:
    response = client.get(f"/api/runs/{queued().pk}/logs")
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Next-Offset"] == "0"
    assert response["X-Run-Status"] == "queued"


def test_truncated_logs_say_so(client: APIClient, settings) -> None:
    run = RunFactory(output_truncated=True)
    lines = [(f"line {i:03d}\n").encode() for i in range(60)]  # 9 bytes each
    writer = LogWriter(Path(settings.RUNS_DIR) / str(run.pk), cap_bytes=200, segment_bytes=90)
    for i, line in enumerate(lines):
        writer.write("stdout", line, 1_700_000_000.0 + i)
    writer.close()
    assert writer.dropped_bytes > 0
    settings.MAX_OUTPUT_BYTES = 200
    response = client.get(f"/api/runs/{run.pk}/logs")
    assert response["X-Output-Truncated"] == "true"
    assert response["X-Dropped-Bytes"] == str(writer.dropped_bytes)
    text = response.content.decode()
    first, rest = text.split("\n", 1)
    assert first == (
        f"[scriptops: output truncated: the first {writer.dropped_bytes} bytes "
        f"({writer.dropped_lines} lines) were dropped; the cap is 200 bytes]"
    )
    assert rest.endswith("line 059\n")
    assert rest == b"".join(lines)[writer.dropped_bytes :].decode()
    assert response["X-Next-Offset"] == str(60 * 9)
    # Polling from a later offset repeats no prefix.
    later = client.get(f"/api/runs/{run.pk}/logs", {"offset": 60 * 9 - 9})
    assert later.content == b"line 059\n"
    # The tail needs no prefix either, but the headers still tell.
    tail = client.get(f"/api/runs/{run.pk}/logs", {"tail": 1})
    assert tail.content == b"line 059\n"
    assert tail["X-Output-Truncated"] == "true"


# -- stats ----------------------------------------------------------------------------------------------


def test_stats_numbers(client: APIClient) -> None:
    now = timezone.now()
    RunFactory(duration=2.0)
    RunFactory(duration=4.0)
    RunFactory(duration=6.0, created_at=now - timedelta(days=2))
    RunFactory(status=RunStatus.FAILED, run_status="timeout", exit_code=None, duration=None)
    RunFactory(status=RunStatus.CANCELLED, run_status="killed")
    queued()
    body = client.get("/api/stats").json()
    assert body["total"] == 6
    assert body["last_24h"] == 5
    assert body["by_status"] == {"queued": 1, "running": 0, "completed": 3, "failed": 1, "cancelled": 1}
    assert body["by_run_status"] == {"success": 3, "timeout": 1, "killed": 1}
    assert body["success_rate"] == 75.0
    assert body["avg_duration"] == pytest.approx(4.0)


def test_stats_with_no_runs(client: APIClient) -> None:
    body = client.get("/api/stats/").json()
    assert body["total"] == 0
    assert body["success_rate"] is None
    assert body["avg_duration"] is None


# -- delete ------------------------------------------------------------------------------------------------


def test_delete_finished_run_removes_its_output(
    client: APIClient, django_capture_on_commit_callbacks
) -> None:
    run = RunFactory()
    write_output(run, [("stdout", b"hello\n")])
    assert run.output_dir.is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/api/runs/{run.pk}")
    assert response.status_code == 204
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not run.output_dir.exists()


@pytest.mark.parametrize("make", [queued, running])
def test_delete_active_run_is_409(client: APIClient, make: Any) -> None:
    run = make()
    body = assert_error(client.delete(f"/api/runs/{run.pk}"), 409, "conflict")
    assert str(run.pk) in body["message"]
    assert Run.objects.filter(pk=run.pk).exists()


def test_bulk_delete(client: APIClient, django_capture_on_commit_callbacks) -> None:
    a, b, keep = RunFactory(), RunFactory(status=RunStatus.FAILED, run_status="failed"), RunFactory()
    write_output(a, [("stdout", b"x\n")])
    ghost = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/runs", [str(a.pk), str(b.pk), str(ghost)], format="json")
    assert response.status_code == 200
    assert response.json() == {"deleted": 2, "not_found": [str(ghost)]}
    assert list(Run.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not a.output_dir.exists()


def test_bulk_delete_with_an_active_run_deletes_nothing(client: APIClient) -> None:
    done, active = RunFactory(), running()
    body = assert_error(client.delete("/api/runs", [str(done.pk), str(active.pk)], format="json"), 409)
    assert str(active.pk) in body["message"]
    assert Run.objects.count() == 2


@pytest.mark.parametrize(
    "body",
    [
        ["not-a-uuid"],
        [123],
        [None],
        [["nested"]],
        {"ids": []},
        "abc",
        [],
        None,
    ],
)
def test_bulk_delete_bad_body_is_400(client: APIClient, body: Any) -> None:
    run = RunFactory()
    response = client.delete("/api/runs", body, format="json")
    result = assert_error(response, 400, "validation_error")
    assert "details" in result
    assert Run.objects.filter(pk=run.pk).exists()


def test_bulk_delete_names_the_bad_id(client: APIClient) -> None:
    body = client.delete("/api/runs", [str(uuid.uuid4()), "nope", 7], format="json").json()
    assert "'nope'" in body["message"]
    assert "7" in body["message"]
    assert body["details"] == {"ids": [body["message"].removeprefix("ids: ")]}


def test_bulk_delete_without_body_is_400(client: APIClient) -> None:
    assert_error(client.delete("/api/runs"), 400, "validation_error")


# -- control ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["cancel", "stop", "kill"])
def test_stopping_a_queued_run_cancels_it_and_it_never_starts(client: APIClient, command: str) -> None:
    run = queued()
    response = client.post(f"/api/runs/{run.pk}/{command}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    assert run.events.filter(kind=EventKind.CANCELLED).exists()
    # The queued task fires later: it must not start the script.
    assert run_execute(run_id=str(run.pk)) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.started_at is None


@pytest.mark.parametrize("command", ["cancel", "stop", "kill", "pause", "resume"])
@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_control_of_a_finished_run_is_409(client: APIClient, command: str, status: str) -> None:
    run = RunFactory(status=status)
    body = assert_error(client.post(f"/api/runs/{run.pk}/{command}"), 409, "conflict")
    assert status in body["message"]
    run.refresh_from_db()
    assert run.control == ""


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_or_resume_of_a_queued_run_is_409(client: APIClient, command: str) -> None:
    run = queued()
    assert_error(client.post(f"/api/runs/{run.pk}/{command}"), 409, "conflict")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_resume_of_a_run_that_is_not_paused_is_409(client: APIClient) -> None:
    assert_error(client.post(f"/api/runs/{running().pk}/resume"), 409, "conflict")


def test_control_of_a_running_run_is_left_for_the_runner(client: APIClient) -> None:
    run = running()
    body = client.post(f"/api/runs/{run.pk}/stop").json()
    assert body["status"] == "running"
    assert body["control"] == Control.STOP
    assert run.events.filter(kind=EventKind.STOP_REQUESTED).exists()
    assert client.post(f"/api/runs/{run.pk}/kill").json()["control"] == Control.KILL
    # A stop never downgrades a kill.
    assert client.post(f"/api/runs/{run.pk}/stop").json()["control"] == Control.KILL
    paused = client.post(f"/api/runs/{running().pk}/pause").json()
    assert paused["control"] == Control.PAUSE


def test_control_endpoints_take_no_body_and_ignore_get(client: APIClient) -> None:
    run = queued()
    response = client.get(f"/api/runs/{run.pk}/cancel")
    assert_error(response, 405, "method_not_allowed")


def test_restart_of_a_finished_run_queues_a_copy(client: APIClient) -> None:
    old = RunFactory(
        script_path="/srv/x.py",
        args=["a", "b"],
        env_vars={"K": "v"},
        timeout=9.0,
        retry_on_failure=True,
        retry_strategy="linear",
    )
    response = client.post(f"/api/runs/{old.pk}/restart")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["id"] != str(old.pk)
    assert body["restarted_from"] == str(old.pk)
    new = Run.objects.get(pk=body["id"])
    assert new.request_parameters() == old.request_parameters()
    assert new.source == "restart"
    assert new.created_by is not None and new.created_by.username == "user-user"
    assert list(new.events.values_list("kind", flat=True)) == [EventKind.QUEUED]
    old.refresh_from_db()
    assert old.status == RunStatus.COMPLETED


def test_restart_of_a_queued_run_cancels_it_first(client: APIClient) -> None:
    old = queued()
    body = client.post(f"/api/runs/{old.pk}/restart").json()
    old.refresh_from_db()
    assert old.status == RunStatus.CANCELLED
    assert body["restarted_from"] == str(old.pk)
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 1


# -- rerun with changes -------------------------------------------------------------------------


def test_a_rerun_copies_the_run_with_the_changes_and_leaves_the_original_alone(
    client: APIClient, make_script: Any
) -> None:
    script = make_script("job.sh", 'echo "$@ $TOKEN $MODE"\n')
    original = running(
        script_path=str(script),
        args=["a"],
        timeout=30,
        env_vars={"TOKEN": "s3cret", "MODE": "x"},
        log_level="DEBUG",
    )
    response = client.post(
        f"/api/runs/{original.pk}/rerun",
        {"args": ["b", "c"], "env_vars": {"TOKEN": "********", "EXTRA": "1"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    record = response.json()
    assert record["source"] == "rerun" and record["restarted_from"] == str(original.pk)
    assert record["args"] == ["b", "c"] and record["timeout"] == 30 and record["log_level"] == "DEBUG"
    fresh = Run.objects.get(pk=record["id"])
    # The environment sent is the whole new one; the masked value kept the original's.
    assert fresh.env_vars == {"TOKEN": "s3cret", "EXTRA": "1"}
    original.refresh_from_db()
    assert original.status == RunStatus.RUNNING  # a rerun never stops the original


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"script_path": "/etc/passwd"}, "script_path"),
        ({"timeout": "soon"}, "timeout"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_a_rerun_refuses_what_a_launch_would(
    client: APIClient, make_script: Any, changes: Any, field: str
) -> None:
    original = RunFactory(script_path=str(make_script("job.sh", "echo hi\n")))
    body = assert_error(client.post(f"/api/runs/{original.pk}/rerun", changes, format="json"), 400)
    assert field in body["details"]
    assert Run.objects.count() == 1


def test_a_readonly_caller_cannot_rerun(roots: Path, client_for: Any, make_script: Any) -> None:
    original = RunFactory(script_path=str(make_script("job.sh", "echo hi\n")))
    assert (
        client_for(Role.READONLY).post(f"/api/runs/{original.pk}/rerun", {}, format="json").status_code == 403
    )
