"""The ``oar`` backend: workers arrive as OAR jobs (dask-jobqueue's OARCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.oar.system.OAR`.
"""

from __future__ import annotations

from ..jobqueue.backend import JobQueueBackend
from .system import OAR

__all__ = ["OARBackend"]


class OARBackend(JobQueueBackend):
    """Worker processes in OAR batch jobs, submitted from here (dask-jobqueue)."""

    system = OAR
