"""The contract suite (daskdeploy.testing.contract) on our backends and the docs' example.

Each class runs the same four tests against real components: the session's SLURM cluster
(slurm, allocation inside ``salloc``), its Grid Engine cell (sge), its SSH hosts, MPICH's
``mpiexec``. Leftovers outside this machine's processes are checked independently of the
backend (``squeue``, ``qstat``, the hosts' processes and directories). The example backend
of docs/api.rst (docs/examples/subprocess_backend.py) is installed as a user would: a
distribution with a ``daskdeploy.backends`` entry point on ``sys.path`` and ``PYTHONPATH``,
so the reaper's ``daskdeploy cleanup`` finds it too.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, require
from daskdeploy import registry
from daskdeploy.testing.contract import BackendContract, ScriptRunner

PYTHON = sys.executable
EXAMPLE = REPO / "docs" / "examples" / "subprocess_backend.py"
SSH_REMOTE = "distributed.cli.dask_spec"  # every remote scheduler and worker runs this


class TestLocalContract(BackendContract):
    backend = "local"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_options(cls) -> dict[str, Any]:
        return {"workers": 2}


class TestSlurmContract(BackendContract):
    backend = "slurm"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_options(cls, slurm_cluster) -> dict[str, Any]:
        return {"workers": 2}

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, slurm_cluster) -> Callable[[str], list[str]]:
        def jobs(deployment_id: str) -> list[str]:
            return [
                f"job {job['id']} {job['state']}"
                for job in slurm_cluster.jobs()
                if deployment_id in (job["name"], job["comment"].removeprefix("daskdeploy:"))
            ]

        return jobs


class TestSGEContract(BackendContract):
    backend = "sge"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_options(cls, sge_cell) -> dict[str, Any]:
        return {"workers": 2}

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, sge_cell) -> Callable[[str], list[str]]:
        def jobs(deployment_id: str) -> list[str]:
            return [
                f"job {job['id']} {job['state']}"
                for job in sge_cell.jobs()
                if job["name"] == deployment_id
            ]

        return jobs


class TestAllocationContract(BackendContract):
    backend = "allocation"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls, slurm_cluster) -> ScriptRunner:
        """The script is the shell command of an interactive allocation of two tasks."""
        return ScriptRunner(("salloc", "-N", "2", "-n", "2", "-t", "00:05:00", PYTHON))

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, slurm_cluster) -> Callable[[str], list[str]]:
        # The allocation's job is not named after the deployment; the session's cluster
        # runs nothing else meanwhile, so any job is this test's.
        return lambda deployment_id: [f"job {j['id']} {j['state']}" for j in slurm_cluster.jobs()]


class TestBatchJobContract(BackendContract):
    backend = "batchjob"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls, sge_cell) -> ScriptRunner:
        """The script is the command of an interactive Grid Engine job of three slots."""
        return ScriptRunner(("qrsh", "-V", "-cwd", "-now", "y", "-pe", "smp", "3", PYTHON))

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, sge_cell) -> Callable[[str], list[str]]:
        # The job is not named after the deployment; the session's cell runs nothing
        # else meanwhile, so any job is this test's.
        return lambda deployment_id: [f"job {j['id']} {j['state']}" for j in sge_cell.jobs()]


class TestSSHContract(BackendContract):
    backend = "ssh"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_options(cls, ssh_hosts) -> dict[str, Any]:
        # The scheduler on the first host, one worker on each of the other two.
        return {"hosts": ssh_hosts.hosts, "connect_options": ssh_hosts.connect_options()}

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, ssh_hosts) -> Callable[[str], list[str]]:
        def remote(deployment_id: str) -> list[str]:
            left = [f"remote pid {pid}" for pid in ssh_hosts.remote_processes(SSH_REMOTE)]
            remote_dir = Path(f"/tmp/daskdeploy-{deployment_id}")  # the hosts share /tmp
            return left + ([f"remote {remote_dir}"] if remote_dir.exists() else [])

        return remote


class TestMPIContract(BackendContract):
    backend = "mpi"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls) -> ScriptRunner:
        """Four ranks: the scheduler, the script (the client), two workers."""
        from daskdeploy.backends.mpi.launchers import find_mpiexec
        from daskdeploy.testing.mpi import unavailable_reason

        require(unavailable_reason(), "MPICH (pip install mpich mpi4py)")
        return ScriptRunner((find_mpiexec(), "-n", "4", PYTHON))


@pytest.fixture(scope="class")
def example_installed(tmp_path_factory) -> Iterator[Path]:
    """The docs' example backend, installed as ``pip install`` would: its module and a
    dist-info with the entry point, in a directory on ``sys.path`` (removed afterwards)."""
    site = tmp_path_factory.mktemp("example-site")
    dist_info = site / "daskdeploy_subprocess_example-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: daskdeploy-subprocess-example\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[daskdeploy.backends]\nsubprocess = subprocess_backend:SubprocessBackend\n"
    )
    shutil.copy(EXAMPLE, site / "subprocess_backend.py")
    sys.path.insert(0, str(site))
    registry._entry_point_targets.cache_clear()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("subprocess_backend", None)
        registry._entry_point_targets.cache_clear()
        registry._load.cache_clear()


class TestExampleBackendContract(BackendContract):
    """docs/examples/subprocess_backend.py, the worked example of docs/api.rst."""

    backend = "subprocess"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_backend(cls, example_installed) -> Any:
        assert cls.backend in registry.backend_names()
        return registry.get_backend(cls.backend)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls, example_installed) -> ScriptRunner:
        """Plain python, with the example's site directory on PYTHONPATH."""
        paths = [str(example_installed), os.environ.get("PYTHONPATH", "")]
        return ScriptRunner(env={"PYTHONPATH": os.pathsep.join(p for p in paths if p)})


def test_the_fault_table_has_a_column_per_registered_backend(example_installed):
    from daskdeploy.testing.faults import backend_columns

    assert backend_columns() == [*registry.BUILTIN_BACKENDS, "subprocess", "any"]
    assert backend_columns(["elsewhere"])[-2:] == ["elsewhere", "any"]
