"""The CPU-efficiency report and the progress bar, against workloads of known efficiency.

CPU-bound tasks on one thread per worker use nearly all of their worker-thread time;
sleeping tasks use almost none; GIL-bound tasks on two threads of one process use about
half. The report must show that, and name the cause when efficiency is low.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import dask
import pytest

import daskdeploy
from conftest import report_figures
from daskdeploy.report.efficiency import build_report
from daskdeploy.report.progress import render_line, tasks_left


def busy(n: int) -> int:
    """Pure-Python loop: holds the GIL and one core for its whole duration."""
    total = 0
    for i in range(n):
        total += i
    return total


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _calibrate(seconds: float) -> int:
    start = time.perf_counter()
    busy(200_000)
    return int(200_000 * seconds / (time.perf_counter() - start))


def _measure(workers: int, threads: int, function, argument, tasks: int = 8):
    with daskdeploy.deploy(
        "local", workers=workers, threads_per_worker=threads, quiet=True, report=True
    ) as client:
        dask.compute(
            *[dask.delayed(function)(argument, dask_key_name=f"t-{i}") for i in range(tasks)]
        )
        return client.deployment.efficiency()


def test_cpu_bound_tasks_on_processes_are_efficient():
    report = _measure(2, 1, busy, _calibrate(0.3))
    assert report.tasks == 8 and report.threads == 2
    # Unless other processes took the cores (then the report must say so instead).
    crowded = any("share the CPU" in hint for hint in report.hints)
    assert report.cpu_efficiency >= 0.6 or crowded, report.format()
    assert report.busy_fraction >= 0.6, report.format()
    assert not [hint for hint in report.hints if "GIL" in hint or "wait" in hint], report.format()
    assert all(worker.peak_memory > 10 * 2**20 for worker in report.workers)


def test_sleeping_tasks_are_reported_as_waiting():
    report = _measure(2, 1, nap, 0.3)
    # The tasks use no CPU: what is counted is the workers' own work (event loop, heartbeats,
    # the profiler, unpickling the tasks), 13-15% of the thread time in these short runs on
    # a 2-core machine. (It was 32-49% while this test module's imports pulled pandas into
    # every worker: the report measured that, correctly.)
    assert report.cpu_efficiency <= 0.3, report.format()
    assert report.busy_fraction >= 0.6, report.format()
    assert any("wait" in hint and "threads_per_worker" in hint for hint in report.hints), (
        report.format()
    )


def test_threads_on_gil_bound_code_are_named_as_the_cause():
    report = _measure(1, 2, busy, _calibrate(0.25))
    assert 0.3 <= report.cpu_efficiency <= 0.7, report.format()
    (hint,) = [hint for hint in report.hints if "GIL" in hint]
    assert "2 workers x 1 thread" in hint


def test_tiny_tasks_are_named_as_the_cause():
    report = _measure(2, 1, abs, -1, tasks=400)
    assert report.tasks >= 400
    assert report.mean_task_seconds < 0.005
    assert any("too small" in hint for hint in report.hints), report.format()


def _usage(pid: int, cpu: float, host: str = "node1", busy_ticks: int = 0, ticks: int = 0):
    return {
        "pid": pid,
        "host": host,
        "cpu_seconds": cpu,
        "peak_memory": 100 * 2**20,
        "time": 0.0,
        "host_cpu": (busy_ticks, ticks) if ticks else None,
        "host_cores": 4,
    }


def _summary(workers_now, events=(), tasks=None, seconds=None):
    return {
        "time": 110.0,
        "tasks": sum(t["tasks"] for t in (tasks or {}).values()),
        "finished": sum(t["tasks"] for t in (tasks or {}).values()),
        "erred": 0,
        "seconds": seconds or {},
        "workers": tasks or {},
        "workers_now": workers_now,
        "events": list(events),
    }


def test_workers_that_join_share_a_process_or_leave_are_counted_right():
    now = {
        "tcp://a:1": {"threads": 2, "memory_limit": 2**30},
        "tcp://b:1": {"threads": 1, "memory_limit": 2**30},  # joined at t=60
        "tcp://c:1": {"threads": 1, "memory_limit": 2**30},  # same process as a
    }
    start = {"tcp://a:1": _usage(10, 5.0), "tcp://c:1": _usage(10, 5.0), "tcp://d:1": _usage(9, 1)}
    end = {
        "tcp://a:1": _usage(10, 35.0),
        "tcp://c:1": _usage(10, 35.0),
        "tcp://b:1": _usage(11, 20),
    }
    events = [(60.0, "add-worker", "tcp://b:1"), (80.0, "remove-worker", "tcp://d:1")]
    tasks = {
        "tcp://a:1": {"tasks": 10, "compute": 40.0},
        "tcp://b:1": {"tasks": 5, "compute": 30.0},
    }
    report = build_report(
        started=100.0 - 90.0,  # window 10 .. 110: 100 s
        start_usage=start,
        end_usage=end,
        summary=_summary(now, events, tasks, {"compute": 70.0, "transfer": 7.0}),
        label="dd-x on test",
        large_graph="52 MiB",
    )
    by_address = {worker.address: worker for worker in report.workers}
    assert by_address["tcp://a:1"].cpu_seconds == 30.0
    assert by_address["tcp://b:1"].joined_during and by_address["tcp://b:1"].seconds == 50.0
    assert report.cpu_seconds == 30.0 + 20.0  # a and c are one process
    assert report.thread_seconds == 2 * 100 + 1 * 50 + 1 * 100
    assert report.workers_left == 1
    assert report.tasks == 15 and report.mean_task_seconds == pytest.approx(70 / 15)
    assert report.data_fraction == pytest.approx(7 / 77)
    assert any("52 MiB" in hint and "scatter" in hint for hint in report.hints)
    text = report.format()
    for label in ("wall time", "workers", "CPU time", "CPU efficiency", "tasks", "peak memory"):
        assert label in text
    assert "1 joined during the run" in text and "1 left during the run" in text
    assert report.as_dict()["cpu_efficiency"] == pytest.approx(50 / 350)


def test_a_crowded_host_is_named_before_waiting():
    now = {"tcp://a:1": {"threads": 1, "memory_limit": 0}, "tcp://b:1": {"threads": 1}}
    start = {
        addr: _usage(pid, 0.0, busy_ticks=0, ticks=1) for addr, pid in zip(now, (1, 2), strict=True)
    }
    # 4 cores fully busy for 100 s (40,000 ticks of 40,000), our two workers used 40 s each
    end = {
        addr: _usage(pid, 40.0, busy_ticks=40_001, ticks=40_001)
        for addr, pid in zip(now, (1, 2), strict=True)
    }
    tasks = {addr: {"tasks": 4, "compute": 95.0} for addr in now}
    report = build_report(
        started=10.0,
        start_usage=start,
        end_usage=end,
        summary=_summary(now, (), tasks, {"compute": 190.0}),
    )
    (host,) = report.hosts
    assert host.busy_cores == pytest.approx(4.0, rel=1e-3)
    assert host.other_cores == pytest.approx(3.2, rel=1e-3)
    assert "share the CPU" in report.hints[0]
    assert not any("mostly wait" in hint for hint in report.hints)


def test_no_meter_without_the_report_option_says_how_to_get_one():
    with daskdeploy.deploy("local", workers=1, quiet=True) as client:
        with pytest.raises(RuntimeError, match="report=True"):
            client.deployment.efficiency()
        meter = client.deployment.measure()
        dask.compute(dask.delayed(nap)(0.1))
        assert meter.stop().tasks == 1


def test_daskdeploy_run_report_prints_the_report_without_a_bar_off_a_terminal(sandbox):
    script = sandbox.script(
        "work.py",
        "import dask, time\n"
        "print(len(dask.compute(*[dask.delayed(time.sleep)(0.2) for _ in range(20)])))\n",
    )
    result = sandbox.run(sandbox.command("run", "--report", "-n", "2", str(script)))
    assert result.returncode == 0, result.stderr
    figures = report_figures(result.stderr)
    assert figures["workers"].startswith("2 x 1 thread")
    # 20 sleeps of 0.2 s on 2 single-threaded workers: >= 2 s of wall time on 2 threads,
    # almost no CPU; the same bound as test_sleeping_tasks_are_reported_as_waiting.
    assert 0 <= figures["efficiency"] <= 25, result.stderr
    assert "tasks  0:" not in result.stderr  # no progress bar when stderr is a pipe
    sandbox.assert_clean()


def _run_on_a_terminal(sandbox, args: list[str], timeout: float = 60) -> str:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; return what it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        args,
        env=sandbox.env,
        cwd=sandbox.root,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process has exited
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(controller)
        process.wait(timeout=30)
    assert process.returncode == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_progress_bar_on_a_terminal(sandbox):
    script = sandbox.script(
        "slow.py",
        "import dask, time\n"
        "def nap(i):\n    time.sleep(0.25)\n    return i\n"
        "print('total', sum(dask.compute(*[dask.delayed(nap)(i) for i in range(24)])))\n",
    )
    args = sandbox.command("run", "-n", "2", str(script))
    shown = _run_on_a_terminal(sandbox, args)
    bars = re.findall(r"\[[#-]{20}\] +\d+%  (\d+)/(\d+) tasks  0:0\d", shown)
    assert "total 276" in shown
    assert bars, shown
    assert {total for _, total in bars} == {"24"}, bars
    assert "dashboard http://127.0.0.1:" in shown
    # the bar is wiped before the script prints: its output starts on a clean line
    assert "\r\x1b[Ktotal 276" in shown, repr(shown)
    sandbox.assert_clean()


def test_no_bar_with_quiet_or_off_a_terminal_unless_asked(monkeypatch):
    from daskdeploy.cli import _progress_bar

    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert _progress_bar(object(), quiet=True, wanted=None) is None
    assert _progress_bar(object(), quiet=False, wanted=False) is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert _progress_bar(object(), quiet=False, wanted=None) is None


def test_bar_rendering_and_counting():
    assert render_line(1, 4, 3.0, "http://x/status", 200).endswith("dashboard http://x/status")
    assert "dashboard" not in render_line(1, 4, 3.0, "http://x/status", 50)
    assert len(render_line(1, 4, 3.0, None, 20)) == 20
    assert tasks_left({"memory": 5, "processing": 2, "queued": 3, "released": 7}) == 5
