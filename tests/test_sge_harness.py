"""The local SGE harness (daskdeploy.testing.sge) against real sge_qmaster/sge_execd."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from daskdeploy.testing import sge as sge_module
from daskdeploy.testing.sge import MARKER_VAR, LocalSGE, unavailable_reason

REASON = unavailable_reason()
if REASON is not None and not os.environ.get("CI"):
    pytest.skip(REASON, allow_module_level=True)

SLOTS = 4
SGE_NAMES = {"sge_qmaster", "sge_execd", "sge_shepherd"}


@pytest.fixture(scope="module", autouse=True)
def _require_local_sge() -> None:
    """On CI a missing local SGE is a failure, not a skip."""
    if REASON is not None:
        pytest.fail(REASON, pytrace=False)


@pytest.fixture(scope="module")
def cell() -> Iterator[LocalSGE]:
    with LocalSGE(slots=SLOTS) as running:
        yield running


@pytest.fixture
def sge(cell: LocalSGE) -> Iterator[LocalSGE]:
    """The module's cell; the test fails if it leaves a job behind."""
    yield cell
    left = cell.jobs()
    if left:
        cell.run("qdel", "-u", "*")
        cell.wait_for_no_jobs(timeout=30)
        pytest.fail(f"jobs left in SGE after the test:\n{cell.qstat_text()}")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15) -> object:
    """Poll ``condition`` until it is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
    return value


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cell_processes(root: Path) -> dict[int, str]:
    """Running processes of the cell in ``root``: ``{pid: name}``.

    A process counts when its environment carries the harness marker or this cell's
    ``SGE_ROOT`` (daemons, shepherds and jobs inherit the execd's environment), or an
    argument mentions ``root`` (job scripts).
    """
    found = {}
    for proc in psutil.process_iter(["name", "cmdline", "environ", "status"]):
        info = proc.info
        if proc.pid == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        env = info["environ"] or {}
        if (
            env.get(MARKER_VAR) == str(root)
            or env.get("SGE_ROOT") == str(root)
            or str(root) in " ".join(info["cmdline"] or ())
        ):
            found[proc.pid] = info["name"]
    return found


def submit(cell: LocalSGE, *args: str) -> str:
    """``qsub -terse``: the job id (``"7"``, or ``"7.1-4:1"`` for an array)."""
    result = cell.run("qsub", "-terse", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def states(cell: LocalSGE, prefix: str) -> dict[str, str]:
    """``{id: state}`` of the jobs (and tasks) whose id is ``prefix`` or ``prefix.*``."""
    return {
        job["id"]: job["state"]
        for job in cell.jobs()
        if job["id"] == prefix or job["id"].startswith(prefix + ".")
    }


def wait_running(cell: LocalSGE, job: str, count: int = 1, timeout: float = 10) -> None:
    wait_for(
        lambda: list(states(cell, job).values()) == ["r"] * count,
        f"{count} running task(s) of job {job}:\n{cell.qstat_text()}",
        timeout,
    )


def finish(cell: LocalSGE, timeout: float = 30) -> None:
    assert cell.wait_for_no_jobs(timeout=timeout), cell.qstat_text()


def test_unavailable_reason_is_none_here() -> None:
    assert unavailable_reason() is None


def test_unavailable_reason_names_missing_clients_and_the_install() -> None:
    code = "from daskdeploy.testing.sge import unavailable_reason; print(unavailable_reason())"
    env = {**os.environ, "PATH": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    for name in ("qsub", "qstat", "qdel", "qconf"):
        assert name in out
    assert "sge_qmaster" not in out  # /usr/sbin is searched even when not on PATH
    assert "gridengine-common shared/gridengineconfig boolean false" in out
    assert "debconf-set-selections" in out
    assert "apt-get install gridengine-master gridengine-exec gridengine-client" in out


def test_cell_is_configured(sge: LocalSGE) -> None:
    root = sge.root
    assert len(str(root)) < 40
    assert (sge.queue, sge.pe, sge.cell) == ("all.q", "smp", "default")
    assert sge.environ == {
        "SGE_ROOT": str(root),
        "SGE_CELL": "default",
        "SGE_QMASTER_PORT": str(sge.qmaster_port),
        "SGE_EXECD_PORT": str(sge.execd_port),
    }
    assert sge.env().items() >= sge.environ.items()
    queue = sge.run("qstat", "-f", "-q", "all.q")
    assert queue.returncode == 0, queue.stderr
    rows = [line.split() for line in queue.stdout.splitlines() if line.startswith("all.q@")]
    assert len(rows) == 1
    assert rows[0][0] == f"all.q@{sge.host}"
    assert rows[0][2] == f"0/0/{SLOTS}"
    pe = dict(line.split(None, 1) for line in sge.run("qconf", "-sp", "smp").stdout.splitlines())
    assert pe["allocation_rule"].strip() == "$pe_slots"
    assert pe["control_slaves"].strip() == "TRUE"
    assert "schedule_interval                 0:0:1" in sge.run("qconf", "-ssconf").stdout
    assert sge.jobs() == []
    assert sge.wait_for_no_jobs(timeout=1)


def test_job_runs_quickly_and_qdel_removes_it(sge: LocalSGE) -> None:
    start = time.monotonic()
    job = submit(sge, "-b", "y", "-N", "t", "-o", "/dev/null", "-j", "y", "sleep", "30")
    wait_running(sge, job, timeout=5)
    assert time.monotonic() - start < 5
    [entry] = sge.jobs()
    assert entry == {
        "id": job,
        "name": "t",
        "state": "r",
        "owner": "root",
        "queue": f"all.q@{sge.host}",
        "slots": "1",
    }
    assert f"{job} " in sge.qstat_text()
    sleeper = wait_for(
        lambda: [p for p, name in cell_processes(sge.root).items() if name == "sleep"],
        "the job's sleep process",
    )
    deleted = sge.run("qdel", job)
    assert deleted.returncode == 0, deleted.stderr
    finish(sge, timeout=15)
    assert sge.jobs() == []
    wait_for(lambda: not any(running(pid) for pid in sleeper), "the sleep to end")


def test_job_output_environment_and_pe(sge: LocalSGE, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$JOB_ID $NSLOTS" > "$1"\n'
        'cat "$PE_HOSTFILE" >> "$1" 2>/dev/null\n'
        f'echo "marker=${MARKER_VAR} root=$SGE_ROOT tmp=$TMP" >> "$1"\n'
        "echo to-stdout\n"
        "echo to-stderr >&2\n"
    )
    single_out = ["-o", str(tmp_path / "s.out"), "-e", str(tmp_path / "s.err")]
    single = submit(sge, *single_out, str(script), str(tmp_path / "single"))
    double_out = ["-o", str(tmp_path / "d.out"), "-j", "y"]
    double = submit(sge, "-pe", "smp", "2", *double_out, str(script), str(tmp_path / "double"))
    finish(sge)
    root = str(sge.root)
    lines = (tmp_path / "single").read_text().splitlines()
    assert lines[0] == f"{single} 1"
    # The job's TMP is private to the cell (TMPDIR, though SGE sets it, does not reach
    # batch jobs here).
    assert lines[-1].startswith(f"marker={root} root={root} tmp={root}/tmp/{single}.1.all.q")
    assert (tmp_path / "s.out").read_text() == "to-stdout\n"
    assert (tmp_path / "s.err").read_text() == "to-stderr\n"
    lines = (tmp_path / "double").read_text().splitlines()
    assert lines[0] == f"{double} 2"
    assert lines[1].split()[:3] == [sge.host, "2", f"all.q@{sge.host}"]
    assert sorted((tmp_path / "d.out").read_text().splitlines()) == ["to-stderr", "to-stdout"]


def test_qrsh_inherit_runs_a_task_in_a_pe_job(sge: LocalSGE, tmp_path: Path) -> None:
    script = tmp_path / "qrsh.sh"
    # qrsh -inherit, like rsh, joins its arguments into one shell command line.
    script.write_text(
        "#!/bin/sh\n"
        "host=$(head -n 1 \"$PE_HOSTFILE\" | cut -d ' ' -f 1)\n"
        'qrsh -inherit "$host" echo inside \\$JOB_ID \\$NSLOTS\n'
        'echo "status $?"\n'
    )
    output = tmp_path / "qrsh.out"
    job = submit(sge, "-pe", "smp", "2", "-o", str(output), "-j", "y", str(script))
    finish(sge)
    assert output.read_text().splitlines() == [f"inside {job} 2", "status 0"]


def test_array_tasks_and_their_deletion(sge: LocalSGE) -> None:
    job = submit(sge, "-t", "1-4", "-N", "arr", "-o", "/dev/null", "-j", "y", "-b", "y", "sleep 30")
    assert job.endswith(".1-4:1")
    job = job.split(".")[0]
    wait_running(sge, job, count=4)
    assert sorted(states(sge, job)) == [f"{job}.{task}" for task in range(1, 5)]
    assert sge.run("qdel", f"{job}.2").returncode == 0
    wait_for(lambda: sorted(states(sge, job)) == [f"{job}.{t}" for t in (1, 3, 4)], "task 2 gone")
    assert sge.run("qdel", job).returncode == 0
    finish(sge)


def test_verify_and_context(sge: LocalSGE) -> None:
    fits = sge.run("qsub", "-w", "v", "-pe", "smp", str(SLOTS), "-b", "y", "true")
    assert fits.returncode == 0, fits.stderr
    assert "verification: found suitable queue(s)" in fits.stdout
    too_big = sge.run("qsub", "-w", "v", "-pe", "smp", str(SLOTS + 1), "-b", "y", "true")
    assert too_big.returncode != 0
    assert "no suitable queues" in too_big.stderr
    assert sge.jobs() == []  # verification submits nothing
    job = submit(sge, "-h", "-ac", "key=value,k2=v2", "-b", "y", "true")
    assert [j["state"] for j in sge.jobs()] == ["hqw"]
    shown = sge.run("qstat", "-j", job).stdout
    assert "key=value,k2=v2" in shown
    assert sge.run("qdel", job).returncode == 0
    finish(sge)


def test_two_cells_side_by_side_and_stop_leaves_nothing(sge: LocalSGE) -> None:
    first, second = LocalSGE(slots=2), LocalSGE(slots=2)
    with first, second:
        roots = [first.root, second.root]
        assert roots[0] != roots[1]
        assert len({first.qmaster_port, first.execd_port, second.qmaster_port}) == 3
        sleeper = ["-b", "y", "-o", "/dev/null", "-j", "y", "sleep", "60"]
        ids = [submit(one, *sleeper) for one in (first, second)]
        assert ids[0] == ids[1]  # job numbers are per cell
        for one, job in zip((first, second), ids, strict=True):
            wait_running(one, job)
            assert len(one.jobs()) == 1
        before = {}
        for root in roots:
            before[root] = wait_for(
                lambda root=root: (
                    (found := cell_processes(root))
                    and SGE_NAMES | {"sleep"} <= set(found.values())
                    and found
                ),
                f"daemons, shepherd and job of {root}",
            )
        start = time.monotonic()
        first.stop()
        assert time.monotonic() - start < 10
        first.stop()  # idempotent
        assert not roots[0].exists()
        assert cell_processes(roots[0]) == {}
        assert [pid for pid in before[roots[0]] if running(pid)] == []
        # The other cell (and the module's) did not notice.
        assert [j["state"] for j in second.jobs()] == ["r"]
        assert set(cell_processes(roots[1]).values()) >= SGE_NAMES | {"sleep"}
    assert not roots[1].exists()
    assert cell_processes(roots[1]) == {}
    assert sge.jobs() == []
    assert sge.run("qconf", "-sh").returncode == 0
    # No SGE process of any harness cell (this session's or another's) outlived its root.
    orphans = [
        proc.info
        for proc in psutil.process_iter(["name", "environ", "status"])
        if proc.info["name"] in SGE_NAMES
        and proc.info["status"] != psutil.STATUS_ZOMBIE
        and MARKER_VAR in (proc.info["environ"] or {})
        and not Path(proc.info["environ"][MARKER_VAR]).exists()
    ]
    assert orphans == []


def test_taken_port_is_a_retried_clash(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sge_module.free_ports
    listen = (
        "import socket, time; s = socket.socket(); s.bind(('', 0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", listen], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            taken = int(holder.stdout.readline())
            calls = []

            def first_taken(count: int) -> list[int]:
                calls.append(count)
                ports = real(count)
                return [taken, *ports[1:]] if len(calls) == 1 else ports

            monkeypatch.setattr(sge_module, "free_ports", first_taken)
            with LocalSGE(slots=1) as cell:
                assert len(calls) == 2
                assert cell.qmaster_port != taken
                assert cell.run("qconf", "-sh").returncode == 0
        finally:
            holder.kill()


def test_failed_start_cleans_up() -> None:
    root = Path(tempfile.mkdtemp(prefix="ddsge-t", dir="/tmp"))
    cell = LocalSGE(slots=1, root=root)
    with pytest.raises(RuntimeError, match="timed out waiting for"):
        cell.start(timeout=0)
    assert not root.exists()
    assert cell_processes(root) == {}
    cell.stop()  # nothing left to do


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slots"):
        LocalSGE(slots=0)
    with pytest.raises(ValueError, match="whitespace"):
        LocalSGE(root="/tmp/a b")
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not empty"):
        LocalSGE(root=tmp_path).start()
    assert (tmp_path / "keep.txt").read_text() == "mine"
    with pytest.raises(RuntimeError, match="not started"):
        _ = LocalSGE().environ


def test_command_line_runs_until_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskdeploy.testing.sge", "--slots", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=30), "no output from the command line"
        line = proc.stdout.readline()
        assert line.startswith("export SGE_ROOT="), line
        exported = dict(word.split("=", 1) for word in shlex.split(line)[1:])
        assert sorted(exported) == ["SGE_CELL", "SGE_EXECD_PORT", "SGE_QMASTER_PORT", "SGE_ROOT"]
        assert "qsub" in proc.stdout.readline()
        queue = subprocess.run(
            ["qstat", "-f"],
            env={**os.environ, **exported},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert " 0/0/2 " in queue.stdout, queue.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        root = Path(exported["SGE_ROOT"])
        assert not root.exists()
        assert cell_processes(root) == {}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
