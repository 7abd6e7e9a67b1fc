"""Workers forked from a parent that has distributed loaded, with everything a nanny gives.

``daskdeploy.backends.shared.worker_processes`` is how every backend starts worker
processes: a nanny of its own process forks its worker; nannies in a process that runs
other things (the local backend) share one forkserver. These tests start real nannies and
workers and check what a spawned worker would give still holds: a worker killed by
``SIGTERM`` or ``SIGKILL`` is restarted, the memory limit is enforced, the start-up
variables reach the worker, nothing is left after close.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

import daskdeploy
from daskdeploy.backends.shared import worker_processes

pytestmark = pytest.mark.timeout(120)


def _wait(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _worker_children(nanny: psutil.Process) -> list[psutil.Process]:
    """The nanny's worker processes (not multiprocessing's resource tracker)."""
    return [
        child for child in nanny.children() if "resource_tracker" not in " ".join(child.cmdline())
    ]


@pytest.fixture
def scheduler_address():
    """A real scheduler in a thread of this process, on loopback."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield cluster.scheduler_address, client


def _start_nanny(address: str, *extra: str) -> subprocess.Popen:
    command = worker_processes.worker_command(sys.executable, nanny=True)
    # `env NAME=VALUE ... python -m distributed.cli.dask_worker --nanny --preload-nanny ...`
    assert command[0] == "env"
    return subprocess.Popen(
        [*command, address, "--nthreads", "1", "--no-dashboard", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        return process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1]


def test_the_nanny_forks_its_worker_and_restarts_it_after_sigterm_and_sigkill(
    scheduler_address,
):
    address, client = scheduler_address
    process = _start_nanny(address)
    try:
        client.wait_for_workers(1, timeout=60)
        nanny = psutil.Process(process.pid)
        (worker,) = _worker_children(nanny)
        # Forked, not spawned: the worker runs the nanny's own command line, not
        # multiprocessing's `-c from multiprocessing.spawn import spawn_main`.
        assert worker.cmdline() == nanny.cmdline()
        # What distributed sets before spawning (pre-spawn-environ) reached the worker
        # from the start, as the BLAS libraries need.
        expected = worker_processes.environment()
        assert expected, "distributed's pre-spawn-environ should not be empty"
        environment = worker.environ()
        assert {name: environment.get(name) for name in expected} == expected
        assert client.submit(lambda x: x + 1, 41, pure=False).result(timeout=30) == 42

        for signal_name in ("terminate", "kill"):  # SIGTERM, then SIGKILL
            old_address = next(iter(client.scheduler_info()["workers"]))
            getattr(worker, signal_name)()
            assert psutil.wait_procs([worker], timeout=10)[0], f"worker ignored {signal_name}"

            def replaced(old=old_address, dead=worker) -> bool:
                workers = client.scheduler_info()["workers"]
                children = _worker_children(nanny)
                return bool(workers) and old not in workers and dead not in children

            _wait(replaced, what=f"a new worker after {signal_name}")
            (worker,) = _worker_children(nanny)
            assert worker.cmdline() == nanny.cmdline()
            assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=30) == 6
    finally:
        errors = _stop(process)
    assert process.returncode == 0, errors[-3000:]
    assert "Traceback" not in errors, errors[-3000:]


def test_the_nanny_still_enforces_the_memory_limit(scheduler_address):
    address, client = scheduler_address
    process = _start_nanny(address, "--memory-limit", "400MB")
    try:
        client.wait_for_workers(1, timeout=60)
        nanny = psutil.Process(process.pid)
        (worker,) = _worker_children(nanny)

        def hog() -> None:  # holds ~600 MB, over the 95% the nanny allows, then waits
            import time

            block = bytearray(600 * 2**20)
            for start in range(0, len(block), 4096):
                block[start] = 1
            time.sleep(60)

        future = client.submit(hog, pure=False)
        assert psutil.wait_procs([worker], timeout=30)[0], "the nanny did not kill the worker"
        _wait(lambda: bool(_worker_children(nanny)) and worker not in _worker_children(nanny))
        client.wait_for_workers(1, timeout=60)
        future.cancel()
        assert client.submit(sum, [4, 5], pure=False).result(timeout=30) == 9
    finally:
        errors = _stop(process)
    assert "exceeded 95% memory budget" in errors, errors[-3000:]


def _forkservers(process: psutil.Process) -> list[psutil.Process]:
    """The forkservers started by ``process`` (its workers, forked, share their command line)."""
    return [
        child
        for child in process.children()
        if "multiprocessing.forkserver" in " ".join(child.cmdline())
    ]


def test_local_workers_are_forked_from_one_forkserver_that_close_stops(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where multiprocessing's files go
    me = psutil.Process()
    assert not _forkservers(me)
    with daskdeploy.deploy("local", workers=2, quiet=True) as client:
        client.wait_for_workers(2, timeout=60)
        (server,) = _forkservers(me)
        workers = [
            psutil.Process(pid)
            for pid in client.run(os.getpid).values()  # the worker processes' ids
        ]
        assert {worker.ppid() for worker in workers} == {server.pid}
        # The forkserver imported distributed once; a worker imports nothing more to start.
        assert client.run(lambda: "distributed" in sys.modules) == {
            address: True for address in client.scheduler_info()["workers"]
        }
        assert client.submit(sum, range(10), pure=False).result(timeout=30) == 45
    assert psutil.wait_procs([server], timeout=10)[0], "the forkserver outlived the deployment"
    assert not _forkservers(me)
    # Not even the forkserver's socket directory is left (multiprocessing's own would stay
    # until this process exits).
    assert not list(tmp_path.iterdir())


def test_overlapping_local_deployments_share_the_forkserver_until_the_last_closes():
    me = psutil.Process()
    first = daskdeploy.deploy("local", workers=1, quiet=True)
    try:
        second = daskdeploy.deploy("local", workers=1, quiet=True)
        try:
            assert len(_forkservers(me)) == 1
        finally:
            first.close()
        (server,) = _forkservers(me)
        # The first deployment's close left the second one's workers able to restart.
        assert second.submit(lambda: os.getpid(), pure=False).result(timeout=30) > 0
        second.restart()
        assert second.submit(lambda: 7, pure=False).result(timeout=30) == 7
    finally:
        second.close()
    assert psutil.wait_procs([server], timeout=10)[0]


def test_the_preload_is_valid_python_that_needs_no_daskdeploy():
    # Hosts reached by SSH or another Python environment may lack daskdeploy: the snippet
    # must run in a plain interpreter with only dask installed.
    code = worker_processes.NANNY_PRELOAD + "; import sys; print('daskdeploy' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "False"


def test_environment_follows_dask_configuration():
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 3}}):
        assert worker_processes.environment() == {"OMP_NUM_THREADS": "3"}
        assert worker_processes.environment_command() == ["env", "OMP_NUM_THREADS=3"]


def test_importing_it_loads_no_distributed():
    # worker_processes is imported by every backend module: it must stay light.
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import daskdeploy.backends.shared.worker_processes; "
            "print('distributed' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "False"
