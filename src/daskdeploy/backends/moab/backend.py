"""The ``moab`` backend: workers arrive as Moab jobs (dask-jobqueue's MoabCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.moab.system.MOAB`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import MOAB

__all__ = ["MoabBackend"]


class MoabBackend(JobQueueBackend):
    """Worker processes in Moab batch jobs, submitted from here (dask-jobqueue)."""

    system = MOAB
