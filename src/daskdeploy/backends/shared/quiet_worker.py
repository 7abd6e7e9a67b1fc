"""Preload of the worker processes a serving rank runs under nannies.

A rank that serves several workers starts each in a process of its own. Those processes
set up their logging from scratch, so the rank's filter for connection-closed noise
(:func:`~daskdeploy.backends.shared.ranks.drop_closed_connection_noise`) must be installed
in them too: otherwise a worker whose heartbeat meets a scheduler that has just closed
prints distributed's traceback at the end of a run that went well.
"""

from __future__ import annotations

from typing import Any

from .ranks import drop_closed_connection_noise

__all__ = ["dask_setup"]


def dask_setup(worker: Any) -> None:
    """Called by distributed in the worker process when it starts."""
    drop_closed_connection_noise()
