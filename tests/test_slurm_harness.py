"""The local SLURM harness (daskdeploy.testing.slurm) against real munged/slurmctld/slurmd."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daskdeploy.testing.slurm import MARKER_VAR, LocalSlurm, unavailable_reason

REASON = unavailable_reason()
if REASON is not None and not os.environ.get("CI"):
    pytest.skip(REASON, allow_module_level=True)

CORES = os.cpu_count() or 1
CPUS_PER_NODE = max(8, CORES)
MEMORY_MB = 4000
NJOBS = max(4, CORES + 1)  # more one-CPU jobs than the machine has cores


@pytest.fixture(scope="module", autouse=True)
def _require_local_slurm() -> None:
    """On CI a missing local SLURM is a failure, not a skip."""
    if REASON is not None:
        pytest.fail(REASON, pytrace=False)


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    with LocalSlurm(nodes=2, cpus_per_node=CPUS_PER_NODE, memory_mb=MEMORY_MB) as cluster:
        yield cluster


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def _running(pid: int) -> bool:
    return _proc_state(pid) not in (None, "Z", "X")


def cluster_processes(root: Path, conf: Path) -> dict[int, str]:
    """Running processes of the cluster in ``root``: ``{pid: comm}``.

    A process counts when an argument mentions ``root`` (daemons, batch scripts), or its
    environment carries the harness marker (slurmstepd, tasks) or this cluster's SLURM_CONF
    (job processes).
    """
    marks = {f"{MARKER_VAR}={root}".encode(), f"SLURM_CONF={conf}".encode()}
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        base = Path("/proc", entry)
        try:
            cmdline = (base / "cmdline").read_bytes()
            environ = set((base / "environ").read_bytes().split(b"\0"))
            comm = (base / "comm").read_text().strip()
        except OSError:
            continue
        if (str(root).encode() in cmdline or marks & environ) and _running(int(entry)):
            found[int(entry)] = comm
    return found


def pgrep_root(root: Path) -> str:
    return subprocess.run(
        ["pgrep", "-a", "-f", str(root)], capture_output=True, text=True, check=False
    ).stdout.strip()


def submit(cluster: LocalSlurm, *args: str) -> str:
    result = cluster.run("sbatch", "--parsable", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def wait_running(cluster: LocalSlurm, ids: list[str], timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [job for job in cluster.jobs() if job["id"] in ids]
        if len(jobs) == len(ids) and all(job["state"] == "RUNNING" for job in jobs):
            return jobs
        assert time.monotonic() < deadline, f"jobs not all RUNNING after {timeout} s: {jobs}"
        time.sleep(0.1)


def test_unavailable_reason_names_missing_clients() -> None:
    code = "from daskdeploy.testing.slurm import unavailable_reason; print(unavailable_reason())"
    env = {**os.environ, "PATH": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    for name in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        assert name in out
    assert "slurmctld" not in out  # /usr/sbin is searched even when not on PATH
    assert "apt-get install slurm-wlm munge" in out


def test_nodes_are_idle(slurm: LocalSlurm) -> None:
    assert slurm.nodes == ["n1", "n2"]
    assert slurm.partition == "debug"
    assert slurm.env == {"SLURM_CONF": str(slurm.conf_path)}
    assert slurm.conf_path.is_file()
    result = slurm.run("sinfo", "-h", "-N", "-o", "%N %t %c %m %P")
    assert result.returncode == 0, result.stderr
    rows = sorted(line.split() for line in result.stdout.splitlines())
    assert rows == [
        [node, "idle", str(CPUS_PER_NODE), str(MEMORY_MB), "debug*"] for node in ("n1", "n2")
    ]


def test_more_jobs_than_cores_run_at_once(slurm: LocalSlurm) -> None:
    names = [f"harness-{i}-{'x' * 40}" for i in range(NJOBS)]  # long names: no truncation
    start = time.monotonic()
    options = ["-c", "1", "--comment", "a|b c", "-o", "/dev/null", "--wrap", "sleep 30"]
    ids = [submit(slurm, "-J", name, *options) for name in names]
    jobs = wait_running(slurm, ids)
    elapsed = time.monotonic() - start
    assert sorted(job["name"] for job in jobs) == sorted(names)
    assert all(job["comment"] == "a|b c" and job["reason"] == "None" for job in jobs)
    assert elapsed < 10
    cancel = slurm.run("scancel", *ids)
    assert cancel.returncode == 0, cancel.stderr
    assert slurm.wait_for_no_jobs(timeout=15)
    assert slurm.jobs() == []


def test_test_only_rejects_more_memory_than_a_node_has(slurm: LocalSlurm) -> None:
    start = time.monotonic()
    too_big = slurm.run("sbatch", "--test-only", f"--mem={MEMORY_MB + 1}", "--wrap", "true")
    assert time.monotonic() - start < 5
    assert too_big.returncode != 0
    assert "node configuration is not available" in too_big.stderr
    fits = slurm.run("sbatch", "--test-only", f"--mem={MEMORY_MB}", "--wrap", "true")
    assert fits.returncode == 0, fits.stderr
    assert "to start at" in fits.stderr


def test_stop_leaves_nothing_and_a_fresh_cluster_works(tmp_path: Path) -> None:
    first = LocalSlurm(nodes=1, cpus_per_node=4)
    with first:
        root, conf = first.root, first.conf_path
        assert len(str(root)) < 40
        ids = [submit(first, "-o", "/dev/null", "--wrap", "sleep 30") for _ in range(2)]
        wait_running(first, ids)
        # RUNNING comes a moment before slurmstepd has started the batch script.
        deadline = time.monotonic() + 10
        while list((before := cluster_processes(root, conf)).values()).count("sleep") < 2:
            assert time.monotonic() < deadline, before
            time.sleep(0.05)
        for name in ("munged", "slurmctld", "slurmd", "slurmstepd"):
            assert name in before.values(), before
        start = time.monotonic()
    first.stop()  # idempotent
    assert time.monotonic() - start < 15
    assert not root.exists()
    assert cluster_processes(root, conf) == {}
    assert not [pid for pid in before if _running(pid)]
    assert pgrep_root(root) == ""

    # Fresh controller state restarts job ids at 1: without a fresh slurmd spool the
    # job would be refused with "Job credential revoked".
    with LocalSlurm(nodes=1) as second:
        assert second.root != root
        out = tmp_path / "out.txt"
        job = submit(second, "-o", str(out), "--wrap", "echo hello from $SLURM_JOB_ID")
        assert job == "1"
        assert second.wait_for_no_jobs(timeout=15)
        assert out.read_text().strip() == "hello from 1"


def test_failed_start_cleans_up() -> None:
    root = Path(tempfile.mkdtemp(prefix="ddslurm-t", dir="/tmp"))
    cluster = LocalSlurm(nodes=1, root=root)
    with pytest.raises(RuntimeError, match="timed out waiting for"):
        cluster.start(timeout=0)
    assert not root.exists()
    assert pgrep_root(root) == ""
    cluster.stop()  # nothing left to do


def test_bad_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        LocalSlurm(root="/tmp/" + "x" * 100)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not empty"):
        LocalSlurm(root=tmp_path).start()
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_command_line_runs_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskdeploy.testing.slurm", "--nodes", "1"],
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
        assert line.startswith("export SLURM_CONF="), line
        conf = Path(shlex.split(line)[1].split("=", 1)[1])
        assert "sbatch" in proc.stdout.readline()
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%t %D"],
            env={**os.environ, "SLURM_CONF": str(conf)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sinfo.stdout.split() == ["idle", "1"], sinfo.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        assert not conf.parent.exists()
        assert pgrep_root(conf.parent) == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
