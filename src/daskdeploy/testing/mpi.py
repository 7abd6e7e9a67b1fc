"""Whether the MPI backend's tests and benchmarks can run here: MPICH's mpiexec and mpi4py."""

from __future__ import annotations

import importlib.util

__all__ = ["unavailable_reason"]


def unavailable_reason() -> str | None:
    """Why MPI runs cannot be launched here, or ``None`` when they can.

    They need mpi4py and MPICH's ``mpiexec`` (both from the ``mpi`` extra: the mpich
    wheel puts ``mpiexec`` next to this Python); another MPI's launcher first on ``PATH``
    would start worlds mpi4py cannot join.
    """
    from ..backends.mpi.launchers import MPICH, find_mpiexec, launcher_family

    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'daskdeploy[mpi]')"
    mpiexec = find_mpiexec()
    if mpiexec is None:
        return "no mpiexec next to this Python or on PATH (pip install mpich)"
    if launcher_family(mpiexec) != MPICH:
        return f"{mpiexec} is not MPICH's mpiexec, which the mpich wheel installs"
    return None
