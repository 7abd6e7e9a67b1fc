"""The local backend started for real: loopback, free ports, GIL defaults, clean close."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import dask
import dask.array as da
import psutil
import pytest
from distributed import Client, get_client

import daskdeploy


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _live(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_deploy_returns_a_real_client_with_process_workers():
    with daskdeploy.deploy("local", workers=2, quiet=True) as client:
        assert isinstance(client, Client)
        assert get_client() is client
        info = client.scheduler_info(n_workers=-1)
        assert len(info["workers"]) == 2
        assert {w["nthreads"] for w in info["workers"].values()} == {1}
        worker_pids = set(client.run(os.getpid).values())
        assert os.getpid() not in worker_pids
        assert da.ones((1000, 1000), chunks=100).sum().compute() == 1_000_000
        assert dask.compute(dask.delayed(sum)([1, 2, 3]))[0] == 6
    assert not _live(worker_pids)


def test_everything_listens_on_loopback_on_free_ports():
    with (
        daskdeploy.deploy("local", workers=1, quiet=True) as first,
        daskdeploy.deploy("local", workers=1, quiet=True) as second,
    ):
        for client in (first, second):
            assert urlparse(client.scheduler.address).hostname == "127.0.0.1"
            assert urlparse(client.deployment.dashboard_link).hostname == "127.0.0.1"
            assert client.dashboard_link == client.deployment.dashboard_link
            for worker in client.scheduler_info(n_workers=-1)["workers"]:
                assert urlparse(worker).hostname == "127.0.0.1"
        assert first.scheduler.address != second.scheduler.address
        assert first.deployment.dashboard_link != second.deployment.dashboard_link
        for port in (8786, 8787):
            assert f":{port}" not in first.scheduler.address + second.scheduler.address
        assert first.submit(sum, [1]).result() == 1
        assert second.submit(sum, [2]).result() == 2
        me = psutil.Process()
        # Python processes only: a session's test SLURM daemons are children of pytest too.
        dask_processes = [me] + [
            child for child in me.children(recursive=True) if "python" in child.name()
        ]
        listening = {
            conn.laddr.ip
            for process in dask_processes
            for conn in process.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert listening <= {"127.0.0.1"}, listening


def test_scratch_directory_is_private_and_removed_at_close():
    client = daskdeploy.deploy("local", workers=1, quiet=True)
    scratch = client.deployment.scratch_dir
    assert scratch.is_dir() and (scratch.stat().st_mode & 0o777) == 0o700
    worker_dirs = client.run(lambda dask_worker: dask_worker.local_directory)
    assert all(Path(d).is_relative_to(scratch) for d in worker_dirs.values())
    client.close()
    assert not scratch.exists()


def test_close_is_idempotent_and_stops_every_child():
    before = _children()
    client = daskdeploy.deploy("local", workers=2, quiet=True)
    started = _children() - before
    assert len(started) >= 2
    client.close()
    client.close()
    client.deployment.teardown()
    assert not _live(started - {p.pid for p in _resource_trackers()})


def _resource_trackers() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children()
        if "resource_tracker" in " ".join(child.cmdline())
    ]


def test_threads_mode_and_memory_limit():
    with daskdeploy.deploy(
        "local",
        workers=1,
        threads_per_worker=2,
        processes=False,
        memory_per_worker="1GiB",
        quiet=True,
    ) as client:
        (worker,) = client.scheduler_info(n_workers=-1)["workers"].values()
        assert worker["nthreads"] == 2
        assert worker["memory_limit"] == 2**30
        assert client.run(os.getpid) == {next(iter(client.run(os.getpid))): os.getpid()}
        assert urlparse(client.deployment.dashboard_link).hostname == "127.0.0.1"
        assert client.dashboard_link == client.deployment.dashboard_link


def test_default_is_one_single_threaded_process_per_core():
    from dask.system import CPU_COUNT

    plan = daskdeploy.plan("local")
    assert plan.options["threads_per_worker"] == 1 and plan.options["processes"] is True
    assert f"{CPU_COUNT} worker processes x 1 thread" in plan.describe()


def test_summary_line_names_backend_workers_and_dashboard(capsys):
    with daskdeploy.deploy("local", workers=1, dashboard=False) as client:
        assert client.deployment.dashboard_link is None
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"daskdeploy: {client.deployment.id} on local: 1 worker x 1 thread")
    with daskdeploy.deploy("local", workers=1, quiet=True):
        pass
    assert capsys.readouterr().err == ""


def test_without_dashboard_nothing_reaches_for_port_8787(recwarn):
    with (
        daskdeploy.deploy("local", workers=1, dashboard=False, quiet=True) as first,
        daskdeploy.deploy("local", workers=1, dashboard=False, quiet=True) as second,
    ):
        assert first.deployment.dashboard_link is None
        assert second.submit(sum, [1, 1]).result() == 2
    assert not [w for w in recwarn if "already in use" in str(w.message)]


def test_distributed_settings_in_a_config_block_before_first_deploy(sandbox):
    """A dask.config.set block entered before distributed is imported must not wipe it."""
    script = sandbox.script(
        "settings.py",
        "import sys, dask, daskdeploy\n"
        "assert 'distributed' not in sys.modules\n"
        "with dask.config.set({'distributed.scheduler.worker-saturation': 1.0}):\n"
        "    with daskdeploy.deploy(workers=1, quiet=True) as client:\n"
        "        assert client.submit(sum, [1]).result() == 1\n"
        "with daskdeploy.deploy(workers=1, quiet=True) as client:\n"
        "    print('SECOND', client.submit(sum, [2]).result())\n",
    )
    result = sandbox.run([sys.executable, str(script)])
    assert result.returncode == 0, result.stderr
    assert "SECOND 2" in result.stdout
    sandbox.assert_clean()


def test_dashboard_link_follows_the_distributed_dashboard_link_template(monkeypatch):
    """As behind JupyterHub's jupyter-server-proxy; an unset variable gives the plain link."""
    import dask

    monkeypatch.setenv("PROXY_PREFIX", "/user/alice/")
    template = "{PROXY_PREFIX}proxy/{port}/status"
    with (
        dask.config.set({"distributed.dashboard.link": template}),
        daskdeploy.deploy("local", workers=1, quiet=True) as client,
    ):
        port = client.scheduler_info()["services"]["dashboard"]
        assert client.dashboard_link == f"/user/alice/proxy/{port}/status"
    monkeypatch.delenv("PROXY_PREFIX")
    with (
        dask.config.set({"distributed.dashboard.link": template}),
        daskdeploy.deploy("local", workers=1, quiet=True) as client,
    ):
        port = client.scheduler_info()["services"]["dashboard"]
        assert client.dashboard_link == f"http://127.0.0.1:{port}/status"


def test_spill_left_by_a_killed_worker_is_removed_when_the_deployment_ends(tmp_path, monkeypatch):
    """A worker killed outright (SIGKILL at a job's end) cannot remove its spill directory."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    other = tmp_path / "daskdeploy-dd-00000000-Xy12Ab"  # another deployment's: kept
    other.mkdir()
    with daskdeploy.deploy("local", workers=1, quiet=True) as client:
        left = tmp_path / f"daskdeploy-{client.deployment.id}-Ab12Cd"
        (left / "worker-x").mkdir(parents=True)
    assert not left.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [other.name]


def test_workers_import_a_module_that_sits_next_to_the_script(sandbox, tmp_path):
    """As with `python analysis/script.py`, run from another directory."""
    project = sandbox.root / "analysis"
    project.mkdir()
    (project / "helpers.py").write_text("def square(x):\n    return x * x\n")
    (project / "script.py").write_text(
        "import dask\n"
        "from helpers import square\n"
        "import daskdeploy\n"
        "with daskdeploy.deploy() as client:\n"
        "    print('total', sum(dask.compute(*[dask.delayed(square)(i) for i in range(10)])))\n"
    )
    result = sandbox.run(sandbox.command("run", "-n", "2", "-q", "analysis/script.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"total {sum(i * i for i in range(10))}"]
    sandbox.assert_clean()


def test_scale_beyond_the_machine_is_refused_and_the_workers_stay():
    with daskdeploy.deploy("local", workers=1, quiet=True) as client:
        before = _children()
        started = time.monotonic()
        with pytest.raises(daskdeploy.OptionError, match="100000 local worker processes cannot"):
            client.cluster.scale(100000)
        with pytest.raises(daskdeploy.OptionError, match="cannot fit this machine"):
            client.cluster.adapt(minimum=1, maximum=100000)
        assert time.monotonic() - started < 1
        assert _children() == before
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 1
        assert client.submit(sum, [1, 2, 3]).result() == 6


def _profiling(dask_worker) -> tuple[bool, object]:
    return "profile" in dask_worker.periodic_callbacks, dask.config.get(
        "distributed.worker.profile.enabled"
    )


def test_workers_run_without_the_profiler_unless_the_user_configures_it(monkeypatch):
    # 10 ms stack samples take the GIL from the task: examples/pi.py ran 1.3x a Pool's time
    with daskdeploy.deploy("local", workers=1, quiet=True, dashboard=False) as client:
        assert list(client.run(_profiling).values()) == [(False, False)]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # ours untouched
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    with daskdeploy.deploy("local", workers=1, quiet=True, dashboard=False) as client:
        assert list(client.run(_profiling).values()) == [(True, True)]
