"""The allocation backend inside real sbatch/salloc jobs on the local SLURM cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import daskdeploy
from conftest import (
    EXAMPLES,
    REPO,
    example_argv,
    report_figures,
    submit_batch_job,
)
from conftest import run_batch_job as sbatch
from reference_answers import check_answer, check_calc_mean, check_pi

PYTHON = sys.executable


EXAMPLE_LAUNCHERS = {
    # launcher x backend choice: auto-detection and the explicit name, script and CLI
    "python-auto": ("python", "auto"),
    "run-allocation": ("daskdeploy-run", "allocation"),
}


@pytest.mark.parametrize(
    ("name", "how"),
    # every example once, every launcher twice: the launch does not depend on the example
    [
        ("pi", "run-allocation"),
        ("calc_mean", "python-auto"),
        ("wiki_bag", "run-allocation"),
        ("airline", "python-auto"),
    ],
)
def test_examples_run_unchanged_across_nodes(slurm, sandbox, airline_dir, wiki_dir, name, how):
    launcher, backend = EXAMPLE_LAUNCHERS[how]
    argv = example_argv(name, wiki_dir, airline_dir)
    script = [str(EXAMPLES / f"{name}.py"), *argv]
    if launcher == "python":
        prefix = "" if backend == "auto" else f"DASKDEPLOY_BACKEND={backend} "
        command = prefix + " ".join([PYTHON, *script])
    else:
        choice = [] if backend == "auto" else ["--backend", backend]
        command = " ".join([PYTHON, "-m", "daskdeploy", "run", "--report", *choice, *script])
    status, log = sbatch(sandbox, slurm, command, "-N", "2", "-n", "3", "--mem-per-cpu=1500")
    assert status == 0, log
    check_answer(name, log, argv)
    assert "on allocation: 3 workers" in log, log
    if launcher != "python":
        assert report_figures(log)["workers"].startswith("3 x 1 thread")
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


PROBE_WORKERS = """\
import sys
import daskdeploy

def worker_start():
    import os, psutil
    me = psutil.Process()  # forked: the nanny's own command line, not multiprocessing's
    return me.cmdline() == me.parent().cmdline(), os.environ.get('OMP_NUM_THREADS')

def show(label, **options):
    with daskdeploy.deploy('allocation', **options) as client:
        info = client.scheduler_info(n_workers=-1)['workers'].values()
        print(label, 'threads', sorted(w['nthreads'] for w in info))
        print(label, 'memory', sorted(w['memory_limit'] for w in info))
        if label == 'default':
            lifetimes = client.run(lambda dask_worker: dask_worker.lifetime).values()
            print('lifetimes', sorted(lifetimes))
            print('started', sorted(set(map(str, client.run(worker_start).values()))))
        sys.stderr.flush()

show('default')
show('explicit', threads_per_worker=2)
show('capped', workers=3)
"""


def test_workers_take_processes_memory_and_lifetime_from_the_job(slurm, sandbox):
    """-c 2: two single-threaded worker processes per task, sharing the task's memory;
    threads_per_worker=2 gives one worker of 2 threads per task; workers=3 fills the
    first task and half the second (the shell's --nworkers arithmetic)."""
    script = sandbox.script("probe_resources.py", PROBE_WORKERS)
    dry_run = f"{PYTHON} -m daskdeploy run --backend allocation --dry-run {script}"
    command = f"{dry_run} && {PYTHON} {script}"
    status, log = sbatch(
        sandbox, slurm, command, "-N", "2", "-n", "2", "-c", "2", "--mem-per-cpu=300"
    )
    assert status == 0, log
    assert (
        "4 worker(s) x 1 thread(s), memory 300.00 MiB each, up to 2 per task in 2 task(s) "
        "(2 CPUs per SLURM task: one single-threaded worker process per CPU" in log
    ), log
    mib = 2**20
    assert "default threads [1, 1, 1, 1]" in log, log
    assert f"default memory {[300 * mib] * 4}" in log, log  # 2 x 300 MiB per task, split
    assert (
        "on allocation: 4 workers x 1 thread (2 CPUs per SLURM task: one single-threaded "
        "worker process per CPU; set threads_per_worker for threads)" in log
    ), log
    assert "explicit threads [2, 2]" in log, log
    assert f"explicit memory {[600 * mib] * 2}" in log, log
    assert (
        "on allocation: 2 workers x 2 threads (2 CPUs per SLURM task, threads_per_worker=2" in log
    )
    assert "capped threads [1, 1, 1]" in log, log
    assert "on allocation: 3 workers x 1 thread (" in log, log
    # Every worker was forked by its nanny, with distributed's start-up variables set.
    assert """started ["(True, '1')"]""" in log, log
    lifetimes = eval(log.split("lifetimes ", 1)[1].splitlines()[0])  # list of floats
    # 10-minute job: retire after 9 min +/- 15 s, leaving a minute's margin
    assert all(500 <= life <= 560 for life in lifetimes), lifetimes
    sandbox.assert_clean()


def test_single_task_allocation_works(slurm, sandbox):
    command = f"{PYTHON} -m daskdeploy run {EXAMPLES / 'pi.py'} --samples 200000"
    status, log = sbatch(sandbox, slurm, command, "-n", "1")
    assert status == 0, log
    assert "on allocation: 1 worker " in log, log
    check_pi(log, ["--samples", "200000"])
    sandbox.assert_clean()


def test_failing_script_fails_the_job_and_leaves_nothing(slurm, sandbox):
    script = sandbox.script(
        "fails.py",
        "import daskdeploy\n"
        "client = daskdeploy.deploy()\n"
        "assert client.submit(sum, [1, 2]).result() == 3\n"
        "raise SystemExit(7)\n",
    )
    status, log = sbatch(sandbox, slurm, f"{PYTHON} {script}", "-n", "2")
    assert status == 7, log
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


@pytest.mark.fault("job cancelled mid-run", "allocation")
def test_cancelled_job_leaves_nothing(slurm, sandbox, record_fault):
    """scancel of the job you hold ends the run; nothing is left (no replacement)."""
    script = sandbox.script(
        "slow.py",
        "import time, daskdeploy\n"
        "client = daskdeploy.deploy('allocation')\n"
        "print('READY', flush=True)\n"
        "time.sleep(300)\n",
    )
    job_id, output = submit_batch_job(sandbox, f"{PYTHON} {script}", "-n", "2")
    deadline = time.monotonic() + 60
    while "READY" not in (output.read_text() if output.exists() else ""):
        assert time.monotonic() < deadline, output.read_text() if output.exists() else "no output"
        time.sleep(0.2)
    cancelled = time.monotonic()
    slurm.run("scancel", job_id)
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean(timeout=15)
    record_fault(time.monotonic() - cancelled, "whole job: to nothing left")
    assert time.monotonic() - cancelled < 30


def test_salloc_shell_runs_an_example(slurm, sandbox):
    argv = ["--replicates", "20", "--n", "500"]
    script = str(EXAMPLES / "calc_mean.py")
    result = subprocess.run(
        ["salloc", "-N", "2", "-n", "2", "-t", "00:05:00", PYTHON, script, *argv],
        cwd=sandbox.root,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    check_calc_mean(result.stdout, argv)
    assert "on allocation: 2 workers" in result.stderr
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_too_many_workers_is_refused_before_anything_starts(slurm, sandbox):
    status, log = sbatch(
        sandbox, slurm, f"{PYTHON} -m daskdeploy run --backend allocation -n 5 x.py", "-n", "2"
    )
    assert status == 2, log  # x.py is missing: a usage error, before anything starts
    sandbox.script("ok.py", "print('never')\n")
    status, log = sbatch(
        sandbox,
        slurm,
        f"{PYTHON} -m daskdeploy run --backend allocation -n 5 ok.py",
        "-n",
        "2",
    )
    assert status == 2, log
    assert "workers=5 but SLURM job" in log and "has 2 task(s)" in log, log
    assert "never" not in log
    sandbox.assert_clean()


def test_outside_an_allocation_the_backend_says_where_to_use_it(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    status = daskdeploy.available_backends()["allocation"]
    assert not status and "SLURM_JOB_ID" in status.reason
    with pytest.raises(daskdeploy.BackendUnavailableError, match="sbatch"):
        daskdeploy.deploy("allocation", quiet=True)
    assert daskdeploy.plan().backend.name == "local"  # auto does not pick it


def test_workers_count_worker_processes_and_no_nanny_means_threads(monkeypatch):
    """-n 2 -c 2: room for 4 single-threaded workers; without a nanny, dask worker runs one
    process per task, so it gets the task's 2 CPUs as threads (and says so)."""
    job = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_CPUS_PER_TASK": "2"}
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    for name in ("SLURM_STEP_ID", "SLURM_PROCID", "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    daskdeploy.plan("allocation", workers=4)
    with pytest.raises(daskdeploy.OptionError, match=r"has 2 task\(s\) of 2 CPUs, which run at"):
        daskdeploy.plan("allocation", workers=5)
    without_nanny = daskdeploy.plan("allocation", nanny=False).describe()
    assert "2 worker(s) x 2 thread(s)" in without_nanny, without_nanny
    assert "nanny=false, which runs one worker process per task" in without_nanny


RUNNER_SCRIPT = """\
import os, sys
import daskdeploy
rank = os.environ["SLURM_PROCID"]
with daskdeploy.deploy() as client:
    info = client.scheduler_info(n_workers=-1)["workers"].values()
    print(f"client on task {rank} with {len(info)} workers: {client.submit(sum, [1, 2]).result()}")
    print("threads", sorted(worker["nthreads"] for worker in info))
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


@pytest.mark.parametrize(
    ("tasks", "cpus", "threads", "client_task", "workers"),
    [
        (4, 1, None, 1, [1, 1]),
        (2, 1, None, 0, [1]),
        (1, 1, None, 0, [1]),
        (3, 2, None, 1, [1, 1]),  # one worker task: 2 worker processes under nannies
        (2, 2, 2, 0, [2]),  # threads_per_worker set: one worker of 2 threads per task
    ],
)
def test_runner_mode_every_task_runs_the_script(
    slurm, sandbox, tasks, cpus, threads, client_task, workers
):
    """srun -n N python script.py: one task runs the script with a client, the rest serve."""
    script = sandbox.script("runner.py", RUNNER_SCRIPT)
    nodes = ["-N", "2"] if tasks > 1 else []
    env = dict(sandbox.env)
    if threads is not None:
        env["DASK_DASKDEPLOY__ALLOCATION__THREADS_PER_WORKER"] = str(threads)
    resources = [*nodes, "-n", str(tasks), "-c", str(cpus), "-t", "00:05:00"]
    result = subprocess.run(
        ["srun", *resources, PYTHON, str(script), "5"],
        cwd=sandbox.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert out.count("client on task") == 1, (out, result.stderr)
    assert f"client on task {client_task} with {len(workers)} workers: 3" in out
    assert f"threads {workers}" in out, out
    if cpus > 1:
        why = "one single-threaded worker process per CPU" if threads is None else "set: one"
        assert f"(2 CPUs per SLURM task{':' if threads is None else ','} " in result.stderr
        assert why in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 5, result.stderr  # the script's own status
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_runner_mode_runs_an_example_in_a_batch_job(slurm, sandbox):
    argv = ["--samples", "2000000", "--chunk", "250000"]
    command = f"srun {PYTHON} {EXAMPLES / 'pi.py'} {' '.join(argv)}"
    status, log = sbatch(sandbox, slurm, command, "-N", "2", "-n", "4")
    assert status == 0, log
    check_pi(log, argv)  # printed once: by the client's task only
    sandbox.assert_clean()


def test_runner_mode_script_failing_before_deploy_ends_every_task(slurm, sandbox):
    script = sandbox.script(
        "early.py",
        "import os, daskdeploy\n"
        "if os.environ['SLURM_PROCID'] == '1':\n"
        "    raise SystemExit(9)  # the client's task dies before deploy()\n"
        "daskdeploy.deploy(timeout=5)\n",
    )
    started = time.monotonic()
    result = subprocess.run(
        ["srun", "-n", "3", "-t", "00:05:00", PYTHON, str(script)],
        cwd=sandbox.root,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 9, result.stderr
    assert time.monotonic() - started < 30
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


@pytest.mark.parametrize("template", ["allocation.sbatch", "runner.sbatch"])
def test_sbatch_templates_run_the_main_job(slurm, sandbox, template):
    """The templates in examples/sbatch, submitted as users submit them, run pi."""
    path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"  # python/daskdeploy
    status, log = sbatch(
        sandbox,
        slurm,
        None,
        script=REPO / "examples" / "sbatch" / template,
        cwd=REPO,
        env={**sandbox.env, "PATH": path},
    )
    assert status == 0, log
    check_pi(log)  # once; the templates run `examples/pi.py` with its default arguments
    assert "done at" in log
    if template == "allocation.sbatch":
        assert report_figures(log)["workers"].startswith("4 x 1 thread")
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_hostfile_lists_the_jobs_nodes(slurm, sandbox):
    status, log = sbatch(
        sandbox, slurm, f"{PYTHON} -m daskdeploy hostfile hosts.txt; cat hosts.txt", "-N", "3"
    )
    assert status == 0, log
    assert log.split()[-3:] == ["n1", "n2", "n3"], log
    outside = sandbox.run(sandbox.command("hostfile"))
    assert outside.returncode == 2 and "Not inside a SLURM job" in outside.stderr
