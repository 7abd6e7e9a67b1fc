"""The mpi backend under real launchers: MPICH's mpiexec (pip), Open MPI's mpirun (apt), SLURM.

Every run goes through a real launcher and real ranks; the tests time how long each way
of ending takes until no process of the run is left, and print the figures (``-s``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    EXAMPLES,
    REPO,
    example_argv,
    report_figures,
    require,
    wait_until_gone,
)
from conftest import run_batch_job as sbatch
from daskdeploy.backends.mpi.launchers import (
    find_mpiexec,
    launcher_family,
    open_mpi_root_environment,
)
from daskdeploy.testing.mpi import unavailable_reason as mpi_unavailable_reason
from reference_answers import check_answer, check_pi

PYTHON = sys.executable
OPEN_MPI_LAUNCHER = "mpirun.openmpi"
EXIT_BOUND = 15.0  # seconds from a signal or failure until no rank is left


@pytest.fixture(scope="session")
def mpiexec() -> str:
    """MPICH's mpiexec installed next to this Python by the mpich wheel."""
    require(mpi_unavailable_reason(), "MPICH (pip install mpich mpi4py)")
    return find_mpiexec()


@pytest.fixture(scope="session")
def open_mpi() -> str:
    """Debian's Open MPI launcher (apt-get install openmpi-bin)."""
    require(
        None if shutil.which(OPEN_MPI_LAUNCHER) else f"{OPEN_MPI_LAUNCHER} is not on PATH",
        "Open MPI (apt-get install openmpi-bin)",
    )
    return shutil.which(OPEN_MPI_LAUNCHER)


def _script_command(mpiexec: str, ranks: int, script: Path, *args: str) -> list[str]:
    return [mpiexec, "-n", str(ranks), PYTHON, str(script), *args]


def _end_to_end(sandbox, command: list[str], timeout: float = 120, **env: str):
    started = time.monotonic()
    result = subprocess.run(
        command,
        env={**sandbox.env, **env},
        cwd=sandbox.root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result, time.monotonic() - started


# ------------------------------------------------------------------------- workloads


@pytest.mark.parametrize(
    ("name", "ranks"),
    [("pi", 3), ("pi", 4), ("pi", 6), ("calc_mean", 4), ("wiki_bag", 4), ("airline", 4)],
)
def test_examples_run_unchanged_under_mpiexec(mpiexec, sandbox, wiki_dir, airline_dir, name, ranks):
    argv = example_argv(name, wiki_dir, airline_dir)
    result, elapsed = _end_to_end(
        sandbox, _script_command(mpiexec, ranks, EXAMPLES / f"{name}.py", *argv)
    )
    output = result.stdout + result.stderr
    print(f"\n{name} on {ranks} ranks: {elapsed:.2f} s wall, exit {result.returncode}")
    assert result.returncode == 0, output
    check_answer(name, result.stdout, argv)  # printed once: by the script's rank only
    workers = ranks - 2
    assert f"on mpi: {workers} worker{'s' if workers > 1 else ''} x 1 thread" in output, output
    assert output.count("daskdeploy: dd-") == 1, output  # one summary: the script's rank
    assert "CommClosedError" not in output and "Traceback" not in output, output
    sandbox.assert_clean()


def test_daskdeploy_run_starts_mpiexec_with_workers_plus_two_ranks(mpiexec, sandbox):
    command = sandbox.command(
        "run",
        "--backend",
        "mpi",
        "-n",
        "2",
        "--report",
        str(EXAMPLES / "pi.py"),
        "--samples",
        "200000",
    )
    result, elapsed = _end_to_end(sandbox, command)
    print(f"\ndaskdeploy run --backend mpi -n 2 pi.py: {elapsed:.2f} s wall")
    assert result.returncode == 0, result.stderr
    assert f"launching {mpiexec} -n 4 " in result.stderr, result.stderr
    assert "on mpi: 2 workers x 1 thread" in result.stderr, result.stderr
    check_pi(result.stdout, ["--samples", "200000"])
    assert report_figures(result.stderr)["workers"].startswith("2 x 1 thread")
    sandbox.assert_clean()


def test_dry_run_shows_the_launch_and_starts_nothing(mpiexec, sandbox):
    command = sandbox.command("run", "--backend", "mpi", "-n", "3", "--dry-run", "x.py")
    (sandbox.root / "x.py").write_text("raise SystemExit('must not run')\n")
    result, _ = _end_to_end(sandbox, command, timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"Would launch: {mpiexec} -n 5 {PYTHON} -m daskdeploy run" in result.stdout
    assert "rank 0 scheduler, rank 1 your script, ranks 2-4 workers" in result.stdout
    assert "Dry run: nothing was started." in result.stdout
    sandbox.assert_clean()


def test_a_different_mpi_first_on_path_is_pointed_out(mpiexec, open_mpi, sandbox):
    """Debian's Open MPI mpiexec ahead of the venv's MPICH one: say which one is used."""
    (sandbox.root / "x.py").write_text("")
    on_path = Path(shutil.which("mpiexec", path="/usr/bin") or "/usr/bin/mpiexec")
    family = launcher_family(str(on_path))
    require(None if family == "Open MPI" else f"{on_path} is {family}", "Open MPI's mpiexec")
    command = sandbox.command("run", "--backend", "mpi", "-n", "1", "--dry-run", "x.py")
    result, _ = _end_to_end(sandbox, command, timeout=30, PATH=f"/usr/bin:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert f"note: the mpiexec on your PATH ({on_path}) is Open MPI" in result.stdout
    assert f"daskdeploy starts {mpiexec}" in result.stdout, result.stdout


@pytest.mark.parametrize("ranks", [2, 1])
def test_small_worlds_still_compute(mpiexec, sandbox, ranks):
    script = sandbox.script(
        "small.py",
        "import daskdeploy\n"
        "with daskdeploy.deploy('mpi') as client:\n"
        "    print('total', client.submit(sum, range(10)).result())\n"
        "    print('workers', len(client.scheduler_info()['workers']))\n",
    )
    result, _ = _end_to_end(sandbox, _script_command(mpiexec, ranks, script))
    assert result.returncode == 0, result.stderr
    assert "total 45" in result.stdout and "workers 1" in result.stdout, result.stdout
    sandbox.assert_clean()


# ---------------------------------------------------------------------------- endings

_ENDINGS = """\
import sys, time
import daskdeploy

def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # pure Python: holds the GIL, ignores cancellation
        pass
    return seconds

with daskdeploy.deploy() as client:
    print('workers', len(client.scheduler_info()['workers']), flush=True)
    how = sys.argv[1]
    if how == 'raise':
        raise RuntimeError('failure in the user code')
    if how == 'exit':
        sys.exit(3)
    if how == 'busy':
        print('computing', flush=True)
        client.gather(client.map(busy, [120, 121]))
print('script finished', flush=True)
"""


@pytest.mark.parametrize(("how", "status"), [("normal", 0), ("raise", 1), ("exit", 3)])
def test_the_launcher_exits_with_the_scripts_status(mpiexec, sandbox, how, status):
    script = sandbox.script("endings.py", _ENDINGS)
    result, elapsed = _end_to_end(sandbox, _script_command(mpiexec, 4, script, how))
    print(f"\n{how}: exit {result.returncode} after {elapsed:.2f} s (4 ranks, start to end)")
    assert result.returncode == status, result.stdout + result.stderr
    assert "workers 2" in result.stdout, result.stdout
    if how == "raise":
        assert result.stderr.count("RuntimeError: failure in the user code") == 1, result.stderr
    for noise in ("CommClosedError", "StreamClosedError", "BAD TERMINATION"):
        assert noise not in result.stderr, result.stderr
    sandbox.assert_clean()


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        line = process.stdout.readline()
        if (not line and process.poll() is not None) or time.monotonic() > deadline:
            raise AssertionError(f"never saw {text!r}; output so far: {seen}")
        seen += line
    return seen


def _interrupt_mid_task(sandbox, command: list[str], signum: int) -> tuple[float, str, int]:
    """Start ``command``, signal it while workers are busy; return (seconds until no
    process of the run is left, stderr, exit status)."""
    process = sandbox.popen(command)
    try:
        _wait_for_line(process, "computing")
        time.sleep(1.0)  # both workers inside their two-minute task
        process.send_signal(signum)
        signalled = time.monotonic()
        process.wait(timeout=EXIT_BOUND)
        left = wait_until_gone(sandbox.marker, timeout=EXIT_BOUND)
        gone_after = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert not left, [p.cmdline() for p in left]
    return gone_after, process.stderr.read(), process.returncode


@pytest.mark.parametrize(
    ("launcher", "signum"),
    [
        ("mpiexec", signal.SIGINT),
        ("mpiexec", signal.SIGTERM),
        ("daskdeploy-run", signal.SIGINT),
        ("daskdeploy-run", signal.SIGTERM),
    ],
)
@pytest.mark.fault("{signum.name} to daskdeploy run", "mpi")
def test_a_signal_ends_every_rank_quickly_even_mid_task(
    mpiexec, sandbox, launcher, signum, record_fault
):
    script = sandbox.script("endings.py", _ENDINGS)
    if launcher == "mpiexec":
        command = _script_command(mpiexec, 4, script, "busy")
    else:
        command = sandbox.command("run", "--backend", "mpi", "-n", "2", str(script), "busy")
    gone_after, stderr, status = _interrupt_mid_task(sandbox, command, signum)
    print(f"\n{launcher} {signum.name}: every rank gone {gone_after:.2f} s after the signal")
    record_fault(gone_after, f"{launcher}: to no rank left")
    if signum == signal.SIGTERM:
        expected = 128 + signum  # every rank's (and daskdeploy run's) handler: 143
    elif launcher == "mpiexec":
        expected = signum  # ranks ended by SIGINT (CPython re-raises it): MPICH exits 2
    else:
        expected = 130  # daskdeploy run's status for SIGINT, as a shell's
    assert status == expected, stderr
    assert "CommClosedError" not in stderr, stderr
    sandbox.assert_clean()


@pytest.mark.parametrize("how", ["exits-before-mpi", "starts-mpi-but-not-dask"])
def test_a_rank_that_never_calls_deploy_is_explained_and_nothing_hangs(mpiexec, sandbox, how):
    """MPI_Init waits for every rank in C code: a watchdog ends the wait after `timeout`."""
    other_code = "sys.exit(0)" if how == "exits-before-mpi" else "from mpi4py import MPI"
    script = sandbox.script(
        "missing_rank.py",
        "import os, sys\n"
        "import daskdeploy\n"
        "if os.environ.get('PMI_RANK') == '3':\n"
        f"    {other_code}\n"
        "    sys.exit(0)  # this rank runs other code and never deploys\n"
        "with daskdeploy.deploy('mpi', timeout=3) as client:\n"
        "    print('unreachable')\n",
    )
    result, elapsed = _end_to_end(sandbox, _script_command(mpiexec, 4, script), timeout=60)
    print(f"\nrank 3 {how}: exit {result.returncode} after {elapsed:.2f} s (timeout 3 s)")
    # the watchdog ends a rank stuck in MPI_Init with SIGKILL, which MPICH reports as 9;
    # a rank inside MPI whose peer never deploys raises, and exits 1
    assert result.returncode == (9 if how == "exits-before-mpi" else 1), result.stderr
    if how == "exits-before-mpi":
        assert "MPI start-up waited 3 s for the other ranks" in result.stderr, result.stderr
    else:
        assert "ranks [3] did not call deploy() within 3 s" in result.stderr, result.stderr
    assert "unreachable" not in result.stdout
    assert elapsed < 3 + 10 + EXIT_BOUND, elapsed
    sandbox.assert_clean()


@pytest.mark.fault("worker SIGKILL mid-task", "mpi")
def test_a_rank_killed_mid_task_takes_the_run_down_and_leaves_no_files(
    mpiexec, sandbox, record_fault
):
    """SIGKILL allows no clean-up: each rank's watchdog removes its scratch directory."""
    script = sandbox.script(
        "killed_rank.py",
        "import os\n"
        "import daskdeploy\n"
        "with daskdeploy.deploy('mpi', timeout=20) as client:\n"
        "    client.submit(lambda: os.kill(os.getpid(), 9)).result()\n",
    )
    result, elapsed = _end_to_end(sandbox, _script_command(mpiexec, 4, script), timeout=60)
    print(f"\na worker rank killed with SIGKILL: exit {result.returncode} after {elapsed:.2f} s")
    record_fault(elapsed, "the MPI run ends (MPI semantics): start to exit")
    assert result.returncode == 9, result.stderr  # MPICH: a rank killed by signal 9
    assert elapsed < EXIT_BOUND, elapsed
    sandbox.assert_clean()


# ------------------------------------------------------------------------ bad worlds


def test_mismatched_mpi_gives_one_clear_error(mpiexec, open_mpi, sandbox):
    """mpi4py on Open MPI's library under MPICH's mpiexec: N worlds of 1."""
    script = sandbox.script("mismatch.py", "import daskdeploy\ndaskdeploy.deploy()\n")
    result, elapsed = _end_to_end(
        sandbox, _script_command(mpiexec, 3, script), MPI4PY_LIBMPI="libmpi.so.40"
    )
    print(f"\nworld-of-1 mismatch reported after {elapsed:.2f} s")
    assert result.returncode == 1, result.stderr
    message = "started 3 ranks, but mpi4py joined an MPI world of 1 with Open MPI"
    assert result.stderr.count(message) == 1, result.stderr
    assert "suspicious MPI execution environment" not in result.stderr
    assert elapsed < 15
    sandbox.assert_clean()


def test_workers_that_contradict_the_world_are_refused(mpiexec, sandbox):
    command = [
        mpiexec, "-n", "4", PYTHON, "-m", "daskdeploy", "run", "--backend", "mpi", "-n", "5",
        str(EXAMPLES / "pi.py"),
    ]  # fmt: skip
    result, _ = _end_to_end(sandbox, command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "started 4 ranks, which make 2 worker(s)" in result.stderr, result.stderr
    assert "Launch with -n 7, or drop workers" in result.stderr
    sandbox.assert_clean()


def test_outside_a_launcher_the_error_says_how_to_launch(sandbox):
    script = sandbox.script("plain.py", "import daskdeploy\ndaskdeploy.deploy('mpi')\n")
    result, elapsed = _end_to_end(sandbox, [PYTHON, str(script)], timeout=60)
    assert result.returncode == 1
    assert "BackendUnavailableError" in result.stderr
    assert "not started by an MPI launcher" in result.stderr
    assert "daskdeploy run --backend mpi -n 2 script.py" in result.stderr
    assert elapsed < 15
    sandbox.assert_clean()


# --------------------------------------------------------------------------- Open MPI


@pytest.mark.parametrize(("how", "status"), [("normal", 0), ("raise", 1)])
def test_open_mpi_runs_the_same_script(open_mpi, sandbox, how, status):
    script = sandbox.script("endings.py", _ENDINGS)
    env = open_mpi_root_environment(4)
    result, elapsed = _end_to_end(sandbox, [open_mpi, "-n", "4", PYTHON, str(script), how], **env)
    print(f"\nOpen MPI {how}: exit {result.returncode} after {elapsed:.2f} s")
    assert result.returncode == status, result.stdout + result.stderr
    assert "workers 2" in result.stdout, result.stdout
    sandbox.assert_clean()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.fault("{signum.name} to daskdeploy run", "mpi")
def test_a_signal_to_open_mpi_ends_every_rank(open_mpi, sandbox, signum, record_fault):
    script = sandbox.script("endings.py", _ENDINGS)
    sandbox.env.update(open_mpi_root_environment(4))
    command = [open_mpi, "-n", "4", PYTHON, str(script), "busy"]
    gone_after, stderr, status = _interrupt_mid_task(sandbox, command, signum)
    print(f"\nOpen MPI {signum.name}: every rank gone {gone_after:.2f} s after the signal")
    assert status == 1, stderr  # Open MPI's mpirun reports an aborted job as 1
    record_fault(gone_after, "mpirun.openmpi: to no rank left")
    assert "CommClosedError" not in stderr, stderr
    sandbox.assert_clean()


def test_daskdeploy_run_can_launch_open_mpi(open_mpi, sandbox):
    command = sandbox.command(
        "run", "--backend", "mpi", "-n", "2", "--option", f"launcher={open_mpi}",
        str(EXAMPLES / "pi.py"), "--samples", "200000",
    )  # fmt: skip
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("OMPI_")}
    result = subprocess.run(
        command, env=env, cwd=sandbox.root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "OMPI_ALLOW_RUN_AS_ROOT=1" in result.stderr or os.geteuid() != 0, result.stderr
    check_pi(result.stdout, ["--samples", "200000"])
    sandbox.assert_clean()


# ------------------------------------------------------------------------------ SLURM


@pytest.mark.parametrize("how", ["mpiexec", "daskdeploy-run", "srun-pmi2"])
def test_mpi_inside_a_slurm_job(mpiexec, slurm, sandbox, how):
    pi = f"{EXAMPLES / 'pi.py'} --samples 400000"
    # One node: the test cluster's nodes are several slurmd on this one machine, and
    # MPICH's UCX transport between ranks on "different nodes" of one host is unreliable
    # there (srun's PMI-2 start-up fails outright; under mpiexec, messages are now and
    # then lost: "UCX WARN unexpected tag-receive descriptor ... was not matched").
    nodes = ["-N", "1", "-n", "5"]
    if how == "mpiexec":
        command = f"{mpiexec} -n 5 {PYTHON} {pi}"
    elif how == "daskdeploy-run":
        command = f"{PYTHON} -m daskdeploy run --backend mpi -n 3 {pi}"
    else:
        nodes = ["-N", "1", "-n", "3"]
        command = f"srun --mpi=pmi2 {PYTHON} {pi}"
    status, log = sbatch(sandbox, slurm, command, *nodes, "--mem-per-cpu=500")
    assert status == 0, log
    check_pi(log, ["--samples", "400000"])  # once: only the script's rank prints
    workers = 1 if how == "srun-pmi2" else 3
    assert f"on mpi: {workers} worker" in log, log
    # each worker's memory limit is the job's --mem-per-cpu
    assert f"memory={'1.46 GiB' if workers == 3 else '500.00 MiB'}>" in log, log
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


_PROBE_WORKERS = """\
import daskdeploy
with daskdeploy.deploy('mpi') as client:
    info = client.scheduler_info(n_workers=-1)['workers'].values()
    print('threads', sorted(w['nthreads'] for w in info))
    print('memory', sorted(w['memory_limit'] for w in info))
"""


def test_a_rank_of_several_cpus_runs_single_threaded_worker_processes(mpiexec, slurm, sandbox):
    """-c 2: the worker rank runs 2 one-thread workers sharing its memory, unless
    threads_per_worker is set (then 1 worker of 2 threads, as before)."""
    script = sandbox.script("probe.py", _PROBE_WORKERS)
    run = f"{mpiexec} -n 3 {PYTHON} {script}"
    command = f"{run} && echo EXPLICIT && DASK_DASKDEPLOY__MPI__THREADS_PER_WORKER=2 {run}"
    resources = ["-N", "1", "-n", "3", "-c", "2", "--mem-per-cpu=300"]  # one node: see above
    status, log = sbatch(sandbox, slurm, command, *resources)
    assert status == 0, log
    default, explicit = log.split("EXPLICIT", 1)
    assert "threads [1, 1]" in default, log
    assert f"memory {[300 * 2**20] * 2}" in default, log
    assert (
        "on mpi: 2 workers x 1 thread (2 CPUs per SLURM task: one single-threaded worker "
        "process per CPU; set threads_per_worker for threads)" in default
    ), log
    assert "threads [2]" in explicit and f"memory {[600 * 2**20]}" in explicit, log
    assert "on mpi: 1 worker x 2 threads (2 CPUs per SLURM task, threads_per_worker=2" in explicit
    assert "Traceback" not in log and "distributed.worker - INFO" not in log, log
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_workers_count_the_worker_processes_of_ranks_of_several_cpus(monkeypatch):
    """Under a launcher in a -c 2 job, 4 ranks make 2 worker ranks x 2 processes: workers
    may be 3 or 4 (the last rank runs fewer), not 2 or 5."""
    import daskdeploy

    for name, value in {"PMI_SIZE": "4", "PMI_RANK": "1", "SLURM_JOB_ID": "7"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert "4 worker(s) x 1 thread(s) (2 CPUs per SLURM task" in daskdeploy.plan("mpi").describe()
    assert "3 worker(s) x 1 thread(s)" in daskdeploy.plan("mpi", workers=3).describe()
    for workers, ranks in ((5, 5), (2, 3)):
        with pytest.raises(daskdeploy.OptionError, match=f"Launch with -n {ranks}, or drop"):
            daskdeploy.plan("mpi", workers=workers)
    assert "2 worker(s) x 2 thread(s)" in daskdeploy.plan("mpi", threads_per_worker=2).describe()


def test_the_mpi_sbatch_template_runs_the_main_job(mpiexec, slurm, sandbox):
    """examples/sbatch/mpi.sbatch, submitted as users submit it, runs pi on 4 workers."""
    path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"  # its python and mpiexec
    status, log = sbatch(
        sandbox,
        slurm,
        None,
        "--nodes=1",  # over the template's 2: one host's fake nodes (see above)
        script=REPO / "examples" / "sbatch" / "mpi.sbatch",
        cwd=REPO,
        env={**sandbox.env, "PATH": path},
    )
    assert status == 0, log
    check_pi(log)  # once; the template runs `examples/pi.py` with its default arguments
    assert "on mpi: 4 workers" in log, log
    assert "MPI job done at" in log, log
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_workers_listen_on_the_address_facing_the_scheduler_never_on_every_interface():
    from distributed.utils import get_ip

    from daskdeploy.backends.mpi.backend import _worker_host

    options = {"interface": None}
    assert _worker_host(options, "tls://127.0.0.1:8786") == "127.0.0.1"
    # A scheduler on another node: this host's address on the route there, as a worker
    # on a second node of a multi-node run would see it (not None, i.e. not 0.0.0.0).
    assert _worker_host(options, "tls://192.0.2.77:8786") == get_ip("192.0.2.77")
    assert _worker_host(options, "tls://192.0.2.77:8786") not in ("", "0.0.0.0", None)
