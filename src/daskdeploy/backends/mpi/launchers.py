"""What the environment says about MPI: are we a rank, of how many, started by whom.

MPI launchers describe the world they started in environment variables before any MPI
library is loaded: MPICH's Hydra ``mpiexec`` (also Intel MPI and MVAPICH) and
``srun --mpi=pmi2`` set ``PMI_RANK``/``PMI_SIZE``; Open MPI's ``mpirun`` sets
``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``; ``srun --mpi=pmix`` sets ``PMIX_RANK``.
Reading them tells daskdeploy that it runs under a launcher (``backend="auto"`` picks
``mpi``), how large a world the launcher meant to start, and which MPI library family it
expects. Comparing that with the world mpi4py actually joined exposes the classic flavour
mismatch: an mpi4py built for one MPI under another MPI's launcher starts N separate
worlds of size 1.

Everything here is a pure function of the environment, except :func:`find_mpiexec` and
:func:`launcher_family`, which look at files and run ``mpiexec --version``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MPICH",
    "OPEN_MPI",
    "Launch",
    "find_mpiexec",
    "launch_from_environ",
    "launcher_family",
    "open_mpi_root_environment",
    "srun_tasks",
]

#: Library families, by the ABI their launchers and libraries speak.
MPICH = "MPICH"
OPEN_MPI = "Open MPI"


@dataclass(frozen=True)
class Launch:
    """How an MPI launcher started this process.

    Attributes
    ----------
    launcher
        Who started it, for messages: ``"mpiexec (MPICH/Hydra)"``, ``"mpirun (Open MPI)"``,
        ``"srun --mpi=pmi2"``, ``"srun --mpi=pmix"``.
    family
        The MPI family the launcher expects the program's library to be (:data:`MPICH` or
        :data:`OPEN_MPI`); ``None`` when it cannot tell (PMIx under srun serves both).
    size
        Number of ranks the launcher started (``None`` when it does not say).
    rank
        This process's rank according to the launcher.
    """

    launcher: str
    family: str | None
    size: int | None
    rank: int


def _integer(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def launch_from_environ(environ: Mapping[str, str] | None = None) -> Launch | None:
    """Return how an MPI launcher started this process, or ``None`` if none did.

    >>> launch_from_environ({"PMI_RANK": "1", "PMI_SIZE": "4"})
    Launch(launcher='mpiexec (MPICH/Hydra)', family='MPICH', size=4, rank=1)
    >>> launch_from_environ({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0"}) is None
    True
    """
    env = os.environ if environ is None else environ
    in_srun_step = "SLURM_STEP_ID" in env and "SLURM_PROCID" in env
    if "OMPI_COMM_WORLD_SIZE" in env:
        return Launch(
            "mpirun (Open MPI)",
            OPEN_MPI,
            _integer(env.get("OMPI_COMM_WORLD_SIZE")),
            _integer(env.get("OMPI_COMM_WORLD_RANK")) or 0,
        )
    if "PMI_RANK" in env or "PMI_SIZE" in env:
        return Launch(
            "srun --mpi=pmi2" if in_srun_step else "mpiexec (MPICH/Hydra)",
            MPICH,
            _integer(env.get("PMI_SIZE")),
            _integer(env.get("PMI_RANK")) or 0,
        )
    if "PMIX_RANK" in env:
        size = _integer(env.get("SLURM_NTASKS")) if in_srun_step else None
        return Launch(
            "srun --mpi=pmix" if in_srun_step else "a PMIx launcher",
            None,
            size,
            _integer(env.get("PMIX_RANK")) or 0,
        )
    return None


def srun_tasks(environ: Mapping[str, str] | None = None) -> int | None:
    """Number of tasks of the ``srun`` step this process is a task of, else ``None``.

    >>> srun_tasks({"SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4"})
    4
    """
    env = os.environ if environ is None else environ
    if "SLURM_STEP_ID" not in env or "SLURM_PROCID" not in env:
        return None
    return _integer(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS"))


def find_mpiexec(launcher: str | None = None, python: str | None = None) -> str | None:
    """Return the ``mpiexec`` that matches the running Python's mpi4py.

    Parameters
    ----------
    launcher
        An explicit choice (a path or a command name); returned resolved when it exists.
    python
        The interpreter whose environment to search first (default: ``sys.executable``).
        ``pip install mpich`` puts ``mpiexec`` next to it; that one always matches the
        MPICH library mpi4py loads from the same environment.

    Returns
    -------
    str or None
        A path, or ``None`` when no launcher is found.
    """
    if launcher:
        return shutil.which(launcher)
    beside_python = Path(python or sys.executable).parent
    for name in ("mpiexec", "mpirun"):
        candidate = beside_python / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("mpiexec") or shutil.which("mpirun")


def launcher_family(mpiexec: str, timeout: float = 10.0) -> str | None:
    """Ask ``mpiexec --version`` which MPI family it launches (``None``: unknown)."""
    from ...commands import CommandError, run_command

    try:
        result = run_command([mpiexec, "--version"], timeout=timeout, check=False)
    except CommandError:
        return None
    text = (result.stdout + result.stderr).lower()
    if "open mpi" in text or "openrte" in text or "open-mpi" in text:
        return OPEN_MPI
    if "hydra" in text or "mpich" in text or "intel" in text:
        return MPICH
    return None


def open_mpi_root_environment(ranks: int, cpus: int | None = None) -> dict[str, str]:
    """Variables Open MPI's ``mpirun`` needs as root, or with more ranks than cores.

    Open MPI refuses to run as root and to place more ranks than cores unless told to;
    the test machines are exactly that (root, 2 cores). Empty when neither applies.
    """
    env: dict[str, str] = {}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    if ranks > (cpus or os.cpu_count() or 1):
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return env
