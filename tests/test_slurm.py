"""The slurm backend against a real SLURM cluster on localhost (see conftest.slurm_cluster)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from distributed import Client, wait

import daskdeploy
from conftest import (
    EXAMPLE_LAUNCHES,
    REPO,
    check_example_runs_unchanged,
    example_argv,
    report_figures,
    require_module,
    run_batch_job,
    wait_for,
)
from daskdeploy.backends.jobqueue.backend import default_log_root
from reference_answers import check_pi
from worker_facts import assert_workers_forked

require_module("dask_jobqueue", extra="slurm")


def worker_count(client: Client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def own_jobs(slurm, client) -> list[dict[str, str]]:
    return [job for job in slurm.jobs() if job["name"] == client.deployment.id]


def test_deploy_scale_up_and_down_leaves_no_job(slurm):
    with daskdeploy.deploy("slurm", workers=2, quiet=True) as client:
        deployment_id = client.deployment.id
        assert worker_count(client) == 2
        jobs = own_jobs(slurm, client)
        assert [job["state"] for job in jobs] == ["RUNNING", "RUNNING"]
        assert all(job["comment"] == f"daskdeploy:{deployment_id}" for job in jobs)
        assert client.submit(lambda x: x + 1, 41).result() == 42
        assert_workers_forked(client)
        log_dir = default_log_root("slurm") / deployment_id
        assert log_dir.is_dir()

        client.cluster.scale(4)
        client.wait_for_workers(4, timeout=60)
        assert len(own_jobs(slurm, client)) == 4

        client.cluster.scale(1)
        wait_for(lambda: worker_count(client) == 1, 60, "scale down to 1 worker")
        wait_for(lambda: len(own_jobs(slurm, client)) == 1, 30, "jobs cancelled on scale down")
    assert not [job for job in slurm.jobs() if job["name"] == deployment_id]
    assert not log_dir.exists()


def test_adapt_grows_under_load_and_shrinks_when_idle(slurm):
    with daskdeploy.deploy("slurm", adapt=[1, 4], quiet=True) as client:
        assert worker_count(client) == 1
        futures = client.map(time.sleep, [0.5] * 48, pure=False)
        wait_for(lambda: worker_count(client) >= 3, 90, "adaptive scale-up")
        client.gather(futures)
        del futures
        wait_for(lambda: worker_count(client) == 1, 90, "adaptive scale-down to the minimum")
        wait_for(lambda: len(own_jobs(slurm, client)) == 1, 30, "idle jobs cancelled")


def test_job_array_starts_all_workers_with_distinct_names(slurm):
    with daskdeploy.deploy("slurm", workers=4, processes=2, quiet=True) as client:
        names = sorted(w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
        assert len(names) == 4 and len(set(names)) == 4
        jobs = own_jobs(slurm, client)
        assert len(jobs) == 2
        assert all("_" in job["id"] for job in jobs), jobs  # array tasks: <array id>_<index>


def test_exception_in_the_script_cancels_every_job(slurm, sandbox):
    script = sandbox.script(
        "fails.py",
        "import daskdeploy\n"
        "client = daskdeploy.deploy('slurm', workers=2)\n"
        "print('connected', len(client.scheduler_info()['workers']), flush=True)\n"
        "raise RuntimeError('the analysis failed')\n",
    )
    result = sandbox.run([sys.executable, str(script)])
    assert result.returncode == 1
    assert "connected 2" in result.stdout
    assert "RuntimeError: the analysis failed" in result.stderr
    assert not slurm.jobs()
    sandbox.assert_clean()


@pytest.mark.fault("SIGINT to daskdeploy run", "slurm")
def test_sigint_to_daskdeploy_run_cancels_every_job(slurm, sandbox, record_fault):
    script = sandbox.script(
        "slow.py",
        "import time\nimport dask\nprint('running', flush=True)\ntime.sleep(120)\n",
    )
    process = sandbox.popen(
        sandbox.command("run", "--backend", "slurm", "--workers", "2", str(script))
    )
    assert process.stdout.readline().strip() == "running"
    assert len(slurm.jobs()) == 2
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert not slurm.jobs()
    sandbox.assert_clean()
    record_fault(time.monotonic() - sent, "idle workers: to no job and no process")


def test_bad_partition_fails_fast_with_sbatch_reason(slurm):
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError) as info:
        daskdeploy.deploy("slurm", partition="nosuchpartition", quiet=True)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "invalid partition" in message.lower()
    assert "sinfo" in message and "Nothing was submitted" in message
    assert not slurm.jobs()


def test_impossible_memory_fails_fast(slurm):
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError, match="memory"):
        daskdeploy.deploy("slurm", memory="10TB", quiet=True)
    assert time.monotonic() - started < 10
    assert not slurm.jobs()


def test_missing_sbatch_is_reported_before_anything_starts(slurm, monkeypatch, tmp_path):
    with monkeypatch.context() as patch:
        patch.setenv("PATH", str(tmp_path))
        status = daskdeploy.available_backends()["slurm"]
        assert not status
        assert "sbatch" in status.reason
        with pytest.raises(daskdeploy.BackendUnavailableError, match="sbatch"):
            daskdeploy.deploy("slurm", quiet=True)


def test_unreachable_controller_is_a_clear_error(slurm, monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError, match="SLURM_CONF"):
        daskdeploy.deploy("slurm", quiet=True)
    assert time.monotonic() - started < 5


def test_workers_that_cannot_start_are_explained(slurm):
    with pytest.raises(daskdeploy.DeploymentError) as info:
        daskdeploy.deploy("slurm", python="/nonexistent/python", timeout=60, quiet=True)
    message = str(info.value)
    assert "ended before their workers connected" in message
    assert "/nonexistent/python" in message  # the job's own output explains it
    assert not slurm.jobs()


def test_pending_jobs_are_named_with_slurms_reason(slurm):
    # 3 nodes x 8 CPUs: a 16-core job can never start; the wait times out with the reason.
    with pytest.raises(daskdeploy.DeploymentError) as info:
        daskdeploy.deploy("slurm", cores=8, workers=4, timeout=4, quiet=True)
    message = str(info.value)
    assert "PENDING" in message and "(Resources)" in message
    assert not slurm.jobs()


def test_dry_run_prints_the_job_script_and_sbatch_verdict(slurm, sandbox):
    result = sandbox.run(
        sandbox.command("run", "--backend", "slurm", "-n", "3", "--dry-run", "x.py")
    )
    assert result.returncode == 2  # x.py does not exist
    script = sandbox.script("x.py", "print('never runs')\n")
    result = sandbox.run(
        sandbox.command("run", "--backend", "slurm", "-n", "3", "--dry-run", str(script))
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --cpus-per-task=1" in result.stdout
    assert "Check: accepted" in result.stdout and "to start at" in result.stdout
    assert "never runs" not in result.stdout
    rejected = sandbox.run(
        sandbox.command(
            "run", "--backend", "slurm", "--option", "partition=nope", "--dry-run", str(script)
        )
    )
    assert rejected.returncode == 1
    assert "Check: REJECTED" in rejected.stdout
    assert "invalid partition" in rejected.stderr.lower()
    assert not slurm.jobs()
    sandbox.assert_clean()


@pytest.mark.parametrize(("name", "launcher"), EXAMPLE_LAUNCHES)
def test_examples_run_unchanged_on_slurm(slurm, sandbox, airline_dir, wiki_dir, name, launcher):
    argv = example_argv(name, wiki_dir, airline_dir)
    check_example_runs_unchanged("slurm", name, launcher, sandbox, argv)
    assert not slurm.jobs()


def test_user_log_directory_is_kept(slurm, tmp_path):
    logs = tmp_path / "logs"
    with daskdeploy.deploy("slurm", workers=1, log_directory=str(logs), quiet=True) as client:
        deployment_id = client.deployment.id
    files = list(logs.glob(f"{deployment_id}-*.out"))
    assert len(files) == 1, list(logs.iterdir())


def test_worker_scratch_is_removed_when_the_job_ends(slurm, monkeypatch, tmp_path):
    """Removed both when the deployment closes and when the job is cancelled (SIGTERM)."""
    node_tmp = tmp_path / "node-tmp"
    node_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(node_tmp))  # exported to the jobs by sbatch
    with daskdeploy.deploy("slurm", workers=2, quiet=True) as client:
        directories = client.run(lambda dask_worker: dask_worker.local_directory).values()
        assert len(directories) == 2
        assert all(Path(path).is_relative_to(node_tmp) for path in directories)
        scratch = {path.name for path in node_tmp.iterdir()}
        assert len(scratch) == 2, scratch
        victim = own_jobs(slurm, client)[0]["id"]
        slurm.run("scancel", victim)  # bash gets SIGTERM: its EXIT trap alone would not run
        wait_for(lambda: len(list(node_tmp.iterdir())) == 1, 30, "the cancelled job's scratch")
    wait_for(lambda: not any(node_tmp.iterdir()), 20, "the worker's scratch to be removed")
    assert os.listdir(node_tmp) == []


def test_fixed_size_cluster_replaces_retired_workers(slurm):
    with daskdeploy.deploy("slurm", workers=2, lifetime="4s", quiet=True) as client:
        first = set(client.run(lambda: 1))
        wait_for(lambda: len(set(client.run(lambda: 1)) - first) >= 2, 60, "replacements")
        assert client.submit(lambda: 42).result(timeout=30) == 42
        assert len(own_jobs(slurm, client)) == 2


@pytest.mark.fault("walltime expiry mid-run", "slurm")
def test_retiring_workers_are_replaced_without_losing_tasks(slurm):
    # Defined here so it is pickled by value: SLURM workers cannot import test modules.
    def _slow_identity(index: int) -> tuple[int, str]:
        from distributed import get_worker

        time.sleep(0.3)
        return index, get_worker().name

    with daskdeploy.deploy("slurm", adapt=[2, 3], lifetime="6s", quiet=True) as client:
        futures = client.map(_slow_identity, range(60), pure=False)
        wait(futures, timeout=120)
        results = client.gather(futures)
    assert [index for index, _ in results] == list(range(60))
    workers = {name for _, name in results}
    assert len(workers) > 2, f"no worker retired and was replaced: {workers}"


def test_driver_job_template_runs_the_main_job(slurm, sandbox):
    """examples/sbatch/driver.sbatch, submitted as users submit it, runs pi and cleans up."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    status, log = run_batch_job(
        sandbox,
        slurm,
        None,
        script=REPO / "examples" / "sbatch" / "driver.sbatch",
        cwd=REPO,
        env={**sandbox.env, "PATH": path},
        timeout=240,
    )
    assert status == 0, log
    check_pi(log)  # the template's `examples/pi.py`: its default arguments
    assert "on slurm: 8 workers" in log and "Driver job done" in log
    assert report_figures(log)["workers"].startswith("8 x 1 thread")
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()
