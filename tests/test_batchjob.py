"""The batchjob backend: Dask inside a Grid Engine job, for real (see conftest.sge_cell).

Scripts run as the command of ``qrsh -V -cwd -pe smp N``: an interactive job whose output
comes back to the test, with the test's environment (``-V``). Inside it, ``deploy()``
with no backend recognises the job and starts one worker per slot with ``qrsh -inherit``.
The host-file readers of the systems that cannot run here are checked on the formats
their manuals give.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import daskdeploy
from conftest import EXAMPLES, report_figures, wait_for
from daskdeploy.backends.jobqueue.system import JobAllocation
from reference_answers import check_answer, check_pi

PYTHON = sys.executable


def in_sge_job(slots: int) -> list[str]:
    """The command prefix that runs a program as an SGE job of ``slots`` slots."""
    return ["qrsh", "-V", "-cwd", "-now", "y", "-pe", "smp", str(slots)]


def run_in_job(sandbox, slots: int, *command: str, timeout: float = 180):
    return subprocess.run(
        [*in_sge_job(slots), *command],
        cwd=sandbox.root,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- host files and launchers, as each system's manual gives them ---------------------


def _allocation(system: str) -> JobAllocation:
    from daskdeploy.registry import get_backend

    allocation = get_backend(system).system.allocation
    assert allocation is not None
    return allocation


def test_sge_pe_hostfile_gives_slots_per_host(tmp_path):
    hostfile = tmp_path / "pe_hostfile"
    hostfile.write_text("node1 4 all.q@node1 UNDEFINED\nnode2 2 all.q@node2 UNDEFINED\n")
    environ = {"PE_HOSTFILE": str(hostfile), "NSLOTS": "6"}
    assert _allocation("sge").hosts(environ) == [("node1", 4), ("node2", 2)]


@pytest.mark.parametrize(
    ("system", "variable"),
    [("pbs", "PBS_NODEFILE"), ("lsf", "LSB_DJOB_HOSTFILE"), ("oar", "OAR_NODEFILE")],
)
def test_host_once_per_slot_files(tmp_path, system, variable):
    hostfile = tmp_path / "nodes"
    hostfile.write_text("n1\nn1\nn1\nn2\nn2\n")
    assert _allocation(system).hosts({variable: str(hostfile)}) == [("n1", 3), ("n2", 2)]


def test_a_job_without_host_file_has_its_slots_here():
    import socket

    assert _allocation("sge").hosts({"NSLOTS": "3"}) == [(socket.gethostname(), 3)]


def test_launchers_quote_for_the_remote_shell_or_pass_arguments():
    command = ["/opt/py env/bin/python", "-m", "distributed.cli.dask_worker", "tls://a:1"]
    assert _allocation("sge").launch("n1", command) == [
        "qrsh",
        "-inherit",
        "-nostdin",
        "n1",
        "'/opt/py env/bin/python' -m distributed.cli.dask_worker tls://a:1",
    ]
    assert _allocation("lsf").launch("n1", command) == ["blaunch", "n1", *command]


def test_outside_a_job_batchjob_says_why_it_cannot_run(monkeypatch):
    for name in ("SGE_JOB_SPOOL_DIR", "PBS_JOBID", "LSB_JOBID", "OAR_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    status = daskdeploy.available_backends()["batchjob"]
    assert not status
    assert "not inside a PBS, SGE, LSF or OAR job" in status.reason
    with pytest.raises(daskdeploy.BackendUnavailableError, match="daskdeploy jobscript"):
        daskdeploy.deploy("batchjob", quiet=True)


# --- real Grid Engine jobs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("pi", ["--samples", "2000000", "--chunk", "250000"]),
        ("calc_mean", ["--replicates", "20", "--n", "500"]),
    ],
)
def test_examples_run_unchanged_inside_an_sge_job(sge, sandbox, name, argv):
    result = run_in_job(
        sandbox,
        3,
        PYTHON,
        "-m",
        "daskdeploy",
        "run",
        "--report",
        str(EXAMPLES / f"{name}.py"),
        *argv,
    )
    assert result.returncode == 0, result.stderr
    check_answer(name, result.stdout, argv)
    assert "on batchjob: 3 workers x 1 thread" in result.stderr
    assert report_figures(result.stderr)["workers"].startswith("3 x 1 thread")
    assert sge.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_a_plain_deploy_in_a_job_uses_its_slots_and_honours_options(sge, sandbox):
    script = sandbox.script(
        "sizes.py",
        "import daskdeploy\n"
        "with daskdeploy.deploy(quiet=True) as client:\n"
        "    info = client.scheduler_info()['workers'].values()\n"
        "    print('all', client.deployment.backend, sorted(w['nthreads'] for w in info))\n"
        "    import os, psutil\n"
        "    def where():\n"
        "        names = {p.name() for p in psutil.Process().parents()}\n"
        "        return os.environ.get('JOB_ID'), 'sge_shepherd' in names\n"
        "    print('started by SGE', set(client.run(where).values()))\n"
        "with daskdeploy.deploy(workers=2, threads_per_worker=2, quiet=True) as client:\n"
        "    info = client.scheduler_info()['workers'].values()\n"
        "    print('some', sorted(w['nthreads'] for w in info))\n"
        "    print('sum', client.submit(sum, range(10)).result())\n",
    )
    result = run_in_job(sandbox, 4, PYTHON, str(script))
    assert result.returncode == 0, result.stderr
    assert "all batchjob [1, 1, 1, 1]" in result.stdout
    # Every worker is a task of the job (qrsh -inherit), under an SGE shepherd.
    (job_id,) = {line.split("'")[1] for line in result.stdout.splitlines() if "by SGE" in line}
    assert f"started by SGE {{('{job_id}', True)}}" in result.stdout, result.stdout
    assert "some [2, 2]" in result.stdout
    assert "sum 45" in result.stdout
    assert sge.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_more_workers_than_slots_is_refused_before_anything_starts(sge, sandbox):
    script = sandbox.script("never.py", "print('must not run')\n")
    result = run_in_job(
        sandbox, 2, PYTHON, "-m", "daskdeploy", "run", "--workers", "5", str(script)
    )
    assert result.returncode == 2, result.stderr
    assert "workers=5 but SGE job" in result.stderr and "at most 2 worker(s)" in result.stderr
    assert "must not run" not in result.stdout
    assert sge.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


@pytest.mark.fault("job cancelled mid-run", "batchjob")
def test_qdel_of_the_job_leaves_nothing(sge, sandbox, record_fault):
    script = sandbox.script(
        "slow.py",
        "import time, daskdeploy\n"
        "client = daskdeploy.deploy(quiet=True)\n"
        "print('READY', len(client.scheduler_info()['workers']), flush=True)\n"
        "time.sleep(300)\n",
    )
    process = subprocess.Popen(
        [*in_sge_job(2), PYTHON, str(script)],
        cwd=sandbox.root,
        env=sandbox.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "READY 2"
        (job,) = sge.jobs()
        deleted = time.monotonic()
        sge.run("qdel", job["id"])
        process.wait(timeout=60)
        assert sge.wait_for_no_jobs(timeout=30)
        sandbox.assert_clean(timeout=15)
        record_fault(time.monotonic() - deleted, "whole job: to nothing left")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_job_script_of_a_pe_job_runs_the_main_job(sge, sandbox, tmp_path):
    """A batch job (qsub, not qrsh) whose script is `daskdeploy run` with no backend."""
    output = tmp_path / "job.out"
    job_script = tmp_path / "job.sh"
    job_script.write_text(
        "#!/bin/bash\n"
        f"cd {sandbox.root}\n"
        f"{PYTHON} -m daskdeploy run {EXAMPLES / 'pi.py'} --samples 1000000 --chunk 250000\n"
    )
    result = subprocess.run(
        [
            "qsub",
            "-sync",
            "y",
            "-V",
            "-pe",
            "smp",
            "2",
            "-S",
            "/bin/bash",
            "-j",
            "y",
            "-o",
            str(output),
            str(job_script),
        ],
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    log = output.read_text() if output.exists() else ""
    assert result.returncode == 0, (result.stdout, result.stderr, log)
    check_pi(log, ["--samples", "1000000", "--chunk", "250000"])
    assert "on batchjob: 2 workers" in log, log
    wait_for(lambda: not sge.jobs(), 30, "the job to leave qstat")
    sandbox.assert_clean()
    assert os.path.exists(output)


def test_an_in_place_jobscript_runs_the_main_job_in_one_sge_job(sge, sandbox, tmp_path):
    """`daskdeploy jobscript --system sge --in-place` piped into qsub, as its help says."""
    written = subprocess.run(
        [
            *sandbox.command("jobscript", "--system", "sge", "--in-place", "-n", "3")[:],
            str(EXAMPLES / "pi.py"),
            "--samples",
            "1000000",
            "--chunk",
            "250000",
        ],
        env=sandbox.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    assert "#$ -pe smp 3" in written.stdout and "--backend batchjob" in written.stdout
    submitted = subprocess.run(
        ["qsub", "-sync", "y", "-V"],
        input=written.stdout,
        cwd=tmp_path,
        env=sandbox.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    (log,) = tmp_path.glob("dask-pi-*.out")
    text = log.read_text()
    assert submitted.returncode == 0, (submitted.stdout, submitted.stderr, text)
    check_pi(text, ["--samples", "1000000", "--chunk", "250000"])
    assert "on batchjob: 3 workers x 1 thread" in text, text
    wait_for(lambda: not sge.jobs(), 30, "the job to leave qstat")
    sandbox.assert_clean()
