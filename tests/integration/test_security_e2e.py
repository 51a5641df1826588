"""What a script may see and where it may live, and who may ask for a run."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.helpers import (
    event_kinds,
    logs,
    start_run,
    wait_for_output,
    wait_for_status,
)
from tests.stack import Stack

pytestmark = pytest.mark.integration

# One run at a time: a single sleeper keeps the next run queued.
STACK_WORKERS = 1
STACK_MAX_RUNS = 1  # one run at a time: a second one waits in the queue behind a blocker
CANARY = f"server-only-{uuid.uuid4().hex}"
# A variable of the server's own: it must not reach the scripts.
STACK_ENV = {"IT_SERVER_ONLY_CANARY": CANARY}

# The variables a script gets: ScriptOps' few, the request's, and what bash adds itself.
SCRIPT_ENV = {
    "PATH",
    "HOME",
    "LANG",
    "TZ",
    "SCRIPTOPS_RUN_ID",
    "SCRIPTOPS_CORRELATION_ID",
    "SCRIPTOPS_LOG_LEVEL",
}
SHELL_ENV = {"PWD", "OLDPWD", "SHLVL", "_"}


def run_count(client: httpx.Client) -> int:
    response = client.get("/api/runs")
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def drain_queue(stack: Stack, client: httpx.Client) -> None:
    """Return once a run queued now has completed: the queue ahead of it is done."""
    probe = start_run(client, str(stack.script("probe.sh", "echo probe\n")))
    assert wait_for_status(stack, client, probe["id"])["status"] == "completed"


@pytest.fixture
def outside(stack: Stack) -> tuple[str, str]:
    """A script outside the allowed root that leaves a marker if it ever runs."""
    folder = stack.base_dir / f"outside-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    marker = folder / "ran"
    evil = folder / "evil.sh"
    evil.write_text(f'touch "{marker}"\necho escaped\n')
    evil.chmod(0o755)
    return str(evil), str(marker)


def test_a_script_sees_only_its_own_environment(stack: Stack, client: httpx.Client) -> None:
    run = start_run(client, str(stack.script("env.sh", "env\n")), env_vars={"MY_SETTING": "visible"})

    done = wait_for_status(stack, client, run["id"])

    assert done["status"] == "completed", done
    text = logs(client, run["id"]).text
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert set(env) <= SCRIPT_ENV | SHELL_ENV | {"MY_SETTING"}, sorted(env)
    assert env["MY_SETTING"] == "visible"
    assert env["SCRIPTOPS_RUN_ID"] == run["id"]
    assert env["SCRIPTOPS_CORRELATION_ID"] == run["correlation_id"]
    for name in ("SCRIPTOPS_SECRET_KEY", "DATABASE_URL", "SCRIPTOPS_REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        assert name not in env
    assert set(stack.env()) & set(env) <= {"PATH", "HOME", "LANG"}
    for secret in (stack.secret_key, CANARY, stack.env().get("DATABASE_URL", CANARY)):
        assert secret not in text


def test_a_symlink_out_of_the_allowed_root_is_refused_and_nothing_runs(
    stack: Stack, client: httpx.Client, outside: tuple[str, str]
) -> None:
    evil, marker = outside
    link = stack.scripts / f"link-{uuid.uuid4().hex[:8]}.sh"
    link.symlink_to(evil)
    folder_link = stack.scripts / f"folder-{uuid.uuid4().hex[:8]}"
    folder_link.symlink_to(os.path.dirname(evil), target_is_directory=True)
    before = run_count(client)

    for path in (str(link), f"{folder_link}/evil.sh", link.name):
        response = client.post("/api/run", json={"script_path": path})
        assert response.status_code == 400, (path, response.text)
        assert "script_path" in response.text

    drain_queue(stack, client)
    assert run_count(client) == before + 1  # the probe only
    assert not os.path.exists(marker)


def test_a_script_swapped_for_a_symlink_after_it_was_queued_is_refused_by_the_worker(
    stack: Stack, client: httpx.Client, outside: tuple[str, str]
) -> None:
    evil, marker = outside
    blocker = start_run(client, str(stack.script("blocker.sh", "echo started\nsleep 300\n")))
    wait_for_output(client, blocker["id"], "started")
    innocent = stack.script(f"innocent-{uuid.uuid4().hex[:8]}.sh", "echo innocent\n")
    queued = start_run(client, str(innocent))
    # Swap the checked file for a link out of the root while the run waits.
    swap = innocent.with_suffix(".tmp")
    swap.symlink_to(evil)
    swap.replace(innocent)

    assert client.post(f"/api/runs/{blocker['id']}/kill").status_code == 200

    run = wait_for_status(stack, client, queued["id"])
    assert run["status"] == "failed", run
    assert run["error_summary"]["reason"] == "path_not_allowed"
    assert "rejected" in event_kinds(client, queued["id"])
    assert "start" not in event_kinds(client, queued["id"])
    assert not os.path.exists(marker)


def test_a_readonly_key_may_read_but_not_run(stack: Stack, client: httpx.Client) -> None:
    readonly_key = stack.manage("create_api_key", "ro", "--role", "readonly").stdout.strip().splitlines()[-1]
    path = str(stack.script("ro.sh", "echo hi\n"))
    before = run_count(client)

    with stack.client(key=readonly_key) as readonly:
        assert readonly.post("/api/run", json={"script_path": path}).status_code == 403
        assert readonly.get("/api/runs").status_code == 200
        assert readonly.post(f"/api/runs/{uuid.uuid4()}/stop").status_code == 403

    assert run_count(client) == before


def test_requests_without_a_valid_key_are_refused(stack: Stack, client: httpx.Client) -> None:
    path = str(stack.script("anon.sh", "echo hi\n"))
    before = run_count(client)

    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        assert anonymous.get("/api/runs").status_code in (401, 403)
        assert anonymous.post("/api/run", json={"script_path": path}).status_code in (401, 403)
        assert anonymous.get("/api/health").status_code == 200
    with stack.client(key="sops_not-a-real-key") as forged:
        assert forged.get("/api/runs").status_code in (401, 403)
        assert forged.post("/api/run", json={"script_path": path}).status_code in (401, 403)

    assert run_count(client) == before


# Addresses of their own (daphne, started with --proxy-headers, takes the client's from
# X-Forwarded-For): the lockouts below never touch the other tests' 127.0.0.1.
def test_failed_sign_ins_through_daphne_lock_the_address_out(stack: Stack) -> None:
    stack.manage(
        "shell",
        "-c",
        "from core.models import User; User.objects.create_user('it-alice', password='it-pw-1')",
    )
    guesser = {"X-Forwarded-For": "203.0.113.50"}
    with httpx.Client(base_url=stack.url, timeout=30) as browser:
        browser.get("/login/")
        token = browser.cookies["csrftoken"]

        def sign_in(password: str, headers: dict[str, str]) -> httpx.Response:
            form = {"username": "it-alice", "password": password, "csrfmiddlewaretoken": token}
            return browser.post("/login/", data=form, headers=headers)

        codes = [sign_in("wrong", guesser).status_code for _ in range(5)]
        refused = sign_in("it-pw-1", guesser)
        elsewhere = sign_in("it-pw-1", {"X-Forwarded-For": "198.51.100.50"})

    assert codes == [200] * 4 + [429]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in refused.text
    assert "default-src 'self'" in refused.headers["Content-Security-Policy"]
    assert elsewhere.status_code == 302


def test_guessed_api_keys_through_daphne_are_answered_429_then_4429(stack: Stack) -> None:
    guesser = {"X-Forwarded-For": "203.0.113.51"}
    with httpx.Client(base_url=stack.url, timeout=30, headers=guesser) as http:
        codes = [
            http.get("/api/runs", headers={"Authorization": f"Bearer sops_guess-{i}"}).status_code
            for i in range(20)
        ]
        refused = http.get("/api/runs", headers={"Authorization": f"Bearer {stack.key}"})

    assert codes == [401] * 20
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    url = f"ws://127.0.0.1:{stack.port}/ws/runs/?api_key={stack.key}"
    with (
        connect(url, open_timeout=30, additional_headers=guesser) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    with stack.client() as elsewhere:  # the key itself still works from other addresses
        assert elsewhere.get("/api/runs").status_code == 200
