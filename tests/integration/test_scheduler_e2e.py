"""The scheduler on a real stack (``manage.py serve``: daphne, qcluster workers and the tick
in the supervisor loop): interval ticks, dependency chains, events, overlap, and several
processes ticking the same database at once.

Due times are set straight in the database (``manage.py shell``) instead of waiting for
them; deadlines are hang guards, never speed assertions.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import RUN_DEADLINE, STEP_DEADLINE, logs, wait_for_status, wait_until
from tests.stack import BASE_DIR, Stack, _drop_postgres_database, _postgres_database

pytestmark = pytest.mark.integration

STACK_WORKERS = 2
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def script(stack: Stack, name: str, body: str) -> str:
    return str(stack.script(name, textwrap.dedent(body).lstrip("\n")))


def shell(stack: Stack, code: str) -> Any:
    """Run ``code`` in ``manage.py shell`` on the stack's database; it prints JSON last."""
    out = stack.manage("shell", "-c", textwrap.dedent(code)).stdout.strip().splitlines()
    return json.loads(out[-1])


def make_due(
    stack: Stack, task_ids: list[int], *, in_seconds: float = 0.0, unless_moved_from: str = ""
) -> int:
    """Make the tasks due in ``in_seconds``; returns how many were moved. With
    ``unless_moved_from`` (a task's ``next_run_at`` as the API gave it), only a task still
    due then: ``manage.py shell`` can take seconds on a loaded machine, and a task whose
    first due time came meanwhile has fired and moved on (moving it again would break its
    cadence)."""
    moved: int = shell(
        stack,
        f"""
        from datetime import datetime, timedelta
        from django.utils import timezone
        from scheduler.models import ScheduledTask
        tasks = ScheduledTask.objects.filter(pk__in={task_ids!r})
        if {unless_moved_from!r}:
            due = datetime.fromisoformat({unless_moved_from!r}.replace("Z", "+00:00"))
            tasks = tasks.filter(next_run_at=due)
        n = tasks.update(next_run_at=timezone.now() + timedelta(seconds={in_seconds}))
        print(n)
        """,
    )
    return moved


def create_task(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/scheduler/tasks", json=body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def history(client: httpx.Client, task_id: int, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/scheduler/tasks/{task_id}/runs", params={"page_size": 1000, **params})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["results"]
    return rows


def queued_runs(client: httpx.Client, task_id: int, count: int) -> list[dict[str, Any]]:
    """Wait until the task has ``count`` entries with a run; oldest first."""

    def probe() -> list[dict[str, Any]] | None:
        rows = [r for r in history(client, task_id) if r["run_id"]]
        return rows[::-1] if len(rows) >= count else None

    return wait_until(probe, timeout=RUN_DEADLINE, interval=0.2, what=f"{count} run(s) of task {task_id}")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_an_interval_task_fires_on_its_cadence(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "tick.sh", 'echo "tick $SCRIPTOPS_TRIGGER"\n')
    task = create_task(client, name="every-10s", script_path=path, interval_seconds=10)
    # Due in 1 s instead of 10 (if the shell came first: either way, a 10 s cadence).
    make_due(stack, [task["id"]], in_seconds=1, unless_moved_from=task["next_run_at"])

    first, second = queued_runs(client, task["id"], 2)[:2]

    assert ts(second["due_at"]) - ts(first["due_at"]) == 10.0  # the cadence, from the due times
    for entry in (first, second):
        assert entry["trigger"] == "schedule" and entry["outcome"] == "queued"
        # Fired after it was due and before the next due time (later would be a misfire).
        assert 0 <= ts(entry["fired_at"]) - ts(entry["due_at"]) < 10, entry
        done = wait_for_status(stack, client, entry["run_id"])
        assert done["status"] == "completed", done
        assert "tick schedule" in logs(client, entry["run_id"]).text
    assert client.post(f"/api/scheduler/tasks/{task['id']}/pause").status_code == 200


def test_a_chain_runs_in_order_passes_upstream_runs_and_stops_when_a_step_fails(
    stack: Stack, client: httpx.Client
) -> None:
    a = create_task(client, name="chain-a", script_path=script(stack, "a.sh", "echo a\n"))
    b = create_task(
        client,
        name="chain-b",
        script_path=script(stack, "b.sh", 'echo "upstream $SCRIPTOPS_UPSTREAM_CHAIN_A_RUN_ID"\nexit "$1"\n'),
        args=["0"],
        depends_on=[a["id"]],
    )
    c = create_task(
        client, name="chain-c", script_path=script(stack, "c.sh", "echo c\n"), depends_on=[b["id"]]
    )

    run_a = client.post(f"/api/scheduler/tasks/{a['id']}/run").json()["run"]
    [entry_c] = queued_runs(client, c["id"], 1)
    done_a = wait_for_status(stack, client, run_a["id"])
    [entry_b] = queued_runs(client, b["id"], 1)
    done_b = wait_for_status(stack, client, entry_b["run_id"])
    done_c = wait_for_status(stack, client, entry_c["run_id"])

    assert [r["status"] for r in (done_a, done_b, done_c)] == ["completed"] * 3
    assert ts(done_a["finished_at"]) <= ts(done_b["created_at"])  # b queued after a succeeded
    assert ts(done_b["finished_at"]) <= ts(done_c["created_at"])
    assert f"upstream {run_a['id']}" in logs(client, entry_b["run_id"]).text
    assert entry_c["upstream"]["chain-b"]["run_id"] == entry_b["run_id"]

    # Second round: b fails, so c must not run again.
    assert client.patch(f"/api/scheduler/tasks/{b['id']}", json={"args": ["3"]}).status_code == 200
    client.post(f"/api/scheduler/tasks/{a['id']}/run")
    entry_b2 = queued_runs(client, b["id"], 2)[1]
    failed = wait_for_status(stack, client, entry_b2["run_id"])
    assert (failed["status"], failed["exit_code"]) == ("failed", 3)

    def handled() -> bool:
        code = (
            "from scheduler.models import TaskRun; print(int(TaskRun.objects.get(pk=%d).downstream_handled))"
        )
        return bool(shell(stack, code % entry_b2["id"]))

    wait_until(handled, timeout=STEP_DEADLINE, interval=0.5, what="b's failed run to be handled")
    assert len([r for r in history(client, c["id"]) if r["run_id"]]) == 1


def test_an_event_triggers_every_listener(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "listener.sh", 'echo "got $SCRIPTOPS_EVENT"\n')
    first = create_task(client, name="listener-1", script_path=path, events=["it.deploy"])
    second = create_task(client, name="listener-2", script_path=path, events=["it.deploy", "other"])
    create_task(client, name="deaf", script_path=path, events=["other"])

    response = client.post("/api/scheduler/events/it.deploy")

    assert response.status_code == 200, response.text
    body = response.json()
    assert {row["task_id"] for row in body["triggered"]} == {first["id"], second["id"]}
    assert body["skipped"] == []
    for row in body["triggered"]:
        done = wait_for_status(stack, client, row["run_id"])
        assert done["status"] == "completed", done
        assert "got it.deploy" in logs(client, row["run_id"]).text


def test_overlap_skip_really_skips_a_tick_while_the_run_is_active(stack: Stack, client: httpx.Client) -> None:
    path = script(stack, "slow.sh", "echo started\nsleep 60\n")
    task = create_task(
        client, name="slowpoke", script_path=path, interval_seconds=3600, overlap_policy="skip"
    )
    running = client.post(f"/api/scheduler/tasks/{task['id']}/run").json()["run"]
    wait_for_status(stack, client, running["id"], ("running",))

    make_due(stack, [task["id"]])

    def skipped() -> dict[str, Any] | None:
        rows = history(client, task["id"], outcome="skipped")
        return rows[0] if rows else None

    entry = wait_until(skipped, timeout=STEP_DEADLINE, interval=0.2, what="the tick to be skipped")
    assert entry["trigger"] == "schedule" and entry["run_id"] is None
    assert f"Previous run {running['id']} is still running" in entry["reason"]
    assert [r["run_id"] for r in history(client, task["id"]) if r["run_id"]] == [running["id"]]
    client.post(f"/api/runs/{running['id']}/kill")
    assert wait_for_status(stack, client, running["id"])["status"] == "cancelled"


# -- several processes ticking one database ------------------------------------------------------

# Each ticker says "ready", waits for "go", then ticks as fast as it can (saying "ticking"
# after its first tick) until it reads "stop". The lead ticker also creates the tasks when
# it reads "setup" (sent once every ticker ticks), and counts what fired once it stops
# (after the others have stopped).
TICKER = """
import json, os, select, time
from datetime import datetime, timedelta, timezone as tz
from django.db.models import Count
from scheduler.models import ScheduledTask, TaskRun
from scheduler.services import task_create, tasks_fire_due
prefix, script = os.environ["RACE_PREFIX"], os.environ["RACE_SCRIPT"]
count, spread = int(os.environ["RACE_TASKS"]), float(os.environ["RACE_SPREAD"])
def command():  # unbuffered: a buffered read could swallow the next command unseen by select
    data = b""
    while not data.endswith(b"\\n"):
        byte = os.read(0, 1)
        if not byte:
            return "stop"
        data += byte
    return data.decode().strip()
print("ready", flush=True)
command()  # "go": the database is ready
ticks = fired = 0
first = last = 0.0
deadline = time.time() + 180
while time.time() < deadline:
    if select.select([0], [], [], 0)[0]:
        if command() != "setup":
            break
        ids = [task_create(name=f"{prefix}-{i:02d}", script_path=script, interval_seconds=3600,
                           overlap_policy="allow")[0].pk for i in range(count)]
        base = time.time() + 0.5
        for i, pk in enumerate(ids):
            due = datetime.fromtimestamp(base + spread * i, tz=tz.utc)
            ScheduledTask.objects.filter(pk=pk).update(next_run_at=due)
        print(json.dumps({"base": base, "ids": ids}), flush=True)
        continue
    last = time.time()
    first = first or last
    fired += len(tasks_fire_due().fired)
    ticks += 1
    if ticks == 1:
        print("ticking", flush=True)
    time.sleep(0.002)
out = {"first": first, "last": last, "ticks": ticks, "fired": fired}
if prefix and os.environ.get("RACE_LEAD"):
    rows = TaskRun.objects.filter(task__name__startswith=prefix + "-").values("task_id", "due_at")
    out["rows"] = [[r["task_id"], r["n"], r["runs"]] for r in rows.annotate(n=Count("id"), runs=Count("run"))]
print(json.dumps(out), flush=True)
"""

TASKS = 40
SPREAD = 0.03  # seconds between two tasks' due times


def _race(stack: Stack, *, tickers: int, prefix: str, prepare: Callable[[], object] | None = None) -> None:
    """Make TASKS tasks due over ~1 s while ``tickers`` processes (and serve, if running)
    tick the stack's database as fast as they can: each due time must fire exactly once.

    ``prepare`` (creating the database) runs while the tickers start up."""
    path = script(stack, f"{prefix}-noop.sh", "exit 0\n")
    env = {**stack.env(), "RACE_PREFIX": prefix, "RACE_SCRIPT": path, "RACE_TASKS": str(TASKS)}
    env["RACE_SPREAD"] = str(SPREAD)
    procs = [
        subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-v", "0", "-c", TICKER],
            env={**env, "RACE_LEAD": "1"} if i == 0 else env,
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(tickers)
    ]

    def send(proc: subprocess.Popen[str], line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    def answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None and proc.stderr is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=30)
                raise AssertionError(f"a ticker died: {proc.stderr.read()[-3000:]}")
            if line.strip() in ("ready", "ticking"):
                return {line.strip(): True}
            if line.startswith("{"):
                answer: dict[str, Any] = json.loads(line)
                return answer

    try:
        if prepare is not None:
            prepare()
        for proc in procs:
            assert answer(proc) == {"ready": True}
        for proc in procs:
            send(proc, "go")
        for proc in procs:  # the due times come after every ticker's first tick
            assert answer(proc) == {"ticking": True}
        lead = procs[0]
        send(lead, "setup")
        setup = answer(lead)
        last_due = setup["base"] + SPREAD * (TASKS - 1)
        wait_until(
            lambda: time.time() > last_due + 1.5, timeout=60, interval=0.1, what="the due times to pass"
        )
        stats = []
        for proc in [*procs[1:], lead]:  # the lead counts once the others have stopped
            send(proc, "stop")
            stats.append(answer(proc))
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    # Every ticker was ticking from before the first due time until after the last one.
    assert all(s["first"] < setup["base"] and s["last"] > last_due and s["ticks"] >= 2 for s in stats), stats
    assert sum(s["fired"] for s in stats) >= 1, stats

    rows = stats[-1]["rows"]
    fired = {task_id: (entries, runs) for task_id, entries, runs in rows}
    assert len(rows) == len(fired), f"a task fired for two due times: {rows}"
    ids = setup["ids"]
    assert sorted(fired) == sorted(ids), f"tasks that never fired: {sorted(set(ids) - set(fired))}"
    doubles = {task_id: n for task_id, n in fired.items() if n != (1, 1)}
    assert not doubles, f"due times fired more than once (entries, runs): {doubles}"
    assert sum(s["fired"] for s in stats) <= TASKS


def test_several_processes_ticking_at_once_never_double_fire(stack: Stack, client: httpx.Client) -> None:
    _race(stack, tickers=2, prefix="race")  # and serve's own tick


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except Exception:
        return False


def test_several_processes_ticking_one_postgresql_database_never_double_fire(tmp_path: Path) -> None:
    """The same race where transactions really run concurrently (row locks, PostgreSQL).
    No server: only the ticking processes and a fresh database."""
    if not _postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    url, name = _postgres_database(POSTGRES_URL)
    try:
        pg = Stack(tmp_path, database_url=url)
        pg.data_dir.mkdir(parents=True)
        pg.scripts.mkdir(parents=True)
        _race(pg, tickers=4, prefix="pgrace", prepare=lambda: pg.manage("migrate", "--no-input", "-v", "0"))
    finally:
        _drop_postgres_database(url, name)
