"""The sge backend against a real Grid Engine cell on localhost (see conftest.sge_cell).

The same checks as the slurm backend's, on Son of Grid Engine's ``qsub``/``qstat``/``qdel``:
the four examples unchanged, scale and adapt, job arrays, a refused submission, a job
deleted mid-run, SIGINT to ``daskdeploy run``. What SGE lists is read by the harness
(``qstat -xml``), independently of the backend's own parsing.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

import pytest
from distributed import Client

import daskdeploy
from conftest import (
    EXAMPLE_LAUNCHES,
    check_example_runs_unchanged,
    example_argv,
    require_module,
    wait_for,
)
from daskdeploy.backends.jobqueue.backend import default_log_root
from worker_facts import assert_workers_forked

require_module("dask_jobqueue", extra="sge")


def worker_count(client: Client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def own_jobs(sge, deployment_id: str) -> list[dict[str, str]]:
    return [job for job in sge.jobs() if job["name"] == deployment_id]


def test_deploy_scale_up_and_down_leaves_no_job(sge):
    with daskdeploy.deploy("sge", workers=2, quiet=True) as client:
        deployment_id = client.deployment.id
        assert worker_count(client) == 2

        # Workers now connect before qstat's state changes from "t" (transferring) to "r".
        def both_running() -> bool:
            jobs = own_jobs(sge, deployment_id)
            return len(jobs) == 2 and all(job["state"] == "r" for job in jobs)

        wait_for(both_running, 30, "both worker jobs running in qstat")
        assert client.submit(lambda x: x + 1, 41).result() == 42
        assert_workers_forked(client)
        log_dir = default_log_root("sge") / deployment_id
        assert log_dir.is_dir()
        # Workers spill into the job's own directory (in $TMP: Grid Engine removes it when
        # the job ends, even after the SIGKILL qdel sends), never into /tmp itself.
        spill = client.run(lambda dask_worker: dask_worker.local_directory).values()
        job_tmp = Path(sge.root) / "tmp"
        assert all(Path(path).is_relative_to(job_tmp) for path in spill), (spill, job_tmp)

        client.cluster.scale(4)
        client.wait_for_workers(4, timeout=60)
        assert len(own_jobs(sge, deployment_id)) == 4
        print("\nqstat while 4 workers run:\n" + sge.qstat_text())

        client.cluster.scale(1)
        wait_for(lambda: worker_count(client) == 1, 60, "scale down to 1 worker")
        wait_for(lambda: len(own_jobs(sge, deployment_id)) == 1, 30, "jobs deleted on scale down")
    assert not own_jobs(sge, deployment_id)
    assert not log_dir.exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"daskdeploy-{deployment_id}-*"))
    assert not list(Path("/tmp").glob(f"daskdeploy-{deployment_id}-*"))
    wait_for(lambda: not list(job_tmp.glob("*/daskdeploy-*")), 20, "the jobs' directories gone")


def test_adapt_grows_under_load_and_shrinks_when_idle(sge):
    with daskdeploy.deploy("sge", adapt=[1, 4], quiet=True) as client:
        deployment_id = client.deployment.id
        assert worker_count(client) == 1
        futures = client.map(time.sleep, [0.5] * 48, pure=False)
        wait_for(lambda: worker_count(client) >= 3, 90, "adaptive scale-up")
        client.gather(futures)
        del futures
        wait_for(lambda: worker_count(client) == 1, 90, "adaptive scale-down to the minimum")
        wait_for(lambda: len(own_jobs(sge, deployment_id)) == 1, 30, "idle jobs deleted")


def test_job_array_starts_all_workers_with_distinct_names(sge):
    with daskdeploy.deploy("sge", workers=4, processes=2, quiet=True) as client:
        names = sorted(w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
        assert len(names) == 4 and len(set(names)) == 4
        jobs = own_jobs(sge, client.deployment.id)
        assert sorted(job["id"].rpartition(".")[2] for job in jobs) == ["1", "2"], jobs
        assert len({job["id"].partition(".")[0] for job in jobs}) == 1, jobs  # one array
        assert client.submit(sum, range(10)).result() == 45


def test_unknown_queue_fails_fast_with_qsubs_reason(sge):
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError) as info:
        daskdeploy.deploy("sge", queue="nosuchqueue", quiet=True)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "SGE would reject the worker job script" in message
    assert "nosuchqueue" in message and "Nothing was submitted" in message
    assert "qconf -sql" in message
    assert not sge.jobs()


def test_missing_qsub_is_reported_before_anything_starts(sge, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    status = daskdeploy.available_backends()["sge"]
    assert not status and "qsub" in status.reason
    started = time.monotonic()
    with pytest.raises(daskdeploy.BackendUnavailableError, match="qsub") as info:
        daskdeploy.deploy("sge", quiet=True)
    assert time.monotonic() - started < 5
    assert "gridengine-client" in str(info.value)


def test_unreachable_qmaster_is_a_clear_error(sge, monkeypatch):
    monkeypatch.setenv("SGE_QMASTER_PORT", "1")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError, match="SGE is not usable from here") as info:
        daskdeploy.deploy("sge", quiet=True)
    assert time.monotonic() - started < 30
    assert "SGE_QMASTER_PORT" in str(info.value)


def test_dry_run_prints_the_job_script_and_the_verification(sge, sandbox):
    script = sandbox.script("noop.py", "print('never run')\n")
    result = sandbox.run(sandbox.command("run", "--backend", "sge", "--dry-run", str(script)))
    assert result.returncode == 0, result.stderr
    assert "#$ -l h_rt=00:30:00" in result.stdout
    assert "#$ -S /bin/bash" in result.stdout
    assert "found suitable queue" in result.stdout + result.stderr
    assert "never run" not in result.stdout
    assert not sge.jobs()
    sandbox.assert_clean()


@pytest.mark.parametrize(("name", "launcher"), EXAMPLE_LAUNCHES)
def test_examples_run_unchanged_on_sge(sge, sandbox, airline_dir, wiki_dir, name, launcher):
    argv = example_argv(name, wiki_dir, airline_dir)
    check_example_runs_unchanged("sge", name, launcher, sandbox, argv)
    assert not sge.jobs()


@pytest.mark.fault("job cancelled mid-run", "sge")
def test_qdel_of_a_worker_job_mid_run(sge, record_fault):
    # Defined here so it is pickled by value: the workers cannot import test modules.
    def _slow_square(x: int) -> int:
        time.sleep(0.2)
        return x * x

    with daskdeploy.deploy("sge", adapt=[2, 2], quiet=True) as client:
        deployment_id = client.deployment.id
        wait_for(lambda: worker_count(client) == 2, 60, "two workers")
        before = {job["id"] for job in own_jobs(sge, deployment_id)}
        squares = client.map(_slow_square, range(30), pure=False)
        total = client.submit(sum, squares)
        wait_for(lambda: sum(f.status == "finished" for f in squares) >= 4, 60, "progress")
        victim = sorted(before)[0]
        sge.run("qdel", victim)
        deleted = time.monotonic()
        assert total.result(timeout=120) == sum(i * i for i in range(30))
        right = time.monotonic() - deleted

        def replaced():
            running = {j["id"] for j in own_jobs(sge, deployment_id) if j["state"] == "r"}
            return victim not in running and len(running - before) == 1

        wait_for(replaced, 60, "a replacement job")
        wait_for(lambda: worker_count(client) == 2, 60, "its worker")
        replacement = time.monotonic() - deleted
    assert not own_jobs(sge, deployment_id)
    record_fault(right, "qdel to right result")
    record_fault(replacement, "qdel to replacement worker connected")


@pytest.mark.fault("SIGINT to daskdeploy run", "sge")
def test_sigint_to_daskdeploy_run_deletes_every_job(sge, sandbox, record_fault):
    script = sandbox.script(
        "slow.py",
        "import time\nimport dask\nprint('running', flush=True)\ntime.sleep(120)\n",
    )
    process = sandbox.popen(
        sandbox.command("run", "--backend", "sge", "--workers", "2", str(script))
    )
    assert process.stdout.readline().strip() == "running"
    assert len(sge.jobs()) == 2
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert not sge.jobs()
    sandbox.assert_clean()
    record_fault(time.monotonic() - sent, "idle workers: to no job and no process")
