"""Shared fixtures: isolated dask config, the leftovers sandbox, real components.

The generic kit (the sandbox and its helpers, the fault table, the contract suite) lives
in :mod:`daskdeploy.testing`; this file gives its fixtures the names the tests use and
adds this project's own: the session's SLURM cluster and SSH hosts, batch-job helpers,
the examples' data and expected answers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dask.config
import pytest

from daskdeploy.config import ensure_defaults
from daskdeploy.datasets import prepare_airline, prepare_wiki
from reference_answers import check_answer

# Before they are imported: assertion messages with values in the kit's checks.
pytest.register_assert_rewrite("daskdeploy.testing.sandbox", "daskdeploy.testing.contract")

from daskdeploy.testing.sandbox import (  # noqa: E402
    MARKER_VAR,
    Sandbox,
    processes_with_marker,
    require,
    wait_for,
    wait_until_gone,
)

#: The cache directories (under ``$XDG_CACHE_HOME/daskdeploy``) the ``sandbox`` fixture
#: requires empty: job output, scheduler files, credentials. Records are checked where a
#: test asks (``daskdeploy ls``), as before the sandbox moved into daskdeploy.testing.
CACHE_DIRS_CHECKED = ("slurm-logs", "rendezvous", "credentials")

# The fault table (``@pytest.mark.fault``, ``record_fault``) and the contract suite's kit.
pytest_plugins = ["daskdeploy.testing.faults"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
__all__ = [  # the kit's names the test modules import from here, and this file's
    "EXAMPLES",
    "MARKER_VAR",
    "REPO",
    "Sandbox",
    "processes_with_marker",
    "require",
    "require_module",
    "wait_for",
    "wait_until_gone",
]


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Give every test its own dask config dir and no DASKDEPLOY_BACKEND from outside."""
    config_dir = tmp_path_factory.mktemp("dask-config")
    monkeypatch.setattr(dask.config, "PATH", str(config_dir))
    monkeypatch.setenv("DASK_CONFIG", str(config_dir))
    monkeypatch.delenv("DASKDEPLOY_BACKEND", raising=False)
    # Default SLURM job logs go to $XDG_CACHE_HOME/daskdeploy: keep them per test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    ensure_defaults()
    with dask.config.set({"daskdeploy.profiles": {}}):
        yield config_dir


@pytest.fixture
def sandbox(tmp_path: Path, isolated_config: Path) -> Iterator[Sandbox]:
    """A :class:`~daskdeploy.testing.sandbox.Sandbox` in ``tmp_path`` sharing the test's
    dask config; whatever it left running is killed at the end."""
    box = Sandbox(tmp_path, isolated_config, cache_dirs=CACHE_DIRS_CHECKED)
    yield box
    box.kill_all()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[object]:
    """A real SLURM cluster on localhost for the whole session: munged, slurmctld, 3 slurmd.

    The nodes declare 8 CPUs each, more than this machine has, so many one-core worker jobs
    run at once. SLURM_CONF is exported for the session, so deploy("slurm") and every
    subprocess finds it.
    """
    with running_slurm(nodes=3, cpus_per_node=8, memory_mb=32000) as cluster:
        yield cluster


@contextlib.contextmanager
def running_slurm(**settings: Any) -> Iterator[Any]:
    """A started ``LocalSlurm(**settings)`` with ``SLURM_CONF`` pointing at it meanwhile;
    stopped, and ``SLURM_CONF`` restored, however the block ends."""
    from daskdeploy.testing.slurm import LocalSlurm, unavailable_reason

    require(unavailable_reason(), "a local SLURM cluster")
    cluster = LocalSlurm(**settings).start()
    saved = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster):
    """The session's SLURM cluster; the test fails if it leaves any job behind."""
    yield slurm_cluster
    left = slurm_cluster.jobs()
    if left:
        slurm_cluster.run("scancel", *[job["id"] for job in left])
        slurm_cluster.wait_for_no_jobs(timeout=30)
        pytest.fail(f"jobs left in SLURM after the test: {left}")


def require_module(name: str, extra: str) -> ModuleType:
    """Import and return ``name``, a dependency of ``daskdeploy[extra]``.

    Without it the test (or, called at module level, the module) is skipped, but fails
    under CI, as :func:`require` does: a CI run must install every extra, and a skip there
    would hide a broken install. Import daskdeploy's own modules plainly: an ImportError
    there is a bug, never a reason to skip.
    """
    try:
        return importlib.import_module(name)
    except ImportError as error:
        message = f"{name} unavailable: {error} (pip install 'daskdeploy[{extra}]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must provide it: see .ci/run)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path.

    The module is deliberately not put in ``sys.modules``: like a script run as
    ``__main__``, its functions are then pickled by value for the workers.
    """
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Shared by the test modules, so the airline data is prepared once."""
    return tmp_path_factory.getbasetemp() / "data"


@pytest.fixture(scope="session")
def airline_dir(data_dir) -> Path:
    prepare_airline(data_dir / "airline")
    return data_dir / "airline"


@pytest.fixture(scope="session")
def wiki_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("wiki")
    prepare_wiki(dest, size="600kB", files=3, seed=1)
    return dest


def example_argv(name: str, wiki_dir: Path, airline_dir: Path) -> list[str]:
    """Command-line arguments that make each example quick but real."""
    return {
        "pi": ["--samples", "2000000", "--chunk", "250000"],
        "calc_mean": ["--replicates", "40", "--n", "1000"],
        "wiki_bag": ["--data", str(wiki_dir)],
        "airline": ["--data", str(airline_dir)],
    }[name]


#: Each example once, each way of launching it twice (the launch does not depend on it).
EXAMPLE_LAUNCHES = [
    ("pi", "daskdeploy-run"),
    ("calc_mean", "python"),
    ("wiki_bag", "daskdeploy-run"),
    ("airline", "python"),
]


def check_example_runs_unchanged(
    backend: str, name: str, launcher: str, sandbox, argv: list[str]
) -> None:
    """Run example ``name`` unchanged on ``backend`` with 2 workers, by ``daskdeploy run
    --report`` or by ``python`` with the backend from the environment, and check its
    answer, the start-up line, the report and that nothing is left."""
    script = str(EXAMPLES / f"{name}.py")
    if launcher == "python":
        sandbox.env.update(
            DASKDEPLOY_BACKEND=backend, **{f"DASK_DASKDEPLOY__{backend.upper()}__WORKERS": "2"}
        )
        command = [sys.executable, script, *argv]
    else:
        command = sandbox.command(
            "run", "--backend", backend, "--workers", "2", "--report", script, *argv
        )
    result = sandbox.run(command)
    assert result.returncode == 0, result.stderr
    check_answer(name, result.stdout, argv)
    assert f"on {backend}: 2 workers" in result.stderr
    if launcher == "daskdeploy-run":
        assert report_figures(result.stderr)["workers"].startswith("2 x 1 thread")
    sandbox.assert_clean()


def submit_batch_job(
    sandbox,
    command: str | None,
    *resources: str,
    script: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, Path]:
    """Submit ``command`` (or the batch ``script``) with sbatch; return (job id, output file)."""
    output = sandbox.root / f"job-{time.monotonic_ns()}.out"
    options = ["--parsable", f"--output={output}", "-t", "00:10:00", *resources]
    target = [str(script)] if script else ["--wrap", command]
    submitted = subprocess.run(
        ["sbatch", *options, *target],
        cwd=cwd or sandbox.root,
        env=env or sandbox.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip().split(";")[0], output


def run_batch_job(
    sandbox,
    slurm,
    command: str | None,
    *resources: str,
    timeout: float = 180,
    script: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
):
    """Run ``command`` (or the batch ``script``) as a job and wait; return (status, output).

    Polls squeue every 0.2 s (``sbatch --wait`` polls at growing intervals of seconds) and
    reads the exit status from ``scontrol show job``.
    """
    job_id, output = submit_batch_job(sandbox, command, *resources, script=script, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout
    while any(job["id"] == job_id for job in slurm.jobs()):
        if time.monotonic() > deadline:
            slurm.run("scancel", job_id)
            raise AssertionError(f"job {job_id} still running after {timeout} s")
        time.sleep(0.2)
    shown = slurm.run("scontrol", "show", "job", job_id).stdout
    status = int(re.search(r"\bExitCode=(\d+):", shown).group(1))
    return status, output.read_text() if output.exists() else shown


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[object]:
    """Three network-namespace hosts with a private sshd each (plus one on loopback)."""
    from daskdeploy.testing.ssh import LocalSSHHosts, unavailable_reason

    require(unavailable_reason(), "sshd in network namespaces")
    hosts = LocalSSHHosts(namespaces=3).start()
    try:
        yield hosts
    finally:
        hosts.stop()


# ------------------------------------------------------------------------------ fault suite
#
# The fault table is the plugin daskdeploy.testing.faults (see its docstring): tests tagged
# ``@pytest.mark.fault(case, backend)`` and the contract suites' cases, one table at the
# end of the session with a column per registered backend. Here: the cells where a case
# cannot happen, and why (tests/test_faults.py explains each).

#: Cells where a case cannot happen, and why (tests/test_faults.py explains each).
FAULT_NOT_APPLICABLE = {
    **{
        (case, backend): "no SLURM job"
        for case in ("job cancelled mid-run", "walltime expiry mid-run")
        for backend in ("local", "ssh")
    },
    ("job cancelled mid-run", "mpi"): "no job of its own",
    ("walltime expiry mid-run", "mpi"): "no job of its own",
    ("walltime expiry mid-run", "allocation"): "limit ends the job",
    ("walltime expiry mid-run", "batchjob"): "limit ends the job",
}


def pytest_configure(config: pytest.Config) -> None:
    from daskdeploy.testing.faults import NOT_APPLICABLE

    config.stash[NOT_APPLICABLE] = FAULT_NOT_APPLICABLE


def report_figures(text: str) -> dict:
    """The worker line and CPU efficiency of a printed ``--report``; asserts it is there."""
    assert "CPU-efficiency report for dd-" in text, text
    workers = re.search(r"^  workers +(.+)$", text, re.M)
    efficiency = re.search(r"^  CPU efficiency +([\d.]+)%$", text, re.M)
    assert workers and efficiency, text
    return {"workers": workers.group(1), "efficiency": float(efficiency.group(1))}


@pytest.fixture(scope="session")
def sge_cell() -> Iterator[object]:
    """A real SGE cell on localhost for the whole session: sge_qmaster, sge_execd, all.q.

    The queue has 8 slots, more than this machine has cores, and the PE ``smp``.
    SGE_ROOT, SGE_CELL, SGE_QMASTER_PORT and SGE_EXECD_PORT are exported for the session,
    so qsub, dask-jobqueue's SGECluster and every subprocess find the cell.
    """
    from daskdeploy.testing.sge import LocalSGE, unavailable_reason

    require(unavailable_reason(), "a local SGE cell")
    cell = LocalSGE(slots=8).start()
    saved = {name: os.environ.get(name) for name in cell.environ}
    os.environ.update(cell.environ)
    try:
        yield cell
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cell.stop()


@pytest.fixture
def sge(sge_cell):
    """The session's SGE cell; the test fails if it leaves any job behind."""
    yield sge_cell
    left = sge_cell.jobs()
    if left:
        text = sge_cell.qstat_text()
        sge_cell.run("qdel", "-u", "*")
        sge_cell.wait_for_no_jobs(timeout=30)
        pytest.fail(f"jobs left in SGE after the test: {left}\n{text}")
