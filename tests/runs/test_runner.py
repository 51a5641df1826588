"""One Runner loop for many runs: every run keeps the guarantees of a run on its own.

Real scripts in real subprocesses; the hub and the reporters are in-test recorders (no
database). Assertions compare counts and orders, never tight timings: the machine is
small and shared.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from runs.engine import Limits, Outcome, ProcInfo, Sample, Stats, scan_processes
from runs.runner import Runner, RunSpec
from tests.runs.helpers import DEADLINE, RecordingReporter, is_dead, is_gone, process_of, strays, wait_for

__all__ = ["strays"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.usefixtures("strays")


@dataclass
class RecordingHub:
    """An in-test :class:`runs.runner.Hub`: control requests to hand out, calls counted."""

    pending: dict[str, str] = field(default_factory=dict)
    control_calls: list[list[str]] = field(default_factory=list)
    heartbeat_calls: list[dict[str, Stats]] = field(default_factory=list)

    def controls(self, keys: Sequence[str]) -> Mapping[str, str]:
        self.control_calls.append(list(keys))
        return {key: self.pending.pop(key) for key in keys if key in self.pending}

    def heartbeats(self, stats: Mapping[str, Stats]) -> None:
        self.heartbeat_calls.append(dict(stats))


class CountingScan:
    """The runner's ``/proc`` scan, counted (and made to cost ``burn`` seconds of CPU)."""

    def __init__(self, burn: float = 0.0) -> None:
        self.calls = 0
        self.burn = burn

    def __call__(self) -> dict[int, ProcInfo]:
        self.calls += 1
        end = time.thread_time() + self.burn
        while time.thread_time() < end:
            pass
        return scan_processes()


@pytest.fixture
def make_runner() -> Iterator[Callable[..., Runner]]:
    runners: list[Runner] = []

    def make(hub: RecordingHub, **options: object) -> Runner:
        runner = Runner(hub, heartbeat_interval=0.2, **options)  # type: ignore[arg-type]
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.close()  # kills whatever a failing test left running


def spec(script: Path, key: str, **limits: float | None) -> RunSpec:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "SCRIPTOPS_RUN_ID": key}
    options: dict[str, float | None] = {"stop_grace": 1.0, **limits}
    return RunSpec(cmd=["bash", str(script)], cwd=str(script.parent), env=env, limits=Limits(**options))


def drive(runner: Runner, until: Callable[[], bool], *, deadline: float = DEADLINE) -> None:
    """Turn the loop in this thread until ``until()`` holds; fail after ``deadline``."""
    end = time.monotonic() + deadline
    while not until():
        if time.monotonic() > end:
            pytest.fail(f"not there within {deadline:g}s")
        runner.step(max_wait=0.05)


def done(*futures: Future[Outcome]) -> Callable[[], bool]:
    return lambda: all(f.done() for f in futures)


def ticker(make_script: Callable[..., Path], name: str) -> Path:
    """Prints a numbered line every 50 ms until a file named ``<name>.go`` appears."""
    return make_script(
        f"{name}.sh",
        f"""
        i=0
        while [ ! -e {name}.go ]; do echo "{name} $i"; i=$((i+1)); sleep 0.05; done
        echo "{name} done"
        """,
    )


def ticks(reporter: RecordingReporter) -> int:
    return reporter.text("stdout").count("\n")


def assert_ticked_in_order(reporter: RecordingReporter, name: str) -> None:
    lines = reporter.text("stdout").splitlines()
    assert lines[-1] == f"{name} done"
    assert lines[:-1] == [f"{name} {i}" for i in range(len(lines) - 1)]


def test_two_hundred_runs_in_one_loop_complete_with_exact_output(make_script: Callable[..., Path]):
    script = make_script(
        "many.sh",
        """
        echo "out $1 one"
        echo "err $1" >&2
        printf 'out %s two\\nno newline %s' "$1" "$1"
        """,
    )
    hub = RecordingHub()
    runner = Runner(hub)
    reporters = {f"r{i}": RecordingReporter() for i in range(200)}
    futures = {}
    # Submitted from another thread while the loop runs: the wake-up pipe starts them.
    serving = threading.Thread(target=runner.serve)
    serving.start()
    try:
        for key, reporter in reporters.items():
            run = spec(script, key)
            futures[key] = runner.submit(
                key, RunSpec([*run.cmd, key], run.cwd, run.env, run.limits), reporter
            )
        outcomes = {key: future.result(timeout=120) for key, future in futures.items()}
    finally:
        runner.shutdown()
        serving.join(timeout=30)

    assert {(o.run_status, o.exit_code) for o in outcomes.values()} == {("success", 0)}
    for key, reporter in reporters.items():
        assert reporter.text("stdout") == f"out {key} one\nout {key} two\nno newline {key}"
        assert reporter.text("stderr") == f"err {key}\n"
        assert reporter.pid is not None
    assert len({r.pid for r in reporters.values()}) == 200
    assert runner.active == 0


def test_killing_one_run_ends_its_setsid_grandchild_and_leaves_the_others(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner], strays: list[psutil.Process]
):
    victim_script = make_script(
        "tree.sh",
        """
        trap '' TERM
        setsid sleep 300 &
        echo "grandchild $!"
        sleep 300
        """,
    )
    hub = RecordingHub()
    runner = make_runner(hub)
    victim = RecordingReporter()
    victim_future = runner.submit("victim", spec(victim_script, "victim"), victim)
    others = {name: RecordingReporter() for name in ("a", "b")}
    futures = {
        name: runner.submit(name, spec(ticker(make_script, name), name), r) for name, r in others.items()
    }
    drive(runner, lambda: victim.value_after("stdout", "grandchild") is not None)
    grandchild = victim.value_after("stdout", "grandchild") or 0
    proc = process_of(grandchild)
    assert proc is not None
    strays.append(proc)
    assert wait_for(lambda: os.getsid(grandchild) == grandchild)  # it left the run's session
    drive(runner, lambda: all(ticks(r) >= 3 for r in others.values()))

    hub.pending["victim"] = "kill"
    drive(runner, done(victim_future))
    outcome = victim_future.result()

    assert (outcome.run_status, outcome.exit_code, outcome.reason) == ("killed", -9, "killed on request")
    assert ("forced_termination", {"signal": "SIGKILL", "requested": True}) in victim.events
    drive(runner, lambda: is_gone(grandchild, proc.create_time()))  # killed and reaped
    # The others never noticed: still running, still printing.
    assert not any(f.done() for f in futures.values())
    counts = {name: ticks(r) for name, r in others.items()}
    drive(runner, lambda: all(ticks(r) >= counts[name] + 3 for name, r in others.items()))
    for name in others:
        (victim_script.parent / f"{name}.go").touch()
    drive(runner, done(*futures.values()))
    for name, reporter in others.items():
        assert (futures[name].result().run_status, futures[name].result().exit_code) == ("success", 0)
        assert_ticked_in_order(reporter, name)
        assert reporter.events == []


def test_pausing_one_run_freezes_only_that_run(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    hub = RecordingHub()
    runner = make_runner(hub)
    paused, running = RecordingReporter(), RecordingReporter()
    script = ticker(make_script, "p")
    folder = script.parent
    paused_future = runner.submit("p", spec(script, "p"), paused)
    running_future = runner.submit("r", spec(ticker(make_script, "r"), "r"), running)
    drive(runner, lambda: ticks(paused) >= 3 and ticks(running) >= 3)

    runner.command("p", "pause")
    drive(runner, lambda: paused.pauses == [True])
    assert wait_for(lambda: psutil.Process(paused.pid or 0).status() == psutil.STATUS_STOPPED)
    assert psutil.Process(running.pid or 0).status() != psutil.STATUS_STOPPED
    going = ticks(running)
    drive(runner, lambda: ticks(running) >= going + 2)  # turns that read what was in the pipe
    frozen, going = ticks(paused), ticks(running)
    drive(runner, lambda: ticks(running) >= going + 8)
    assert ticks(paused) == frozen

    hub.pending["p"] = "resume"
    drive(runner, lambda: paused.pauses == [True, False])
    drive(runner, lambda: ticks(paused) >= frozen + 3)
    for name in ("p", "r"):
        (folder / f"{name}.go").touch()
    drive(runner, done(paused_future, running_future))
    assert paused_future.result().run_status == running_future.result().run_status == "success"
    assert running.pauses == []
    assert_ticked_in_order(paused, "p")
    assert_ticked_in_order(running, "r")


def test_one_run_times_out_the_others_go_on(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    slow = make_script(
        "slow.sh",
        """
        trap 'echo "TERM ignored"' TERM
        echo started
        while true; do sleep 0.1; done
        """,
    )
    hub = RecordingHub()
    runner = make_runner(hub)
    timed, other = RecordingReporter(), RecordingReporter()
    timed_future = runner.submit("t", spec(slow, "t", timeout=1.0), timed)
    other_future = runner.submit("o", spec(ticker(make_script, "o"), "o"), other)

    drive(runner, done(timed_future))

    outcome = timed_future.result()
    assert (outcome.run_status, outcome.reason) == ("timeout", "timed out after 1s")
    assert outcome.exit_code == -9  # SIGTERM was ignored: SIGKILL after the stop grace
    assert timed.event_kinds() == ["timeout", "forced_termination"]
    assert timed.text("stdout").startswith("started\nTERM ignored\n")
    assert not other_future.done()
    (slow.parent / "o.go").touch()
    drive(runner, done(other_future))
    assert other_future.result().run_status == "success"
    assert_ticked_in_order(other, "o")


class FailingReporter(RecordingReporter):
    def output(self, stream: str, data: bytes | memoryview, ts: float, lines: int | None = None) -> None:
        super().output(stream, data, ts, lines)
        if b"boom" in bytes(data):
            raise RuntimeError("the store is full")


def test_a_reporter_error_fails_that_run_and_kills_its_tree_only(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner], strays: list[psutil.Process]
):
    failing = make_script(
        "failing.sh",
        """
        setsid sleep 300 &
        echo "grandchild $!"
        while [ ! -e boom.go ]; do sleep 0.05; done
        echo boom
        sleep 300
        """,
    )
    hub = RecordingHub()
    runner = make_runner(hub)
    broken, other = FailingReporter(), RecordingReporter()
    broken_future = runner.submit("f", spec(failing, "f"), broken)
    other_future = runner.submit("o", spec(ticker(make_script, "o"), "o"), other)
    drive(runner, lambda: broken.value_after("stdout", "grandchild") is not None and ticks(other) >= 2)
    grandchild = broken.value_after("stdout", "grandchild") or 0
    proc, root = process_of(grandchild), process_of(broken.pid or 0)
    assert proc is not None and root is not None
    strays.append(proc)
    (failing.parent / "boom.go").touch()

    drive(runner, done(broken_future))

    with pytest.raises(RuntimeError, match="the store is full"):
        broken_future.result()
    drive(runner, lambda: is_gone(root.pid, root.create_time()))
    drive(runner, lambda: is_gone(grandchild, proc.create_time()))
    assert not other_future.done()
    count = ticks(other)
    drive(runner, lambda: ticks(other) >= count + 3)
    (failing.parent / "o.go").touch()
    drive(runner, done(other_future))
    assert other_future.result().run_status == "success"
    assert_ticked_in_order(other, "o")


def test_control_requests_and_heartbeats_are_one_call_per_interval_for_all_runs(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    scripts = [ticker(make_script, f"c{i}") for i in range(20)]
    hub = RecordingHub()
    runner = make_runner(hub, control_interval=0.05)
    futures = [runner.submit(s.stem, spec(s, s.stem), RecordingReporter()) for s in scripts]
    drive(runner, lambda: len(runner._runs) == 20 and len(hub.control_calls) >= 1)
    calls, beats = len(hub.control_calls), len(hub.heartbeat_calls)
    started = time.monotonic()
    drive(runner, lambda: time.monotonic() - started >= 1.0)
    elapsed = time.monotonic() - started

    window = hub.control_calls[calls:]
    # One call a control interval, each for every run (not one a run: that would be 20x).
    assert 1 <= len(window) <= elapsed / 0.05 + 2
    assert all(sorted(keys) == sorted(s.stem for s in scripts) for keys in window)
    heartbeats = hub.heartbeat_calls[beats:]
    assert 1 <= len(heartbeats) <= elapsed / 0.2 + 2
    assert all(len(stats) == 20 for stats in heartbeats)

    # A request read in the batch reaches its run, and only its run.
    hub.pending["c3"] = "stop"
    drive(runner, done(futures[3]))
    assert futures[3].result().reason == "stopped on request"
    assert not any(f.done() for i, f in enumerate(futures) if i != 3)
    for script in scripts:
        (script.parent / f"{script.stem}.go").touch()
    drive(runner, done(*futures))


def test_one_scan_of_proc_per_sample_interval_serves_every_run(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    scripts = [ticker(make_script, f"s{i}") for i in range(20)]
    scan = CountingScan()
    hub = RecordingHub()
    runner = make_runner(hub, scan=scan)
    reporters = [RecordingReporter() for _ in scripts]
    futures = [
        runner.submit(s.stem, spec(s, s.stem, monitor_interval=0.1), r)
        for s, r in zip(scripts, reporters, strict=True)
    ]
    drive(runner, lambda: runner.sample_passes >= 2)
    scans, passes = scan.calls, runner.sample_passes
    samples = [len(r.samples) for r in reporters]
    started = time.monotonic()
    drive(runner, lambda: time.monotonic() - started >= 1.0)
    elapsed = time.monotonic() - started

    new_passes = runner.sample_passes - passes
    # Nothing but samples needed a scan meanwhile: one scan per pass, not one per run ...
    assert scan.calls - scans == new_passes
    assert 1 <= new_passes <= elapsed / 0.1 + 1
    # ... and every pass sampled every run (bash and its `sleep`: two processes).
    assert all(len(r.samples) - n >= new_passes - 1 for r, n in zip(reporters, samples, strict=True))
    assert max(s.children for r in reporters for s in r.samples) >= 1
    for script in scripts:
        (script.parent / f"{script.stem}.go").touch()
    drive(runner, done(*futures))
    assert {f.result().run_status for f in futures} == {"success"}


def test_sampling_slows_down_when_a_scan_costs_more_than_its_budget(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    script = ticker(make_script, "slow")
    scan = CountingScan(burn=0.02)  # 20 ms a scan: at 5 % of a core, one every 0.4 s
    runner = make_runner(RecordingHub(), scan=scan, sample_budget=0.05)
    future = runner.submit("slow", spec(script, "slow", monitor_interval=0.05), RecordingReporter())
    drive(runner, lambda: runner.sample_passes >= 2)
    assert runner.sample_interval >= 0.3
    (script.parent / "slow.go").touch()
    drive(runner, done(future))


def test_a_partial_line_is_flushed_while_the_run_waits(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    script = make_script(
        "partial.sh",
        """
        printf 'progress'
        while [ ! -e go ]; do sleep 0.05; done
        printf ' done'
        """,
    )
    runner = make_runner(RecordingHub())
    reporter = RecordingReporter()
    future = runner.submit("partial", spec(script, "partial"), reporter)
    drive(runner, lambda: reporter.text("stdout") == "progress")
    assert not future.done()
    (script.parent / "go").touch()
    drive(runner, done(future))
    assert [d for s, d, _ in reporter.chunks if s == "stdout"] == [b"progress", b" done"]


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_a_background_process_holding_the_pipes_does_not_hang_the_run(
    make_script: Callable[..., Path],
    make_runner: Callable[..., Runner],
    strays: list[psutil.Process],
    monkeypatch: pytest.MonkeyPatch,
    pidfd: bool,
):
    if not pidfd:  # an old kernel: the child's exit is looked for every REAP_POLL instead

        def no_pidfd(pid: int, flags: int = 0) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    script = make_script("leaves.sh", 'setsid sleep 300 &\necho "background $!"\nexit 0\n')
    runner = make_runner(RecordingHub())
    reporter = RecordingReporter()
    future = runner.submit("leaves", spec(script, "leaves"), reporter)
    drive(runner, lambda: reporter.value_after("stdout", "background") is not None)
    background = reporter.value_after("stdout", "background") or 0
    proc = process_of(background)
    assert proc is not None
    strays.append(proc)
    drive(runner, done(future))
    assert (future.result().run_status, future.result().exit_code) == ("success", 0)
    drive(runner, lambda: is_gone(background, proc.create_time()))


def test_a_command_that_cannot_start_fails_its_future_only(
    make_script: Callable[..., Path], make_runner: Callable[..., Runner]
):
    script = ticker(make_script, "fine")
    runner = make_runner(RecordingHub())
    bad = runner.submit(
        "bad", RunSpec(["/nonexistent/interpreter"], str(script.parent), {}), RecordingReporter()
    )
    good = runner.submit("fine", spec(script, "fine"), RecordingReporter())
    drive(runner, done(bad))
    with pytest.raises(OSError):
        bad.result()
    (script.parent / "fine.go").touch()
    drive(runner, done(good))
    assert good.result().run_status == "success"


# Each script leaves an orphan re-parented to the runner at once (its parent, a subshell,
# exits before any scan can see it), then waits for its go file.
ORPHAN_SCRIPT = """
echo "ready $$"
while [ ! -e begin ]; do sleep 0.02; done
( {launch} sleep 300 >/dev/null 2>&1 & echo "orphan $!" )
while [ ! -e {name}.go ]; do sleep 0.05; done
"""


@pytest.mark.parametrize(
    ("launch", "marker_env", "told_apart"),
    [
        ("setsid", "SCRIPTOPS_RUN_ID", True),  # by the run marker in its environment
        ("", None, True),  # by its session: it stayed in the run's
        ("setsid", None, False),  # nothing tells: left alone until both runs are over
    ],
    ids=["setsid-marker", "session", "setsid-unknown"],
)
def test_orphans_of_two_runs_are_told_apart(
    make_script: Callable[..., Path],
    make_runner: Callable[..., Runner],
    strays: list[psutil.Process],
    launch: str,
    marker_env: str | None,
    told_apart: bool,
):
    runner = make_runner(RecordingHub(), marker_env=marker_env)
    reporters = {name: RecordingReporter() for name in ("first", "second")}
    scripts = {
        name: make_script(f"{name}.sh", ORPHAN_SCRIPT.format(launch=launch, name=name)) for name in reporters
    }
    # No sample comes to see the orphans: only the scan made when a run ends can find them.
    futures = {
        name: runner.submit(name, spec(scripts[name], name, monitor_interval=600), r)
        for name, r in reporters.items()
    }
    # Both runs are alive before either starts its orphan: otherwise the start time alone
    # tells whose it is (rule 5), as it did on a slow CI machine.
    drive(runner, lambda: all(r.value_after("stdout", "ready") for r in reporters.values()))
    (scripts["first"].parent / "begin").touch()
    drive(runner, lambda: all(r.value_after("stdout", "orphan") for r in reporters.values()))
    orphans = {}
    for name, reporter in reporters.items():
        proc = process_of(reporter.value_after("stdout", "orphan") or 0)
        assert proc is not None
        strays.append(proc)
        orphans[name] = proc
    drive(runner, lambda: all(p.ppid() == os.getpid() for p in orphans.values()))  # re-parented to us

    (scripts["first"].parent / "first.go").touch()
    drive(runner, done(futures["first"]))

    second = orphans["second"]
    if told_apart:
        # Killed before the run is reported over (the loop is not turning here) ...
        first = orphans["first"]
        assert wait_for(lambda: is_dead(first.pid, first.create_time()), timeout=10)
        # ... and reaped.
        drive(runner, lambda: is_gone(first.pid, first.create_time()))
    else:
        # Another run ending scans again: still nobody can tell, still left alone.
        scans = runner.scans
        third = make_script("third.sh", "echo third\n")
        drive(runner, done(runner.submit("third", spec(third, "third"), RecordingReporter())))
        assert runner.scans > scans
        assert orphans["first"].is_running()  # it might be the second run's: not killed yet
    assert second.is_running() and second.status() != psutil.STATUS_ZOMBIE  # never another run's
    assert not futures["second"].done()

    (scripts["second"].parent / "second.go").touch()
    drive(runner, done(futures["second"]))
    for proc in orphans.values():
        drive(runner, lambda p=proc: is_gone(p.pid, p.create_time()))  # type: ignore[misc]


def test_samples_report_a_runs_own_tree(make_script: Callable[..., Path], make_runner: Callable[..., Runner]):
    script = make_script(
        "memory.sh",
        """
        python3 -c 'import time; b = b"x" * 30_000_000; print("allocated", flush=True); time.sleep(300)' &
        while [ ! -e memory.go ]; do sleep 0.05; done
        kill %1
        """,
    )
    light = ticker(make_script, "light")
    runner = make_runner(RecordingHub())
    heavy_reporter, light_reporter = RecordingReporter(), RecordingReporter()
    futures = [
        runner.submit("heavy", spec(script, "heavy"), heavy_reporter),
        runner.submit("light", spec(light, "light"), light_reporter),
    ]
    drive(runner, lambda: "allocated" in heavy_reporter.text("stdout"))
    count = len(heavy_reporter.samples)
    drive(runner, lambda: len(heavy_reporter.samples) >= count + 2 and len(light_reporter.samples) >= 2)
    assert heavy_reporter.samples[-1].rss > 20_000_000
    assert max(s.rss for s in light_reporter.samples) < 20_000_000
    assert all(isinstance(s, Sample) and s.cpu_percent >= 0 for s in heavy_reporter.samples)
    (script.parent / "memory.go").touch()
    (script.parent / "light.go").touch()
    drive(runner, done(*futures))
    assert futures[0].result().stats.peak_rss > 20_000_000
