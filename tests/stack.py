"""A real ScriptOps stack in subprocesses: ``manage.py serve`` (daphne + qcluster + reaper).

Used by the integration tests and by ``make bench``. Each stack has its own data
dir, allowed root, database (an SQLite file, or a fresh PostgreSQL database when
``DATABASE_URL`` points at PostgreSQL) and queue name (so stacks sharing one Redis
never take each other's tasks).

Several hosts of one installation: ``Stack(..., share=first)`` is another host of
``first``'s installation (its database, Redis, queue name, secret key and scripts; its
own data dir), started with ``serve_args`` (``("--no-web",)``: a worker host; ``("--no-worker",)``:
a web host). ``start_runner()`` adds a runner process to a stack (``manage.py runner``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import psutil

BASE_DIR = Path(__file__).resolve().parent.parent

# Debian's Chromium, for the browser tests and the viewer benchmark (never a downloaded
# browser). Without the background-networking flags it tries the closed network at start.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# What ``manage.py runner`` prints once it takes runs.
RUNNER_READY = "Runner: up to"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_database(url: str) -> tuple[str, str]:
    """Create a fresh database on the server of ``url``; return (its url, its name)."""
    import psycopg

    name = f"scriptops_it_{uuid.uuid4().hex[:12]}"
    parsed = urlparse(url)
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(parsed._replace(path=f"/{name}")), name


def _drop_postgres_database(url: str, name: str) -> None:
    import psycopg

    admin_url = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    def __init__(
        self,
        base_dir: Path,
        *,
        workers: int = 2,
        max_runs: int | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        serve_args: Sequence[str] = (),
        share: Stack | None = None,
    ):
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.scripts = self.base_dir / "scripts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.max_runs = max_runs
        self._database_url = database_url if database_url is not None else os.environ.get("DATABASE_URL")
        self.redis_url = redis_url if redis_url is not None else os.environ.get("SCRIPTOPS_REDIS_URL")
        self._pg_name: str | None = None
        # Fixed per stack: every process of it (serve and any ``manage()`` call) must
        # share the secret key and the queue name.
        self.secret_key = "integration-secret-" + uuid.uuid4().hex
        self.queue_name = f"it-{uuid.uuid4().hex[:10]}"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""
        self.log_path = self.base_dir / "serve.log"
        # Extra ``serve`` options: ``--no-web`` (no HTTP: the stack is ready once its
        # runner is) or ``--no-worker``.
        self.serve_args = list(serve_args)
        self.extra_procs: list[subprocess.Popen[bytes]] = []
        self.shared_with = share
        if share is not None:
            # Another host of ``share``'s installation: everything but the data dir (its
            # output files, uploads, bus sockets) is the same — the scripts too, as if
            # deployed at the same path on every host.
            if share.proc is None:
                raise RuntimeError("start the stack to share before the one sharing it")
            self.scripts = share.scripts
            self._database_url = share.database_url
            self.redis_url = share.redis_url
            self.secret_key = share.secret_key
            self.queue_name = share.queue_name
            self.key = share.key

    @property
    def database_url(self) -> str:
        """The database every process of this stack uses (a started stack's)."""
        return self._database_url or f"sqlite:///{self.data_dir / 'scriptops.sqlite3'}"

    @property
    def web(self) -> bool:
        return "--no-web" not in self.serve_args

    # -- environment -------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "scriptops.settings",
            "SCRIPTOPS_DATA_DIR": str(self.data_dir),
            "SCRIPTOPS_ALLOWED_ROOTS": str(self.scripts),
            "SCRIPTOPS_SECRET_KEY": self.secret_key,
            "SCRIPTOPS_WORKERS": str(self.workers),
            "SCRIPTOPS_QUEUE_NAME": self.queue_name,
            "SCRIPTOPS_STOP_GRACE": "1",
            "SCRIPTOPS_HEARTBEAT_INTERVAL": "1",
            "SCRIPTOPS_HEARTBEAT_TIMEOUT": "5",
            "SCRIPTOPS_THROTTLE_RATE": "100000/min",
        }
        if self.max_runs is not None:
            env["SCRIPTOPS_MAX_RUNS"] = str(self.max_runs)
        if self._database_url:
            env["DATABASE_URL"] = self._database_url
        if self.redis_url:
            env["SCRIPTOPS_REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env(),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.scripts.mkdir(parents=True, exist_ok=True)
        if self.shared_with is None:
            self._prepare()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(BASE_DIR / "manage.py"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--reap-interval",
                    "1",
                    *self.serve_args,
                ],
                env=self.env(),
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log()}")
            if not self.web:
                # No HTTP to ask: ready once the runner says so (it takes runs from then on).
                if self._log_count(RUNNER_READY):
                    return self
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                        return self
            time.sleep(0.1)
        raise RuntimeError(f"stack did not become healthy:\n{self.log()}")

    def _prepare(self) -> None:
        """A database of its own, migrated, with an admin API key."""
        if self._database_url and self._database_url.startswith(("postgres", "postgresql")):
            self._database_url, self._pg_name = _postgres_database(self._database_url)
        # One process for both (a Django start-up is most of the cost of each).
        prepare = (
            "import django; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', interactive=False, verbosity=0); "
            "call_command('create_api_key', 'it-admin', role='admin')"
        )
        done = subprocess.run(
            [sys.executable, "-c", prepare],
            env=self.env(),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"preparing the stack failed:\n{done.stdout}\n{done.stderr}")
        self.key = done.stdout.strip().splitlines()[-1]

    def start_runner(self, *args: str, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """One more runner process in this stack's environment (``manage.py runner``, e.g.
        with ``--no-housekeeping``): it shares the stack's database and queue. Returns
        once it takes runs; ``stop()`` stops it (SIGTERM) before serve."""
        marks = self._log_count(RUNNER_READY)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "manage.py"), "runner", *args],
                env=self.env(),
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.extra_procs.append(proc)
        deadline = time.monotonic() + timeout
        while self._log_count(RUNNER_READY) <= marks:
            if proc.poll() is not None:
                raise RuntimeError(f"runner exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"runner did not start:\n{self.log()}")
            time.sleep(0.1)
        return proc

    def stop(self) -> list[str]:
        """Stop serve (SIGTERM, as a user would), then kill anything of the stack left over.

        Returns a description of each left-over process it had to kill: serve is
        expected to leave none (not a worker, not a script, not a script's children).
        """
        for extra in self.extra_procs:
            if extra.poll() is None:
                extra.send_signal(signal.SIGTERM)
        for extra in self.extra_procs:
            try:
                extra.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(extra.pid, signal.SIGKILL)
                extra.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        killed: list[str] = []
        if self.proc is not None:
            # Processes killed at the very end may still be on their way out.
            deadline = time.monotonic() + 3.0
            left = self.leftovers()
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left = self.leftovers()
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    killed.append(f"{proc.pid} {' '.join(proc.cmdline())}")
                    proc.kill()
        if self._pg_name and self._database_url:
            with contextlib.suppress(Exception):
                _drop_postgres_database(self._database_url, self._pg_name)
            self._pg_name = None
        return killed

    def leftovers(self) -> list[psutil.Process]:
        """Live processes of this stack other than serve: its children, workers and scripts.

        Found by their environment (the stack's data dir), their command line or their
        working directory (scripts run in the stack's folders, and so do their children).
        """
        base = str(self.base_dir)
        data_dir = str(self.data_dir)
        mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        if self.proc is not None and self.proc.poll() is None:
            mine.add(self.proc.pid)
        found: list[psutil.Process] = []
        for proc in psutil.process_iter():
            if proc.pid in mine:
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if any(part == base or base + os.sep in part for part in proc.cmdline()):
                    found.append(proc)
                    continue
                cwd = proc.cwd()
                if cwd == base or cwd.startswith(base + os.sep):
                    found.append(proc)
                    continue
                if proc.environ().get("SCRIPTOPS_DATA_DIR") == data_dir:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def _log_count(self, text: str) -> int:
        """How often ``text`` appears in the whole log (``log()`` is only its tail)."""
        try:
            return self.log_path.read_text(errors="replace").count(text)
        except FileNotFoundError:
            return 0

    def log(self, tail: int = 5000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------
    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=timeout,
        )

    def script(self, name: str, body: str, mode: int = 0o755) -> Path:
        path = self.scripts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        path.chmod(mode)
        return path

    def wait_for_run(
        self,
        client: httpx.Client,
        run_id: str,
        *,
        statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
            if run.get("status") in statuses:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run.get('status')} after {timeout}s\n{self.log()}")
            time.sleep(0.05)
