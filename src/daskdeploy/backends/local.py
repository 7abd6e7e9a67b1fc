"""The ``local`` backend: a :class:`distributed.LocalCluster` on this machine.

Workers are separate processes with one thread each by default, because pure-Python code
holds the GIL: two threads in one process run such code no faster than one. The scheduler
and dashboard listen on 127.0.0.1 only, on free ports, so nothing is reachable from other
machines and two deployments on one machine never collide. Loopback is still reachable
by the other users of a shared machine (a login node): ``tls=True`` makes the
deployment's connections TLS with credentials only it holds.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar

from ..credentials import write_private
from ..options import Option, ResolvedOptions, boolean
from .base import Backend, Running, StartContext, dashboard_link
from .local_fit import check_fits, sharing_note
from .shared import worker_processes
from .shared.nannies import stop_workers_through_nannies

__all__ = ["LocalBackend"]

LOOPBACK = "127.0.0.1"


def _worker_count(options: ResolvedOptions) -> int:
    if options["workers"] is not None:
        return options["workers"]
    from dask.system import CPU_COUNT

    return max(1, CPU_COUNT // options["threads_per_worker"])


def _checked_local_cluster(options: ResolvedOptions) -> type:
    """:class:`distributed.LocalCluster` whose ``scale(n)`` and ``adapt(maximum=n)``
    refuse ``n`` workers that cannot fit this machine, as the start does."""
    from distributed import LocalCluster

    class Checked(LocalCluster):
        def scale(self, n: int = 0, memory: Any = None, cores: Any = None) -> None:
            if n:
                check_fits(options, int(n))
            super().scale(n, memory=memory, cores=cores)

        def adapt(self, *args: Any, maximum: float = math.inf, **kwargs: Any) -> Any:
            if maximum != math.inf:
                check_fits(options, int(maximum))
            return super().adapt(*args, maximum=maximum, **kwargs)

    Checked.__name__ = Checked.__qualname__ = "LocalCluster"
    return Checked


class LocalBackend(Backend):
    """Workers as processes (or threads) on this machine."""

    name = "local"
    kind = "cluster"
    summary = "LocalCluster on this machine (loopback only)"
    default_workers = "one per available core"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "processes",
            boolean,
            "Run workers as separate processes (true) or as threads in this process "
            "(false: no process start-up cost, but the GIL serialises pure-Python code).",
        ),
        Option(
            "oversubscribe",
            boolean,
            "Start more workers than this machine holds (over 8 per core, or more "
            "memory than it has) instead of refusing; the process and open-files limits "
            "still hold.",
        ),
    )

    def validate(self, options: ResolvedOptions) -> None:
        """Refuse workers that cannot fit this machine (see :mod:`.local_fit`)."""
        self.check_scale(options, _worker_count(options))

    def check_scale(self, options: ResolvedOptions, workers: int) -> None:
        """Refuse ``workers`` workers when their cores, memory or processes cannot fit."""
        check_fits(options, workers)

    def describe(self, options: ResolvedOptions) -> str:
        """Say what the local cluster would look like."""
        workers = _worker_count(options)
        kind = "processes" if options["processes"] else "threads of this process"
        memory = options["memory_per_worker"]
        memory_text = f"{memory:,} bytes each" if memory else "memory shared automatically"
        dashboard = (
            f"dashboard on {LOOPBACK}:<free port>" if options["dashboard"] else "no dashboard"
        )
        sharing = sharing_note(workers)
        return (
            f"LocalCluster: {workers} worker {kind} x {options['threads_per_worker']} "
            f"thread(s), {memory_text}; scheduler on {LOOPBACK}:<free port>; {dashboard}."
            + (f" ({sharing}.)" if sharing else "")
        )

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Start a LocalCluster bound to loopback with a private scratch directory."""
        workers = _worker_count(options)
        # Thread workers talk to the scheduler in memory (inproc://); distributed refuses a
        # host there, and nothing listens on the network except the loopback dashboard.
        network: dict[str, Any] = (
            {"host": LOOPBACK, "scheduler_port": 0} if options["processes"] else {}
        )
        security = None
        if options["tls"] and options["processes"]:
            security = write_private(context.deployment_id, context.scratch_dir).security()
            network["protocol"] = "tls://"
        start_method = contextlib.ExitStack()
        if options["processes"]:
            start_method.enter_context(worker_processes.shared_forkserver())
        try:
            cluster = _local_cluster(options, context, workers, security, network)
        except BaseException:
            start_method.close()
            raise
        return Running(
            address=cluster.scheduler_address,
            cluster=cluster,
            security=security,
            expected_workers=workers,
            scalable=True,
            dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
            stop=[start_method.close],
            stop_workers=(lambda: stop_workers_through_nannies(cluster))
            if options["processes"]
            else None,
        )


PROFILE_KEY = "distributed.worker.profile.enabled"
"""Off in the local backend's workers unless the user's dask configuration sets it.

distributed's statistical profiler wakes every worker's event loop every 10 ms to walk the
stack of the running task, and the task's thread must hand it the GIL each time. With the
workers on every core, that cost came out of the work: examples/pi.py at 0.1 s tasks took
1.29x ``multiprocessing.Pool``'s time on the same chunks with the profiler, 0.77x without
(2 cores; one sample every 100 ms still left it at 1.26x). Set
``distributed.worker.profile.enabled: true`` in a dask config file or
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=True`` to get the dashboard's Profile page back.
"""


def _worker_config() -> dict[str, Any]:
    """Dask settings for the worker processes, on top of this process's configuration."""
    import dask.config

    user_profile = dask.config.get(
        "distributed.worker.profile", default={}, config=dask.config.collect()
    )
    if "enabled" in (user_profile or {}) or dask.config.get(PROFILE_KEY) is not True:
        return {}
    return {PROFILE_KEY: False}


def _local_cluster(
    options: ResolvedOptions,
    context: StartContext,
    workers: int,
    security: Any,
    network: dict[str, Any],
) -> Any:
    # Nannies pass ``config`` to their worker process; thread workers run in this process.
    nanny = {"config": _worker_config()} if options["processes"] else {}
    return _checked_local_cluster(options)(
        **nanny,
        name=context.deployment_id,
        n_workers=workers,
        threads_per_worker=options["threads_per_worker"],
        memory_limit=options["memory_per_worker"] or "auto",
        processes=options["processes"],
        security=security,
        **network,
        # The scheduler's HTTP server (health, metrics) runs even without the dashboard;
        # a free loopback port keeps it from reaching for 8787.
        dashboard_address=f"{LOOPBACK}:0",
        local_directory=str(context.scratch_dir),
        scheduler_kwargs={
            "local_directory": str(context.scratch_dir),
            "dashboard": options["dashboard"],
        },
    )
