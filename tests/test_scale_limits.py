"""Scale a site cannot take is split or refused before anything starts, on real systems.

A SLURM cluster of its own with ``MaxArraySize=4`` makes the site's array limit small:
6 workers then go as two job arrays (4 + 2 tasks), the dry run says so and tests both,
and more jobs than ``MaxJobCount`` are refused naming it. On the session's SGE cell,
``max_aj_tasks`` is lowered the same way for the dry run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import daskdeploy
from conftest import REPO, require_module, running_slurm
from reference_answers import check_pi

require_module("dask_jobqueue", extra="slurm")

ARRAY_LIMIT = 4


@pytest.fixture(scope="module")
def small_arrays() -> Iterator[object]:
    """A real SLURM cluster whose MaxArraySize is 4; SLURM_CONF points at it meanwhile."""
    with running_slurm(
        nodes=2, cpus_per_node=8, memory_mb=16000, settings={"MaxArraySize": ARRAY_LIMIT}
    ) as cluster:
        yield cluster


def test_workers_beyond_max_array_size_go_as_several_arrays(small_arrays):
    with daskdeploy.deploy("slurm", workers=6, quiet=True) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 6
        jobs = [job for job in small_arrays.jobs() if job["name"] == client.deployment.id]
        arrays = sorted({job["id"].split("_")[0] for job in jobs})
        assert len(jobs) == 6 and len(arrays) == 2, jobs
        tasks = sorted(job["id"].split("_")[1] for job in jobs)
        assert tasks == ["0", "0", "1", "1", "2", "3"]
    assert not small_arrays.jobs() or small_arrays.wait_for_no_jobs(timeout=30)


def test_dry_run_tests_each_array_it_will_submit(small_arrays, sandbox):
    script = sandbox.script("x.py", "print('never runs')\n")
    result = sandbox.run(
        sandbox.command("run", "--backend", "slurm", "-n", "6", "--dry-run", str(script))
    )
    assert result.returncode == 0, result.stderr
    assert "Check: accepted. 6 jobs go as 2 job arrays (4, 2 tasks): SLURM's " in result.stdout
    assert "MaxArraySize (4) limits each array." in result.stdout
    assert result.stdout.count("to start at") == 2, result.stdout  # one test per array
    assert not small_arrays.jobs()
    sandbox.assert_clean()


def test_pi_on_split_arrays_gives_the_exact_answer(small_arrays, sandbox):
    argv = ["--samples", "6000000", "--chunk", "1000000"]
    result = sandbox.run(
        sandbox.command("run", "--backend", "slurm", "-n", "6", str(REPO / "examples/pi.py"), *argv)
    )
    assert result.returncode == 0, result.stderr
    assert "6 workers x 1 thread" in result.stderr
    check_pi(result.stdout, argv)
    assert small_arrays.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_more_jobs_than_max_job_count_are_refused_at_once(small_arrays, sandbox):
    script = sandbox.script("x.py", "print('never runs')\n")
    started = time.monotonic()
    result = sandbox.run(sandbox.command("run", "--backend", "slurm", "-n", "100000", str(script)))
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "100000 workers need 100000 SLURM jobs" in result.stderr
    assert "MaxJobCount (10000)" in result.stderr and "Nothing was submitted" in result.stderr
    assert elapsed < 10, elapsed
    assert not small_arrays.jobs()
    sandbox.assert_clean()


def test_scale_beyond_max_job_count_is_refused_and_the_jobs_stay(small_arrays):
    with daskdeploy.deploy("slurm", workers=1, quiet=True) as client:
        started = time.monotonic()
        with pytest.raises(daskdeploy.DeploymentError, match=r"MaxJobCount \(10000\)"):
            client.cluster.scale(100000)
        with pytest.raises(daskdeploy.DeploymentError, match="100000 SLURM jobs"):
            client.cluster.adapt(minimum=1, maximum=100000)
        assert time.monotonic() - started < 1
        jobs = [job for job in small_arrays.jobs() if job["name"] == client.deployment.id]
        assert len(jobs) == 1, jobs
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert small_arrays.wait_for_no_jobs(timeout=30)


def test_sge_dry_run_splits_at_max_aj_tasks(sge, sandbox):
    require_module("dask_jobqueue", extra="sge")
    shown = sge.run("qconf", "-sconf").stdout
    path = sandbox.root / "global"  # qconf -Mconf names the configuration by the file
    path.write_text(
        "\n".join(
            "max_aj_tasks 4" if line.startswith("max_aj_tasks") else line
            for line in shown.splitlines()
        )
        + "\n"
    )
    changed = sge.run("qconf", "-Mconf", str(path))
    assert changed.returncode == 0, changed.stderr
    try:
        script = sandbox.script("x.py", "print('never runs')\n")
        result = sandbox.run(
            sandbox.command("run", "--backend", "sge", "-n", "6", "--dry-run", str(script))
        )
    finally:
        path.write_text(shown)
        sge.run("qconf", "-Mconf", str(path))
    assert result.returncode == 0, result.stderr
    assert "6 jobs go as 2 job arrays (4, 2 tasks): SGE's max_aj_tasks (4)" in result.stdout
    assert not sge.jobs()
