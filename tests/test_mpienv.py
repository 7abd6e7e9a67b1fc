"""What launchers' environments say, which rank does what, and which mpiexec is chosen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from daskdeploy.backends.mpi.launchers import (
    MPICH,
    OPEN_MPI,
    Launch,
    find_mpiexec,
    launch_from_environ,
    open_mpi_root_environment,
)
from daskdeploy.backends.shared.layout import TaskLayout
from daskdeploy.backends.shared.ranks import Roles


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # MPICH's Hydra mpiexec (also Intel MPI, MVAPICH)
        (
            {"PMI_RANK": "2", "PMI_SIZE": "6", "PMI_FD": "9"},
            Launch("mpiexec (MPICH/Hydra)", MPICH, 6, 2),
        ),
        # srun --mpi=pmi2 inside a job
        (
            {"PMI_RANK": "0", "PMI_SIZE": "3", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0"},
            Launch("srun --mpi=pmi2", MPICH, 3, 0),
        ),
        # Open MPI's mpirun sets PMIx variables too; its own ones win
        (
            {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "PMIX_RANK": "3"},
            Launch("mpirun (Open MPI)", OPEN_MPI, 4, 3),
        ),
        # srun --mpi=pmix: the size comes from SLURM, the family is open
        (
            {"PMIX_RANK": "1", "SLURM_STEP_ID": "4", "SLURM_PROCID": "1", "SLURM_NTASKS": "5"},
            Launch("srun --mpi=pmix", None, 5, 1),
        ),
        # plain srun without MPI, a batch script, a laptop: no launcher
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1"}, None),
        ({}, None),
    ],
)
def test_launchers_are_recognised_from_their_environment(environ, expected):
    assert launch_from_environ(environ) == expected


def test_garbled_sizes_do_not_crash_detection():
    launch = launch_from_environ({"PMI_RANK": "x", "PMI_SIZE": ""})
    assert launch == Launch("mpiexec (MPICH/Hydra)", MPICH, None, 0)


@pytest.mark.parametrize(
    ("size", "roles", "client", "workers"),
    [
        (1, ["all"], 0, 1),
        (2, ["scheduler+client", "worker"], 0, 1),
        (3, ["scheduler", "client", "worker"], 1, 1),
        (6, ["scheduler", "client", "worker", "worker", "worker", "worker"], 1, 4),
    ],
)
def test_roles_follow_dask_mpi_and_cover_small_worlds(size, roles, client, workers):
    layout = Roles(size)
    assert [layout.of(rank) for rank in range(size)] == roles
    assert layout.client_rank == client
    assert layout.worker_ranks == workers
    assert layout.dask_workers(TaskLayout(1, 1, None)) == workers
    assert layout.dask_workers(TaskLayout(2, 1, None)) == 2 * workers


def test_worker_ranks_of_several_processes_fill_up_in_rank_order():
    """workers=5 in a world of 5 with 2 processes per rank: ranks 2, 3, 4 run 2, 2, 1."""
    roles, layout = Roles(5), TaskLayout(2, 1, None)
    shares = [layout.processes_in(roles.worker_index(rank), 5) for rank in range(2, 5)]
    assert shares == [2, 2, 1]
    assert roles.dask_workers(layout, 5) == 5 and roles.dask_workers(layout) == 6


def test_layout_sentence_names_every_rank():
    assert Roles(6).layout() == "rank 0 scheduler, rank 1 your script, ranks 2-5 workers"
    assert Roles(3).layout() == "rank 0 scheduler, rank 1 your script, rank 2 worker"


def test_mpiexec_next_to_python_comes_first(tmp_path: Path):
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("")
    launcher = tmp_path / "bin" / "mpiexec"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    assert find_mpiexec(python=str(python)) == str(launcher)


def test_an_explicit_launcher_must_exist():
    assert find_mpiexec("no-such-launcher-anywhere") is None
    assert find_mpiexec(sys.executable) == sys.executable


def test_open_mpi_gets_root_and_oversubscribe_settings_only_when_needed():
    assert open_mpi_root_environment(2, cpus=4).get("OMPI_MCA_rmaps_base_oversubscribe") is None
    assert open_mpi_root_environment(6, cpus=2)["OMPI_MCA_rmaps_base_oversubscribe"] == "1"
    root = os.geteuid() == 0
    assert ("OMPI_ALLOW_RUN_AS_ROOT" in open_mpi_root_environment(1, cpus=4)) is root


def test_worker_processes_of_a_serving_rank_drop_closed_connection_noise(tmp_path: Path):
    """A rank's workers under nannies filter distributed's connection-closed records as the
    rank does: their heartbeat may meet a scheduler that has just closed."""
    import asyncio
    import logging
    import threading

    from distributed import Client, Scheduler

    from daskdeploy.backends.shared.ranks import serve_workers

    def filtered() -> bool:
        handlers = logging.getLogger("distributed").handlers or logging.getLogger().handlers
        names = {getattr(f, "__name__", "") for h in handlers for f in h.filters}
        return "_not_about_a_closed_connection" in names

    async def main() -> list[bool]:
        stop = threading.Event()
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
            serving = asyncio.ensure_future(
                serve_workers(
                    address=scheduler.address,
                    processes=2,
                    threads=1,
                    memory=None,
                    name="rank-2",
                    local_directory=tmp_path,
                    death_timeout=30,
                    host="127.0.0.1",
                    stop_requested=stop.is_set,
                    grace=1.0,
                )
            )
            async with Client(scheduler.address, asynchronous=True) as client:
                await client.wait_for_workers(2, timeout=60)
                answers = await client.run(filtered)
            stop.set()
            await asyncio.wait_for(serving, 30)
        return list(answers.values())

    assert asyncio.run(main()) == [True, True]
