"""The ``htcondor`` backend: workers arrive as HTCondor jobs (dask-jobqueue's HTCondorCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.htcondor.system.HTCONDOR`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import HTCONDOR

__all__ = ["HTCondorBackend"]


class HTCondorBackend(JobQueueBackend):
    """Worker processes in HTCondor jobs, submitted from here (dask-jobqueue)."""

    system = HTCONDOR
