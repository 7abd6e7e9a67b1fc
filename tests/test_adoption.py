"""Scripts that set up Dask themselves run on the deployment under ``daskdeploy run``.

The end-to-end cases run the teaching documents' code (``tests/seed_scripts/``) and a few
laptop-style scripts on every backend against the real components, and check each answer
against a reference computed here with numpy or plain Python, that the deployment's
workers ran the tasks (the efficiency report's task count, from the scheduler), and that
no worker process of the script's own started under ``daskdeploy run``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest

import daskdeploy
from conftest import MARKER_VAR, report_figures
from conftest import run_batch_job as sbatch

SEEDS = Path(__file__).with_name("seed_scripts")
PYTHON = sys.executable

# -- references, computed without dask ------------------------------------------------------


def calc_mean_reference(n: int = 400_000, p: int = 4) -> list[list[float]]:
    """What the Berkeley tutorial's calc_mean gives for replicates 0..p-1."""
    answers = []
    for i in range(p):
        np.random.seed(i)
        data = np.random.normal(size=n)
        answers.append([float(np.mean(data)), float(np.std(data))])
    return answers


def check_berkeley(output: str) -> int:
    """Every section's answer is the reference; returns the tasks the script submitted."""
    expected = calc_mean_reference()
    for section in ("threads", "processes", "distributed", "map"):
        found = re.search(rf"^{section} (\[.*\])$", output, re.M)
        assert found, (section, output)
        assert json.loads(found.group(1)) == expected, section
    return 16  # four sections of four calc_mean tasks


def check_acenet(output: str) -> int:
    size = 2_000_000
    assert f"sum of parts {4 * (size * (size - 1) // 2)}" in output, output
    return 5  # four parts and their sum


def check_blog(output: str) -> int:
    assert f"total {sum(range(3_000_000))}" in output, output
    return 6  # six chunks (and their aggregation)


def check_laptop(output: str) -> int:
    assert f"squares {sum(x * x for x in range(200))}" in output, output
    assert "arange 499999500000" in output, output
    return 200 + 10


def check_mpi(output: str) -> int:
    assert f"squares {sum(x * x for x in range(50))}" in output, output
    return 50


LAPTOP = """\
from dask.distributed import Client
import dask.array as da

def square(x):
    return x * x

if __name__ == "__main__":
    client = Client(n_workers=4, threads_per_worker=1, memory_limit="2GB")
    print("squares", sum(client.gather(client.map(square, range(200)))))
    print("arange", da.arange(1_000_000, chunks=100_000).sum().compute())
    client.close()
"""

DASK_MPI = """\
from dask_mpi import initialize
initialize()

from dask.distributed import Client
client = Client()

def square(x):
    return x * x

print("squares", sum(client.gather(client.map(square, range(50)))))
"""

SCRIPTS = {
    "berkeley": (SEEDS / "berkeley_schedulers.py", check_berkeley),
    "acenet": (SEEDS / "acenet_compute_distributed.py", check_acenet),
    "blog": (SEEDS / "jobqueue_blog.py", check_blog),
    "laptop": (LAPTOP, check_laptop),
    "dask_mpi": (DASK_MPI, check_mpi),
}


CLUSTER_LOG_FLOOD = re.compile(
    r" - INFO - (State start|Scheduler at:|Start Nanny at:|Start worker at:|Register worker"
    r"|Retire worker|Closing Nanny at|Nanny asking worker to close|Remove worker"
    r"|Lost all workers|Closing scheduler)"
)
"""INFO lines of a cluster that starts and stops in the script's process (the flood)."""


# -- watching for worker processes the script starts itself -------------------------------


@contextmanager
def worker_processes_under_run(marker: str) -> Iterator[set[int]]:
    """Collect the worker processes (multiprocessing children) below a ``daskdeploy run``.

    A script's own LocalCluster starts its workers as children of the process running
    the script; the deployment's workers of slurm, allocation and ssh run under SLURM or
    sshd instead, and local's are the deployment's own. Polls every 0.1 s.
    """
    found: set[int] = set()
    stop = threading.Event()

    def under_run(process: psutil.Process) -> bool:
        for parent in process.parents():
            line = " ".join(parent.cmdline())
            if "daskdeploy run" in line or "-m daskdeploy run" in line:
                return True
        return False

    def watch() -> None:
        while not stop.wait(0.1):
            for process in psutil.process_iter(["cmdline"]):
                try:
                    if "spawn_main" not in " ".join(process.info["cmdline"] or ()):
                        continue
                    if process.environ().get(MARKER_VAR) == marker and under_run(process):
                        found.add(process.pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


def script_path(sandbox, name: str) -> Path:
    source, _ = SCRIPTS[name]
    if isinstance(source, Path):
        return source
    return sandbox.script(f"script_{name}.py", source)


def assert_adopted(name: str, output: str, deployment_workers: int, spawned: set[int]) -> None:
    """The answer is right, the deployment ran every task, and the script started no workers."""
    _, check = SCRIPTS[name]
    tasks = check(output)
    assert "runs on this deployment" in output, output
    assert "runs on its own" not in output, output
    figures = report_figures(output)
    ran = re.search(r"^  tasks +([\d,]+)", output, re.M)
    assert ran, output
    assert int(ran.group(1).replace(",", "")) >= tasks, (figures, output)
    # A cluster the script runs itself floods stderr with these when it closes and gives
    # the log level back; an adopted one starts nothing. (distributed may still log a
    # stream it found closed during teardown: that is not the flood.)
    assert not CLUSTER_LOG_FLOOD.search(output), output
    assert len(spawned) <= deployment_workers, (spawned, output)


# -- end to end, every backend ---------------------------------------------------------------


def run_adopted(sandbox, name: str, *flags: str, workers: int) -> str:
    """``daskdeploy run FLAGS --report SCRIPT`` here; assert it adopted; return its output.

    ``workers``: the worker processes the deployment itself starts below the command
    (local and mpi); 0 where they run under SLURM or sshd.
    """
    script = str(script_path(sandbox, name))
    with worker_processes_under_run(sandbox.marker) as spawned:
        result = sandbox.run(sandbox.command("run", *flags, "--report", script))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert_adopted(name, output, workers, spawned)
    return output


# Each pattern runs on local; the SLURM lessons' scripts (acenet, blog) on slurm and in an
# allocation, where their scale() and job_script() matter; one lesson on ssh and mpi.
@pytest.mark.parametrize("name", ["berkeley", "laptop", "dask_mpi"])
def test_local(sandbox, name):
    run_adopted(sandbox, name, "-n", "2", workers=2)
    sandbox.assert_clean()


@pytest.mark.parametrize("name", ["berkeley", "acenet", "blog"])
def test_slurm(slurm, sandbox, name):
    output = run_adopted(sandbox, name, "--backend", "slurm", "-n", "2", workers=0)
    if name == "acenet":  # the script printed the deployment's real job script
        assert "#SBATCH" in output and "distributed.cli.dask_worker" in output, output
        assert "cluster.scale(1) resizes this deployment (slurm)" in output, output
    if name == "blog":
        assert "cluster.scale(jobs=2) resizes this deployment (slurm)" in output, output
    assert not slurm.jobs()
    sandbox.assert_clean()


@pytest.mark.parametrize("name", ["berkeley", "acenet"])
def test_allocation(slurm, sandbox, name):
    script = script_path(sandbox, name)
    command = f"{PYTHON} -m daskdeploy run --report {script}"
    with worker_processes_under_run(sandbox.marker) as spawned:
        status, log = sbatch(sandbox, slurm, command, "-N", "2", "-n", "2", "--mem-per-cpu=1500")
    assert status == 0, log
    assert_adopted(name, log, 0, spawned)
    if name == "acenet":
        assert "cluster.scale(1) is not applied" in log, log
        assert "# daskdeploy: no job script; this allocation deployment runs" in log, log
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


@pytest.mark.parametrize("name", ["berkeley"])
def test_ssh(ssh_hosts, sandbox, name):
    from test_ssh import configure, wait_remote_gone

    configure(sandbox, ssh_hosts)
    run_adopted(sandbox, name, "--backend", "ssh", workers=0)
    wait_remote_gone(ssh_hosts)
    sandbox.assert_clean()


@pytest.mark.parametrize("name", ["berkeley", "dask_mpi"])
def test_mpi(mpi_launcher, sandbox, name):
    run_adopted(sandbox, name, "--backend", "mpi", "-n", "2", workers=2)
    sandbox.assert_clean()


@pytest.fixture
def mpi_launcher() -> str:
    from conftest import require
    from daskdeploy.testing.mpi import unavailable_reason

    require(unavailable_reason(), "MPICH (pip install mpich mpi4py)")
    return "mpiexec"


# -- adoption off, and a script that kills its own worker ------------------------------------


def test_no_adopt_keeps_the_scripts_cluster_and_the_report_says_so(sandbox):
    script = sandbox.script("laptop.py", LAPTOP)
    result = sandbox.run(sandbox.command("run", "-n", "1", "--no-adopt", "--report", str(script)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    check_laptop(output)
    assert (
        "the script's Client(n_workers=4, threads_per_worker=1, memory_limit='2GB') runs "
        "on its own: adoption is off (--no-adopt)" in output
    ), output
    assert re.search(r"^  tasks +none ran", output, re.M), output
    hint = " ".join(output.split())
    assert "The script ran its own Dask set-up (Client(n_workers=4" in hint, output
    assert "plain NumPy or pandas" not in hint
    sandbox.assert_clean()


KILLS_ITS_OWN_WORKER = """\
import os, signal, time
from dask.distributed import Client, LocalCluster

def slow(x):
    time.sleep(0.05)
    return x + 1

if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2)
    client = Client(cluster)
    futures = client.map(slow, range(40))
    client.wait_for_workers(2)
    victim = next(iter(cluster.scheduler.workers.values()))
    os.kill(victim.pid, signal.SIGKILL)
    print("total", sum(client.gather(futures)))
"""


def test_a_script_killing_its_own_worker_still_gets_the_answer(sandbox):
    script = sandbox.script("kill.py", KILLS_ITS_OWN_WORKER)
    result = sandbox.run(sandbox.command("run", "-n", "2", str(script)))
    assert result.returncode == 0, result.stderr
    assert f"total {sum(range(1, 41))}" in result.stdout, result.stdout + result.stderr
    sandbox.assert_clean()


# -- in-process: what an adopted object is and does ------------------------------------------


@pytest.fixture(scope="module")
def deployment_client():
    with daskdeploy.deploy("local", workers=2) as client:  # not quiet: adoption lines print
        yield client


def test_objects_the_script_gets_behave_like_the_cluster_it_asked_for(deployment_client, capsys):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from daskdeploy.adoption import adopting

    deployment = deployment_client.deployment
    with adopting(deployment):
        cluster = LocalCluster(n_workers=7, threads_per_worker=3)
        assert cluster.scheduler_address == deployment.scheduler_address
        assert cluster.dashboard_link == deployment.dashboard_link
        assert len(cluster.scheduler_info["workers"]) == 2
        assert "LocalCluster(n_workers=7, threads_per_worker=3) -> daskdeploy" in repr(cluster)
        with Client(cluster) as client:
            assert client.cluster is cluster
            assert client.submit(sum, [1, 2]).result() == 3
        with Client() as bare:
            assert bare.scheduler.address == deployment.scheduler_address
            bare.shutdown()  # closes the script's client only
        assert deployment_client.submit(sum, [2, 3]).result() == 5
        with dask.config.set(scheduler="threads"):
            assert int(da.ones(10, chunks=5).sum().compute()) == 10
        cluster.close()
        assert deployment_client.status == "running"
    err = capsys.readouterr().err
    assert (
        "daskdeploy: the script's LocalCluster(n_workers=7, threads_per_worker=3) runs on this "
        "deployment (local, 2 workers x 1 thread)." in err
    )
    assert "the script's Client() runs on this deployment" in err
    assert "the script's scheduler='threads' runs on this deployment" in err


def test_what_is_left_alone(deployment_client, tmp_path):
    import dask
    from distributed import Client

    from daskdeploy.adoption import adopting

    deployment = deployment_client.deployment
    with adopting(deployment):
        with Client(deployment.scheduler_address) as explicit:
            assert not getattr(explicit, "_daskdeploy_adopted", False)
            assert explicit.cluster is None
        process_ids = dask.compute(*[dask.delayed(_pid)() for _ in range(3)], scheduler="sync")
        assert set(process_ids) == {_pid()}  # sync stays in this process


def _pid() -> int:
    import os

    return os.getpid()


def test_hooks_are_removed_after_the_run(deployment_client):
    import dask.base
    from distributed import Client, LocalCluster

    from daskdeploy.adoption import adopting
    from daskdeploy.adoption.cluster import AdoptedCluster

    def hooks() -> tuple:
        return (
            Client.__init__,
            Client.shutdown,
            Client.scheduler_info,
            dict(dask.base.named_schedulers),
            sys.meta_path[:],
        )

    before = hooks()
    with adopting(deployment_client.deployment):
        assert isinstance(LocalCluster(), AdoptedCluster)
    assert hooks() == before
    # SpecCluster keeps a pass-through __new__ (CPython cannot take one off a class
    # cleanly): after the run, clusters are real and take their arguments as before.
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        assert type(cluster) is LocalCluster


def test_fixed_deployments_say_scale_is_not_applied(deployment_client, capsys, monkeypatch):
    from distributed import LocalCluster

    from daskdeploy.adoption import adopting

    monkeypatch.setattr(deployment_client.deployment.running, "scalable", False)
    with adopting(deployment_client.deployment):
        cluster = LocalCluster()
        cluster.scale(8)
        cluster.adapt(minimum=1, maximum=4)
        cluster.wait_for_workers(5)  # returns at once instead of waiting out a timeout
    err = capsys.readouterr().err
    assert (
        "the script's cluster.scale(8) is not applied: this deployment (local, 2 workers x "
        "1 thread) has a fixed set of workers" in err
    )
    assert "cluster.adapt(minimum=1, maximum=4) is not applied" in err
    assert "the script waits for 5 workers; this deployment has a fixed 2" in err
    assert len(deployment_client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_scheduler_info_counts_every_worker_while_the_client_polls(deployment_client):
    """``len(client.scheduler_info()["workers"])`` is the worker count, every time.

    distributed's synchronous ``scheduler_info()`` fetches, then returns its cached copy,
    which the client's background poll (asking for no workers) can overwrite in between:
    on a busy CI machine a plain script under ``daskdeploy run`` counted 0 workers. A
    poll every millisecond makes that race likely; the deployment's own clients and the
    ones a script makes for itself return what they fetched.
    """
    import dask
    from distributed import Client

    from daskdeploy.adoption import adopting
    from daskdeploy.deployment import DeployedClient

    deployment = deployment_client.deployment
    expected = len(deployment_client.nthreads())  # straight from the scheduler
    assert expected == deployment.running.expected_workers == 2

    def wrong_counts(client: Client) -> int:
        return sum(len(client.scheduler_info()["workers"]) != expected for _ in range(300))

    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}):
        joined = DeployedClient.for_deployment(deployment, owner=False)
        try:
            assert wrong_counts(joined) == 0
        finally:
            joined.close()
        with adopting(deployment), Client() as scripts_own:
            assert wrong_counts(scripts_own) == 0


def test_outside_daskdeploy_run_nothing_is_adopted():
    code = (
        "from distributed import LocalCluster\n"
        "with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c:\n"
        "    print(type(c).__name__)\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", "import daskdeploy\n" + code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "LocalCluster", result.stderr


def test_asynchronous_clients_are_adopted_too(deployment_client):
    import asyncio

    from distributed import Client, LocalCluster

    from daskdeploy.adoption import adopting

    async def script() -> tuple[int, int]:
        async with Client(asynchronous=True) as bare:
            first = await bare.submit(sum, [1, 2])
        async with (
            LocalCluster(asynchronous=True) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            second = await client.submit(sum, [3, 4])
        return first, second

    with adopting(deployment_client.deployment):
        assert asyncio.run(script()) == (3, 7)


def test_scale_resizes_a_scalable_deployment(deployment_client, capsys):
    from distributed import LocalCluster

    from daskdeploy.adoption import adopting

    def workers() -> int:
        return len(deployment_client.scheduler_info(n_workers=-1)["workers"])

    with adopting(deployment_client.deployment):
        cluster = LocalCluster(processes=3)
        cluster.scale(3)
        cluster.wait_for_workers(3, timeout=60)
        assert workers() == 3
        cluster.scale(jobs=1)  # one job of the script's processes=3 workers
        cluster.scale(2)
    deployment_client.wait_for_workers(2)
    err = capsys.readouterr().err
    assert "the script's cluster.scale(3) resizes this deployment (local)" in err
    assert "the script's cluster.scale(jobs=1) resizes this deployment (local)" in err


# -- the script's cluster keywords: what daskdeploy run does with them -------------------------

OLD_JOBQUEUE = """\
from dask_jobqueue import SLURMCluster
from dask.distributed import Client

cluster = SLURMCluster(
    cores=4, processes=2, memory="8GB", walltime="01:00:00", queue="debug",
    project="proj1", job_extra=["--gres=gpu:1"], header_skip=["--mem"],
    env_extra=["module load cuda"], extra=["--resources", "GPU=1"],
    interface="lo", local_directory="/tmp/node-scratch", log_directory="logs",
    scheduler_options={"dashboard_address": ":0"},
)
cluster.scale(jobs=2)
client = Client(cluster)
client.wait_for_workers(2)
print("workers", len(client.scheduler_info()["workers"]))
print("answer", client.submit(sum, [20, 22]).result())
"""


def test_a_jobqueue_scripts_job_keywords_are_named_with_the_options_that_give_them(slurm, sandbox):
    script = sandbox.script("old_jobqueue.py", OLD_JOBQUEUE)
    result = sandbox.run(sandbox.command("run", "--backend", "slurm", "-n", "1", str(script)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "answer 42" in output, output
    # scale(jobs=2): two of the deployment's jobs, each of its one process.
    assert "workers 2" in output, output
    line = next(line for line in output.splitlines() if "not applied" in line)
    assert line == (
        "daskdeploy: not applied: the script's cores=4, processes=2, memory='8GB', "
        "walltime='01:00:00', queue='debug', project='proj1', job_extra=['--gres=gpu:1'], "
        "header_skip=['--mem'], env_extra=['module load cuda'], "
        "extra=['--resources', 'GPU=1'], interface='lo', "
        "local_directory='/tmp/node-scratch', log_directory='logs'; this deployment's "
        "workers were set by the command line. For them, run with -o cores=4 "
        "-o processes=2 -o memory=8GB -o walltime=01:00:00 -o partition=debug "
        "-o account=proj1 -o 'job_extra_directives=[--gres=gpu:1]' "
        "-o 'job_directives_skip=[--mem]' -o 'job_script_prologue=[module load cuda]' "
        "-o 'worker_extra_args=[--resources,GPU=1]' -o interface=lo "
        "-o local_directory=/tmp/node-scratch -o log_directory=logs."
    ), line
    assert not slurm.jobs()
    sandbox.assert_clean()


@pytest.mark.parametrize(
    ("cluster", "backend", "wishes", "options", "expected"),
    [
        # SGE keeps dask-jobqueue's names: queue, project, resource_spec.
        (
            "SGECluster",
            "sge",
            {"queue": "all.q", "project": "p1", "resource_spec": "h_vmem=4G", "cores": 1},
            {"queue": None, "project": None, "resource_spec": None, "cores": 1},
            [
                ("queue='all.q'", "queue=all.q"),
                ("project='p1'", "project=p1"),
                ("resource_spec='h_vmem=4G'", "resource_spec=h_vmem=4G"),
            ],
        ),
        # Elsewhere project is the old name of account, and queue may be a partition.
        (
            "SLURMCluster",
            "slurm",
            {"queue": "gpu", "project": "p1"},
            {"partition": None, "account": None},
            [("queue='gpu'", "partition=gpu"), ("project='p1'", "account=p1")],
        ),
        (
            "PBSCluster",
            "pbs",
            {"queue": "workq", "project": "p1"},
            {"queue": None, "account": None},
            [("queue='workq'", "queue=workq"), ("project='p1'", "account=p1")],
        ),
        # LocalCluster's processes=True is not a number of processes per job.
        (
            "LocalCluster",
            "slurm",
            {"n_workers": 4, "processes": True, "memory_limit": "2GB"},
            {"workers": 2, "processes": 1, "memory_per_worker": "1GiB"},
            [("n_workers=4", "workers=4"), ("memory_limit='2GB'", "memory_per_worker=2GB")],
        ),
        # What the deployment already has, and keywords without an option, are not named.
        (
            "Client",
            "local",
            {"n_workers": 2, "threads_per_worker": 1, "silence_logs": 40},
            {"workers": 2, "threads_per_worker": 1, "processes": True},
            [],
        ),
        (
            "SSHCluster",
            "ssh",
            {"hosts": ["a", "b"], "remote_python": "/opt/py/bin/python"},
            {"hosts": ["a", "b"], "remote_python": None},
            [("remote_python='/opt/py/bin/python'", "remote_python=/opt/py/bin/python")],
        ),
    ],
)
def test_not_applied_maps_keywords_to_the_backends_options(
    cluster, backend, wishes, options, expected
):
    from daskdeploy.adoption.cluster import how_to_apply, not_applied

    assert not_applied(cluster, wishes, backend, options) == expected
    if cluster == "LocalCluster":
        assert how_to_apply(expected) == "--workers 4 -o memory_per_worker=2GB"
