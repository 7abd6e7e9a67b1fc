"""The ``lsf`` backend: workers arrive as LSF jobs (dask-jobqueue's LSFCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.lsf.system.LSF`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import LSF

__all__ = ["LSFBackend"]


class LSFBackend(JobQueueBackend):
    """Worker processes in LSF batch jobs, submitted from here (dask-jobqueue)."""

    system = LSF
