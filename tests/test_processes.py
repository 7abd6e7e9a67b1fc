"""daskdeploy.processes against real processes: environment, start, ancestry, children, ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from daskdeploy import processes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

MARKER = "DASKDEPLOY_TEST_PROCESSES_MARKER"


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Return as soon as ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s: {condition}"
        time.sleep(0.01)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start child processes; every one still running at the end is killed and reaped."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *args: str, ignore_sigterm: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        def ignore() -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stays ignored across exec

        child = subprocess.Popen(
            list(args),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            preexec_fn=ignore if ignore_sigterm else None,
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_environment_and_command_line_of_a_child(spawn: Callable[..., subprocess.Popen]) -> None:
    child = spawn("sleep", "60", env={MARKER: "yes-42"})
    assert processes.environ(child.pid)[MARKER] == "yes-42"
    assert MARKER not in processes.environ(os.getpid())
    assert processes.command_line(child.pid) == "sleep 60"
    assert child.pid in set(processes.user_pids())
    assert processes.is_running(child.pid)
    table = {facts.pid: facts for facts in processes.running_processes(environment=True)}
    assert table[child.pid].command_line == "sleep 60"
    assert table[child.pid].environ[MARKER] == "yes-42"
    assert os.getpid() in table
    assert all(not facts.environ for facts in processes.running_processes())


def test_start_identifies_the_process(spawn: Callable[..., subprocess.Popen]) -> None:
    child = spawn("sleep", "60")
    ticks = processes.start_ticks(child.pid)
    assert isinstance(ticks, int)
    assert [processes.start_ticks(child.pid) for _ in range(5)] == [ticks] * 5
    mine = processes.start_ticks(os.getpid())
    assert mine is not None and mine <= ticks  # started before the child
    assert processes.same_process(child.pid, ticks)
    assert processes.same_process(child.pid, None)
    assert not processes.same_process(child.pid, ticks + 1)  # a newcomer with this pid

    child.kill()
    wait_for(lambda: not processes.is_running(child.pid))  # a zombie is not running
    assert not processes.same_process(child.pid, ticks)
    assert child.pid not in {facts.pid for facts in processes.running_processes()}
    child.wait()  # reaped: the pid is gone
    assert processes.start_ticks(child.pid) is None
    assert processes.environ(child.pid) == {}
    assert processes.command_line(child.pid) == ""
    assert not processes.same_process(child.pid, None)
    for nonsense in (0, -1):
        assert not processes.is_running(nonsense)
        assert processes.start_ticks(nonsense) is None


def test_ancestors_include_this_process_and_its_parent() -> None:
    found = processes.ancestors()
    assert {os.getpid(), os.getppid()} <= found
    assert all(pid > 0 for pid in found)


def test_children_and_descendants(spawn: Callable[..., subprocess.Popen]) -> None:
    shell = spawn("sh", "-c", "sleep 60 & wait")
    wait_for(lambda: processes.children(shell.pid))
    (grandchild,) = processes.children(shell.pid)
    assert processes.command_line(grandchild) == "sleep 60"
    assert shell.pid in processes.children(os.getpid())
    assert grandchild not in processes.children(os.getpid())
    assert {shell.pid, grandchild} <= set(processes.children(os.getpid(), recursive=True))
    os.kill(grandchild, signal.SIGKILL)  # the shell's wait returns, and it exits
    assert processes.wait_gone([grandchild, shell.pid], timeout=5) == []
    assert processes.children(shell.pid) == []


def test_terminate_kills_what_ignores_sigterm(spawn: Callable[..., subprocess.Popen]) -> None:
    polite = spawn("sleep", "60")
    stubborn = spawn("sleep", "61", ignore_sigterm=True)
    started = time.monotonic()
    ended, killed = processes.terminate([polite.pid, stubborn.pid], grace=0.5)
    assert (ended, killed) == ([polite.pid], [stubborn.pid])
    assert time.monotonic() - started < 4
    assert polite.wait(timeout=5) == -signal.SIGTERM
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert processes.terminate([polite.pid], grace=0.1) == ([], [])  # gone: not reached
