"""A cluster object holding only a scheduler, for backends whose workers start elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import Running, dashboard_link

if TYPE_CHECKING:
    from ...options import ResolvedOptions
    from .layout import TaskLayout

__all__ = ["running_with_layout", "scheduler_only_cluster"]


def running_with_layout(
    cluster: Any,
    options: ResolvedOptions,
    layout: TaskLayout,
    workers: int,
    security: Any = None,
    **more: Any,
) -> Running:
    """The :class:`Running` of ``cluster`` whose ``workers`` workers follow ``layout``.

    ``more`` sets the other fields (``stop``, ``check``, ...).
    """
    return Running(
        address=cluster.scheduler_address,
        cluster=cluster,
        security=security,
        expected_workers=workers,
        threads_per_worker=layout.threads,
        sizing_note=layout.reason,
        dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
        **more,
    )


def scheduler_only_cluster(
    name: str,
    listen: dict[str, Any],
    dashboard: bool,
    scheduler_file: Path | None = None,
    security: Any = None,
) -> Any:
    """Start a scheduler in this process, on a free port, and return its SpecCluster.

    Parameters
    ----------
    name
        Cluster name (the deployment id).
    listen
        ``{"host": ...}`` or ``{"interface": ...}``: where the scheduler listens.
    dashboard
        Serve the dashboard (always on 127.0.0.1, at a free port).
    scheduler_file
        Where the scheduler writes its address for the workers to read (``None``: nowhere,
        the workers learn it another way).
    security
        :class:`distributed.Security` of the deployment: the scheduler then listens on
        ``tls://`` and only accepts its holders (``None``: plain TCP).
    """
    from distributed import Scheduler, SpecCluster

    return SpecCluster(
        scheduler={
            "cls": Scheduler,
            "options": {
                **listen,
                "port": 0,
                "dashboard": dashboard,
                "dashboard_address": "127.0.0.1:0",
                "scheduler_file": str(scheduler_file) if scheduler_file else None,
                "security": security,
                "protocol": "tls://" if security is not None else None,
            },
        },
        workers={},
        security=security,
        name=name,
        silence_logs="warning",
    )
