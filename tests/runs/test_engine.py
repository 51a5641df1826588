"""The process supervisor, tested on its own through the Reporter protocol.

Every test runs a real script in a real subprocess; the reporter is the in-test
:class:`~tests.runs.helpers.RecordingReporter` (no database). Deadlines are
functional (a run must end, a process must be gone), never performance limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from runs import engine
from runs.engine import Supervisor, kill_process_tree
from runs.logstore import LogReader
from tests.runs.helpers import (
    DEADLINE,
    RecordingReporter,
    drive,
    is_dead,
    is_gone,
    make_supervisor,
    process_of,
    run_to_end,
    strays,
    wait_for,
)

__all__ = ["strays"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.usefixtures("strays")

MAIN = Path(__file__).resolve().parents[2]


def bash(script: Path) -> list[str]:
    return ["bash", str(script)]


def python(script: Path) -> list[str]:
    return [sys.executable, "-u", str(script)]


def test_success_captures_stdout_and_stderr_separately_and_in_order(make_script: Callable[..., Path]):
    script = make_script(
        "hello.sh",
        """
        echo out1
        echo err1 >&2
        echo out2
        echo err2 >&2
        """,
    )
    reporter = RecordingReporter()

    outcome = run_to_end(make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter))

    assert (outcome.exit_code, outcome.run_status, outcome.reason) == (0, "success", "")
    assert reporter.text("stdout") == "out1\nout2\n"
    assert reporter.text("stderr") == "err1\nerr2\n"
    assert reporter.pid is not None and reporter.create_time is not None
    stamps = [ts for _, _, ts in reporter.chunks]
    assert stamps == sorted(stamps)
    assert outcome.finished >= outcome.started


@contextlib.contextmanager
def started(supervisor: Supervisor) -> Iterator[Supervisor]:
    """A started supervisor, its run killed and ended whatever the test does."""
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor._signal_all(signal.SIGKILL)
        run_to_end(supervisor)


def test_first_output_is_stored_before_the_start_is_reported(make_script: Callable[..., Path]):
    """The start report is a database write in the worker: a script's first line must not
    wait for it to become readable."""
    script = make_script("early.sh", "echo first\nsleep 30\n")
    reporter = RecordingReporter()
    with started(make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter)) as supervisor:
        assert reporter.pid is None  # not reported by start() itself
        assert supervisor.proc is not None and supervisor.proc.stdout is not None
        ready, _, _ = select.select([supervisor.proc.stdout], [], [], DEADLINE)
        assert ready, "the script printed nothing"
        order: list[str] = []
        reporter_output, reporter_started = reporter.output, reporter.started
        reporter.output = lambda *a, **k: (order.append("output"), reporter_output(*a, **k))[-1]  # type: ignore[method-assign]
        reporter.started = lambda *a: (order.append("started"), reporter_started(*a))[-1]  # type: ignore[method-assign]
        supervisor.step()
        assert order == ["output", "started"]
        assert reporter.pid == supervisor.proc.pid and reporter.text("stdout") == "first\n"


def test_a_silent_script_is_reported_started_at_once(make_script: Callable[..., Path]):
    script = make_script("silent.sh", "sleep 30\n")
    reporter = RecordingReporter()
    timers = {"monitor_interval": 5.0, "control_interval": 5.0, "heartbeat_interval": 5.0}
    with started(
        make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, **timers)
    ) as supervisor:
        t0 = time.monotonic()
        supervisor.step()  # waits START_REPORT_WAIT for output, not until the next timer (0.5 s)
        assert time.monotonic() - t0 < 0.25
        assert supervisor.proc is not None and reporter.pid == supervisor.proc.pid


def test_reads_split_anywhere_are_reported_as_whole_lines_with_their_count() -> None:
    reporter = RecordingReporter()  # checks each chunk's line count against its bytes
    supervisor = make_supervisor(["true"], cwd="/", reporter=reporter)
    reads = [b"ab", b"c\nde", b"f\ng\nh", b"\n", b"i\nj\n", b"k", b"\n"]
    for data in reads:
        supervisor._consume("stdout", data)
    assert reporter.text("stdout") == b"".join(reads).decode()
    assert all(chunk.endswith(b"\n") for _, chunk, _ in reporter.chunks)
    assert supervisor._pending["stdout"] == b""


def test_non_zero_exit_is_a_failure_with_its_code(make_script: Callable[..., Path]):
    script = make_script("fail.sh", "echo 'something broke' >&2\nexit 3\n")
    reporter = RecordingReporter()

    outcome = run_to_end(make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter))

    assert (outcome.exit_code, outcome.run_status) == (3, "failed")
    assert outcome.reason == "exited with code 3"
    assert reporter.text("stderr") == "something broke\n"


def test_heavy_interleaved_stdout_and_stderr_do_not_deadlock(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    # Whole-line chunks are asserted below: a writer stalled mid-line by a busy machine
    # for longer even than PARTIAL_FLUSH_MAX must not have its partial line flushed early
    # (partial lines are tested on their own).
    monkeypatch.setattr(engine, "PARTIAL_FLUSH", 60.0)
    # ~20 MB on each pipe, written alternately in blocks far larger than a pipe buffer
    # can hold in total: a reader that blocks on one pipe would deadlock the child.
    script = make_script(
        "chatty.py",
        """
        import sys
        out, err = sys.stdout.buffer, sys.stderr.buffer
        for block in range(2000):
            base = block * 100
            out.write(b"".join(b"o%08d %s\\n" % (i, b"x" * 90) for i in range(base, base + 100)))
            err.write(b"".join(b"e%08d %s\\n" % (i, b"y" * 90) for i in range(base, base + 100)))
        """,
    )
    reporter = RecordingReporter()

    outcome = run_to_end(make_supervisor(python(script), cwd=str(script.parent), reporter=reporter))

    assert outcome.run_status == "success"
    expected_out = b"".join(b"o%08d %s\n" % (i, b"x" * 90) for i in range(200_000))
    expected_err = b"".join(b"e%08d %s\n" % (i, b"y" * 90) for i in range(200_000))
    assert b"".join(d for s, d, _ in reporter.chunks if s == "stdout") == expected_out
    assert b"".join(d for s, d, _ in reporter.chunks if s == "stderr") == expected_err
    # Output is handed over in whole lines.
    assert all(data.endswith(b"\n") for _, data, _ in reporter.chunks)


def test_a_pipe_is_read_in_small_reads_until_it_floods_then_in_large_ones(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    """os.read allocates what it asks for: a trickle is read SMALL_READ at a time, a
    flood READ_SIZE at a time, and a trickle after a flood small again; every byte arrives."""
    asked: list[int] = []
    real_read = os.read

    def read(fd: int, size: int) -> bytes:
        if size in (engine.SMALL_READ, engine.READ_SIZE):  # not subprocess's own reads
            asked.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(engine.os, "read", read)
    script = make_script(
        "flood.py",
        """
        import sys, time
        out = sys.stdout.buffer
        out.write(b"first\\n"); out.flush(); time.sleep(0.3)
        out.write(b"".join(b"%08d %s\\n" % (i, b"x" * 90) for i in range(60_000))); out.flush()
        time.sleep(0.3)
        out.write(b"last\\n"); out.flush()
        """,
    )
    reporter = RecordingReporter()

    outcome = run_to_end(make_supervisor(python(script), cwd=str(script.parent), reporter=reporter))

    assert outcome.run_status == "success"
    flood = b"".join(b"%08d %s\n" % (i, b"x" * 90) for i in range(60_000))
    assert reporter.text("stdout").encode() == b"first\n" + flood + b"last\n"
    assert asked[0] == engine.SMALL_READ
    assert engine.READ_SIZE in asked  # the flood (6 MB) filled small reads
    assert asked[-1] == engine.SMALL_READ  # "last" and the end of the pipe: small again


def waits_mid_line(make_script: Callable[..., Path], first: str, rest: str) -> Path:
    """A script that prints ``first`` (no newline), waits for a file named ``go`` in its
    folder, then prints ``rest`` (printf escapes: ``\\n`` ends the line)."""
    return make_script(
        "mid-line.sh",
        f"""
        printf '{first}'
        while [ ! -e go ]; do sleep 0.02; done
        printf '{rest}'
        """,
    )


def test_partial_line_without_newline_is_flushed_while_running_and_at_exit(
    make_script: Callable[..., Path],
):
    script = waits_mid_line(make_script, "progress", " done")
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter)

    # The partial line reaches the reporter while the script is still waiting ...
    assert drive(supervisor, until=lambda: reporter.text("stdout") == "progress")
    assert supervisor.returncode is None
    # ... and the final piece, without newline either, once the pipe closes.
    (script.parent / "go").touch()
    outcome = run_to_end(supervisor)

    assert outcome.run_status == "success"
    assert [d for s, d, _ in reporter.chunks if s == "stdout"] == [b"progress", b" done"]


# A writer that is runnable (state R) but does not finish its line: on a busy machine it
# is the one held off the CPU between the two pipe reads its line straddles. Here it
# spins, which keeps it runnable whatever the load.
SPIN_MID_LINE = """
import os, sys, time
os.write(1, b"half")
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end and not os.path.exists("go"):
    pass
os.write(1, b" and the rest\\n")
"""


def test_a_line_whose_writer_is_runnable_mid_line_is_kept_whole(make_script: Callable[..., Path]):
    # Quiet for PARTIAL_FLUSH, yet still runnable: the partial line is not the script's
    # last word, and handing it on would store one line as two.
    script = make_script("spin.py", SPIN_MID_LINE)
    reporter = RecordingReporter()
    spin = str(engine.PARTIAL_FLUSH * 3)
    supervisor = make_supervisor([*python(script), spin], cwd=str(script.parent), reporter=reporter)

    outcome = run_to_end(supervisor)

    assert outcome.run_status == "success"
    assert [d for s, d, _ in reporter.chunks if s == "stdout"] == [b"half and the rest\n"]


def test_a_partial_line_whose_rest_is_in_the_pipe_is_not_flushed_by_a_late_tick(
    make_script: Callable[..., Path],
):
    # The reader held up (a busy machine): the tick that comes long after the first half
    # was read finds the rest of the line waiting in the pipe. Flushing the half then,
    # however late, would store one line as two; the next read completes it.
    script = waits_mid_line(make_script, "half", " and the rest\\n")
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter)
    supervisor.start()
    assert wait_for(lambda: supervisor.step() and supervisor._pending["stdout"] == b"half")
    (script.parent / "go").touch()
    fd = next(fd for fd, name in supervisor._streams.items() if name == "stdout")
    assert wait_for(lambda: select.select([fd], [], [], 0)[0] == [fd])  # the rest, unread

    supervisor.tick(supervisor.clock() + engine.PARTIAL_FLUSH_MAX * 10)

    assert reporter.chunks == []
    assert run_to_end(supervisor).run_status == "success"
    assert [d for s, d, _ in reporter.chunks if s == "stdout"] == [b"half and the rest\n"]


def test_a_partial_line_of_a_runnable_writer_still_shows_after_partial_flush_max(
    make_script: Callable[..., Path],
):
    # A busy script that printed "working..." and computes: its partial line is put off
    # for PARTIAL_FLUSH_MAX at most, not until the end of its computation.
    script = make_script("spin.py", SPIN_MID_LINE)
    reporter = RecordingReporter()
    supervisor = make_supervisor([*python(script), "600"], cwd=str(script.parent), reporter=reporter)
    began = time.monotonic()

    assert drive(supervisor, until=lambda: reporter.text("stdout") == "half")
    waited = time.monotonic() - began
    assert supervisor.returncode is None
    assert waited >= engine.PARTIAL_FLUSH_MAX  # put off while the spinner was runnable
    (script.parent / "go").touch()
    outcome = run_to_end(supervisor)

    assert outcome.run_status == "success"
    assert [d for s, d, _ in reporter.chunks if s == "stdout"] == [b"half", b" and the rest\n"]


def test_timeout_sends_term_then_kill_after_grace_to_script_that_traps_term(
    make_script: Callable[..., Path],
):
    script = make_script(
        "stubborn.sh",
        """
        trap 'echo "TERM ignored"' TERM
        echo ready
        while true; do sleep 0.1; done
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, timeout=1.0)

    outcome = run_to_end(supervisor, deadline=15)

    assert outcome.run_status == "timeout"
    assert outcome.reason == "timed out after 1s"
    assert outcome.exit_code == -9  # SIGTERM was ignored: SIGKILL ended it
    assert reporter.event_kinds() == ["timeout", "forced_termination"]
    assert reporter.events[1][1] == {"signal": "SIGKILL"}
    assert "TERM ignored" in reporter.text("stdout")
    assert is_gone(reporter.pid or 0, reporter.create_time)


def test_stop_lets_a_script_that_traps_term_exit_cleanly(make_script: Callable[..., Path]):
    script = make_script(
        "graceful.sh",
        """
        trap 'echo "cleaning up"; exit 0' TERM
        echo ready
        while true; do sleep 0.1; done
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, stop_grace=20.0)
    assert drive(supervisor, until=lambda: "ready" in reporter.text("stdout"))

    reporter.commands.append("stop")
    outcome = run_to_end(supervisor)

    assert (outcome.run_status, outcome.exit_code) == ("killed", 0)
    assert outcome.reason == "stopped on request"
    assert reporter.text("stdout") == "ready\ncleaning up\n"
    assert "forced_termination" not in reporter.event_kinds()


def test_a_stop_signals_each_process_once_a_trap_runs_once(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    """The group gets one SIGTERM; a process that left it (``setsid``) one of its own. (A
    second one could run a script's clean-up trap twice: CI saw "cleaning up" twice.) The
    signals are really sent: the spies only count them."""
    script = make_script(
        "graceful.sh",
        """
        trap 'echo "cleaning up"; exit 0' TERM
        sleep 300 &
        setsid sleep 300 &
        echo "apart $!"
        echo ready
        while true; do sleep 0.1; done
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, stop_grace=20.0)
    assert drive(supervisor, until=lambda: "ready" in reporter.text("stdout"))
    apart = int(reporter.text("stdout").split()[1])
    sent: list[tuple[str, int, int]] = []
    killpg, send_signal = os.killpg, psutil.Process.send_signal

    def spy_killpg(pgid: int, sig: int) -> None:
        sent.append(("group", pgid, sig))
        killpg(pgid, sig)

    def spy_send_signal(proc: psutil.Process, sig: int) -> None:
        sent.append(("process", proc.pid, sig))
        send_signal(proc, sig)

    monkeypatch.setattr(os, "killpg", spy_killpg)
    monkeypatch.setattr(psutil.Process, "send_signal", spy_send_signal)

    reporter.commands.append("stop")
    outcome = run_to_end(supervisor)

    assert (outcome.run_status, outcome.exit_code) == ("killed", 0)
    assert reporter.text("stdout") == f"apart {apart}\nready\ncleaning up\n"
    terms = [(kind, target) for kind, target, sig in sent if sig == signal.SIGTERM]
    assert terms == [("group", reporter.pid), ("process", apart)]
    assert "forced_termination" not in reporter.event_kinds()


def test_kill_also_ends_grandchild_that_left_the_group(
    make_script: Callable[..., Path], strays: list[psutil.Process]
):
    script = make_script(
        "tree.sh",
        """
        trap '' TERM
        setsid sleep 300 &
        echo "grandchild $!"
        sleep 300
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter)
    assert drive(supervisor, until=lambda: reporter.value_after("stdout", "grandchild") is not None)
    grandchild = reporter.value_after("stdout", "grandchild") or 0
    proc = process_of(grandchild)
    assert proc is not None
    strays.append(proc)
    # It really left the script's session (and so its process group).
    assert wait_for(lambda: os.getsid(grandchild) == grandchild)
    assert os.getsid(grandchild) != os.getsid(reporter.pid or 0)

    reporter.commands.append("kill")
    outcome = run_to_end(supervisor, deadline=15)

    assert (outcome.run_status, outcome.exit_code) == ("killed", -9)
    assert outcome.reason == "killed on request"
    assert ("forced_termination", {"signal": "SIGKILL", "requested": True}) in reporter.events
    assert wait_for(lambda: is_gone(grandchild, proc.create_time()), timeout=10)
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)


def test_pause_stops_output_and_paused_time_does_not_count_towards_timeout(
    make_script: Callable[..., Path], strays: list[psutil.Process]
):
    # Two tickers: the script and a grandchild that left its session; both must freeze.
    script = make_script(
        "ticker.sh",
        """
        setsid bash -c 'while true; do echo "gtick"; sleep 0.05; done' &
        echo "grandchild $!"
        i=0
        while true; do echo "tick $i"; i=$((i+1)); sleep 0.05; done
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, timeout=3.0)

    def ticks() -> int:
        return reporter.text("stdout").count("tick")

    def grandchild_ticks() -> int:
        return reporter.text("stdout").count("gtick")

    def for_seconds(seconds: float) -> Callable[[], bool]:
        end = time.monotonic() + seconds
        return lambda: time.monotonic() >= end

    started = time.monotonic()
    assert drive(supervisor, until=lambda: ticks() - grandchild_ticks() >= 3 and grandchild_ticks() >= 3)
    strays.append(psutil.Process(reporter.value_after("stdout", "grandchild") or 0))
    reporter.commands.append("pause")
    assert drive(supervisor, until=lambda: reporter.pauses == [True])
    paused_at = time.monotonic()
    assert wait_for(lambda: psutil.Process(reporter.pid or 0).status() == psutil.STATUS_STOPPED)
    assert drive(supervisor, until=for_seconds(0.3))  # what was already in the pipe
    frozen = ticks()

    # Paused for longer than the whole timeout: no output, no timeout.
    assert drive(supervisor, until=for_seconds(3.0))
    assert ticks() == frozen
    assert supervisor.run_status is None

    reporter.commands.append("resume")
    assert drive(supervisor, until=lambda: reporter.pauses == [True, False])
    paused_for = time.monotonic() - paused_at
    resumed = grandchild_ticks()
    assert drive(supervisor, until=lambda: ticks() >= frozen + 6 and grandchild_ticks() >= resumed + 3), (
        "output did not resume"
    )
    outcome = run_to_end(supervisor, deadline=15)

    assert outcome.run_status == "timeout"
    assert time.monotonic() - started >= 3.0 + paused_for
    assert reporter.event_kinds()[0] == "timeout"


def test_stop_while_paused_resumes_so_the_script_can_handle_term(make_script: Callable[..., Path]):
    script = make_script(
        "pausable.sh",
        """
        trap 'echo "bye"; exit 0' TERM
        echo ready
        while true; do sleep 0.1; done
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, stop_grace=20.0)
    assert drive(supervisor, until=lambda: "ready" in reporter.text("stdout"))
    reporter.commands.append("pause")
    assert drive(supervisor, until=lambda: reporter.pauses == [True])

    reporter.commands.append("stop")
    outcome = run_to_end(supervisor)

    assert (outcome.run_status, outcome.exit_code) == ("killed", 0)
    assert reporter.pauses == [True, False]
    assert reporter.text("stdout") == "ready\nbye\n"


@pytest.mark.parametrize("launch", ["sleep 300 &", "setsid sleep 300 &"], ids=["in-group", "setsid"])
def test_background_process_left_holding_the_pipe_does_not_hang_the_run(
    make_script: Callable[..., Path], strays: list[psutil.Process], launch: str
):
    script = make_script(
        "leaves-child.sh",
        f"""
        {launch}
        echo "background $!"
        exit 0
        """,
    )
    reporter = RecordingReporter()
    supervisor = make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter)
    assert drive(supervisor, until=lambda: reporter.value_after("stdout", "background") is not None)
    background = reporter.value_after("stdout", "background") or 0
    proc = process_of(background)
    assert proc is not None
    strays.append(proc)

    outcome = run_to_end(supervisor, deadline=15)

    assert (outcome.run_status, outcome.exit_code) == ("success", 0)
    # The run's leftovers are ended and reaped, not left running (or as zombies).
    assert wait_for(lambda: is_gone(background, proc.create_time()), timeout=10)


def test_a_child_caught_inside_exec_is_sampled_again_not_reported_empty(
    make_script: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    """Popen can return before the new image is mapped: a first reading of rss 0 is not a
    sample, and the engine samples again at its first step instead of a period later."""
    real = psutil.Process.memory_info
    calls = 0

    def first_empty(self: psutil.Process) -> object:
        nonlocal calls
        calls += 1
        return real(self)._replace(rss=0) if calls == 1 else real(self)

    # psutil's oneshot() switches the method's cache on and off through these.
    first_empty.cache_activate = real.cache_activate  # type: ignore[attr-defined]
    first_empty.cache_deactivate = real.cache_deactivate  # type: ignore[attr-defined]
    monkeypatch.setattr(psutil.Process, "memory_info", first_empty)
    script = make_script("brief.sh", "sleep 0.3\n")
    reporter = RecordingReporter()
    outcome = run_to_end(
        make_supervisor(bash(script), cwd=str(script.parent), reporter=reporter, monitor_interval=5.0)
    )
    assert outcome.run_status == "success" and calls >= 2
    assert reporter.samples and all(s.rss > 0 for s in reporter.samples)


def test_samples_report_memory_and_heartbeats_carry_the_stats(make_script: Callable[..., Path]):
    script = make_script(
        "memory.py",
        """
        import time
        ballast = b"x" * 30_000_000
        print("allocated", flush=True)
        time.sleep(2.0)  # many 50 ms samples even on a loaded machine
        """,
    )
    reporter = RecordingReporter()

    outcome = run_to_end(
        make_supervisor(python(script), cwd=str(script.parent), reporter=reporter, monitor_interval=0.05)
    )

    assert outcome.run_status == "success"
    assert len(reporter.samples) >= 2
    assert all(s.rss > 0 and s.cpu_percent >= 0 for s in reporter.samples)
    assert max(s.rss for s in reporter.samples) > 20_000_000
    assert outcome.stats.peak_rss >= max(s.rss for s in reporter.samples)
    assert outcome.stats.samples == len(reporter.samples)
    assert outcome.stats.cpu_time > 0
    assert reporter.heartbeats


def test_kill_process_tree_ends_a_leader_and_its_descendants():
    leader = subprocess.Popen(
        ["bash", "-c", "sleep 300 & echo $!; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    child_proc = psutil.Process(child)

    assert kill_process_tree(leader.pid, psutil.Process(leader.pid).create_time())

    assert leader.wait(timeout=10) == -9
    leader.stdout.close()
    # The orphaned child is not the caller's to reap: dead (maybe a zombie) is enough.
    assert wait_for(lambda: is_dead(child, child_proc.create_time()), timeout=10)


def test_kill_process_tree_leaves_a_recycled_pid_alone():
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        created = psutil.Process(bystander.pid).create_time()
        assert not kill_process_tree(bystander.pid, created - 3600)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


BIG_OUTPUT_PROBE = r"""
import json, resource, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from runs import engine
from runs.engine import Limits, Supervisor
from runs.logstore import LogWriter

# A busy machine can stall the flood mid-line for longer even than PARTIAL_FLUSH_MAX, which
# would split a line in two and make the line count depend on the load. Partial
# lines are tested on their own; here every line must stay whole.
engine.PARTIAL_FLUSH = 60.0


class StoreReporter:
    def __init__(self, writer):
        self.writer = writer

    def started(self, pid, create_time): pass
    def output(self, stream, data, ts, lines=None): self.writer.write(stream, data, ts, lines=lines)
    def sample(self, sample): pass
    def event(self, kind, data): pass
    def control(self): return None
    def heartbeat(self, stats): pass
    def paused(self, *, paused): pass


script, store, cap = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
writer = LogWriter(store, cap_bytes=cap)
outcome = Supervisor(
    [sys.executable, "-u", script],
    cwd=str(store),
    env={"PATH": "/usr/bin:/bin"},
    reporter=StoreReporter(writer),
    limits=Limits(timeout=300),
).run()
writer.close()
print(json.dumps({
    "run_status": outcome.run_status,
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "total_bytes": writer.total_bytes,
    "total_lines": writer.total_lines,
    "stored_bytes": writer.stored_bytes,
    "dropped_bytes": writer.dropped_bytes,
    "segment_bytes": writer.segment_bytes,
}))
"""


def test_two_hundred_megabytes_of_output_keep_memory_and_store_bounded(
    make_script: Callable[..., Path], tmp_path: Path
):
    mib = 1024 * 1024
    lines = 200 * mib // 100  # 100-byte lines
    script = make_script(
        "flood.py",
        f"""
        import sys
        out = sys.stdout.buffer
        pad = b"z" * 89
        for start in range(0, {lines}, 20_000):
            end = min(start + 20_000, {lines})
            out.write(b"".join(b"%09d %s\\n" % (i, pad) for i in range(start, end)))
        """,
    )
    store = tmp_path / "store"
    cap = 50 * mib

    # Through a small shell that forks the probe: Linux carries ru_maxrss across
    # exec, so a probe forked straight from this (large) pytest process would report
    # pytest's resident size as its own peak.
    probe_args = [str(MAIN), str(script), str(store), str(cap)]
    probe = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", BIG_OUTPUT_PROBE, *probe_args],
        capture_output=True,
        timeout=120,
        check=True,
    )
    report = json.loads(probe.stdout)

    assert report["run_status"] == "success"
    assert report["total_bytes"] == 200 * mib
    assert report["total_lines"] == lines
    assert report["maxrss"] < 150 * mib, f"peak RSS {report['maxrss'] / mib:.0f} MiB"
    on_disk = sum(p.stat().st_size for p in store.glob("seg-*.out"))
    assert on_disk == report["stored_bytes"] <= cap + report["segment_bytes"]
    assert report["dropped_bytes"] == 200 * mib - on_disk > 0
    reader = LogReader(store)
    assert reader.dropped() == (report["dropped_bytes"], report["dropped_bytes"] // 100)
    tail = reader.tail_lines(3, stream="stdout")
    assert [line.text[:9] for line in tail] == [f"{n:09d}" for n in range(lines - 3, lines)]
    assert [line.number for line in tail] == [lines - 2, lines - 1, lines]


# In a fresh interpreter (this test process has children of its own): the engine's
# "no child left" check, and a run that leaves an orphan detached from its pipes (so the
# loop ends at once) — the orphan is re-parented to the worker and must still be ended.
ORPHAN_CHECK = """
import json, os, subprocess, sys, time, psutil
from runs import engine
from tests.runs.helpers import RecordingReporter, make_supervisor
out = {"before": engine._has_children()}
child = subprocess.Popen(["sleep", "30"])
out["live"] = engine._has_children()
child.kill()
while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
    time.sleep(0.01)
out["zombie"] = engine._has_children()
child.wait()
out["reaped"] = engine._has_children()
reporter = RecordingReporter()
command = ["bash", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"]
supervisor = make_supervisor(command, cwd="/", reporter=reporter)
outcome = supervisor.run()
orphan = int(reporter.text("stdout").split()[0])
out["outcome"] = [outcome.run_status, outcome.exit_code]
out["orphan_left"] = psutil.pid_exists(orphan) and psutil.Process(orphan).status() != psutil.STATUS_ZOMBIE
out["after"] = engine._has_children()
print(json.dumps(out))
"""


def test_a_worker_with_no_child_left_skips_the_search_but_never_an_orphan() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN_CHECK],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "before": False,
        "live": True,
        "zombie": True,
        "reaped": False,
        "outcome": ["success", 0],
        "orphan_left": False,
        "after": False,
    }
