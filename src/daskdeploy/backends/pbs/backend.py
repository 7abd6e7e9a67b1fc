"""The ``pbs`` backend: workers arrive as PBS jobs (dask-jobqueue's PBSCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.pbs.system.PBS`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import PBS

__all__ = ["PBSBackend"]


class PBSBackend(JobQueueBackend):
    """Worker processes in PBS batch jobs, submitted from here (dask-jobqueue)."""

    system = PBS
