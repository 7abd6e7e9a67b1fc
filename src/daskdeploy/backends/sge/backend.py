"""The ``sge`` backend: workers arrive as Grid Engine jobs (dask-jobqueue's SGECluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.sge.system.SGE`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import SGE

__all__ = ["SGEBackend"]


class SGEBackend(JobQueueBackend):
    """Worker processes in Grid Engine batch jobs, submitted from here (dask-jobqueue)."""

    system = SGE
