"""Roles of the processes of an in-place run, and the servers the serving ones run.

In-place runners (the ``allocation`` backend's runner mode under ``srun``, the ``mpi``
backend under ``mpiexec``) start N copies of the same script. When they call
``deploy()``, each copy takes a role by its rank, as dask-mpi does:

* with 3 or more ranks, rank 0 runs the scheduler, rank 1 returns from ``deploy()``
  with the client and runs the rest of the script, ranks 2 and up run one worker each;
* with 2 ranks, rank 0 runs the scheduler in the background and the script, rank 1 the
  worker;
* with 1 rank, that rank runs the scheduler, one worker process and the script.

The backends differ only in how the ranks find the scheduler (a scheduler file, or an
MPI message) and in how they end; the roles and the servers live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..credentials import write_private
from ..options import ResolvedOptions
from ..scheduler_watch import preload_text
from .base import Running, StartContext, dashboard_link
from .scheduler_cluster import scheduler_only_cluster

__all__ = [
    "Roles",
    "drop_closed_connection_noise",
    "quiet_serving_logs",
    "scheduler_here",
    "serve_scheduler",
    "serve_worker",
    "single_process",
]

logger = logging.getLogger(__name__)

_POLL = 0.05  # seconds between looks at stop_requested()


class Roles:
    """Which rank does what, in a world of ``size`` ranks.

    >>> [Roles(n).of(rank) for n in (1, 2, 3) for rank in range(n)]
    ['all', 'scheduler+client', 'worker', 'scheduler', 'client', 'worker']
    """

    scheduler_rank = 0

    def __init__(self, size: int) -> None:
        self.size = size

    def of(self, rank: int) -> str:
        """The role of ``rank``: all, scheduler+client, scheduler, client or worker."""
        if self.size == 1:
            return "all"
        if self.size == 2:
            return "scheduler+client" if rank == 0 else "worker"
        return {0: "scheduler", 1: "client"}.get(rank, "worker")

    @property
    def client_rank(self) -> int:
        """The rank that returns from ``deploy()`` and runs the script."""
        return 1 if self.size >= 3 else 0

    @property
    def workers(self) -> int:
        """Number of workers the ranks provide."""
        return 1 if self.size <= 2 else self.size - 2

    def layout(self) -> str:
        """Say which rank does what, in one line for summaries."""
        if self.size == 1:
            return "rank 0 runs the scheduler, one worker process and your script"
        if self.size == 2:
            return "rank 0 runs the scheduler and your script, rank 1 the worker"
        workers = "rank 2 worker" if self.size == 3 else f"ranks 2-{self.size - 1} workers"
        return f"rank 0 scheduler, rank 1 your script, {workers}"


_CLOSED_CONNECTION = ("CommClosedError", "StreamClosedError")


def _not_about_a_closed_connection(record: logging.LogRecord) -> bool:
    """Drop records that only say a peer went away: at the end of a run they all do."""
    error = record.exc_info[1] if record.exc_info else None
    seen: set[int] = set()
    while error is not None and id(error) not in seen:  # the cause may sit in the chain
        if type(error).__name__ in _CLOSED_CONNECTION:
            return False
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    message = record.getMessage()
    return not any(
        text in message for text in (*_CLOSED_CONNECTION, "Failed to communicate with scheduler")
    )


def drop_closed_connection_noise() -> None:
    """Hide distributed's connection-closed records in this process (idempotent).

    In an in-place run every rank gets the launcher's SIGINT/SIGTERM at once, so the
    script's rank, too, may see its scheduler vanish while it shuts down.
    """
    distributed_logger = logging.getLogger("distributed")
    for handler in distributed_logger.handlers or logging.getLogger().handlers:
        handler.addFilter(_not_about_a_closed_connection)


def quiet_serving_logs() -> None:
    """Serving ranks log real errors only; the script's rank keeps the summary line.

    Without this every rank prints distributed's start-up lines and, at the end, the
    connection-closed tracebacks of a cluster shutting down (a worker whose heartbeat
    meets a scheduler that just closed, for instance).
    """
    logging.getLogger("distributed").setLevel(logging.ERROR)
    drop_closed_connection_noise()


async def _serve_until_done(
    server: Any,
    close: Callable[[], Any],
    stop_requested: Callable[[], bool] | None,
    grace: float,
) -> None:
    """Wait until ``server`` finishes; close it on SIGINT/SIGTERM or ``stop_requested()``.

    After a close was asked for, give up waiting after ``grace`` seconds: a worker busy in
    a long task only closes when the task ends, and the caller ends the process anyway.
    """
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    handled: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, signalled.set)
                handled.append(signum)
    finished = asyncio.ensure_future(server.finished())
    try:
        while not finished.done():
            if signalled.is_set() or (stop_requested is not None and stop_requested()):
                closing = asyncio.ensure_future(close())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(finished), grace)
                if not closing.done():
                    logger.warning("Still closing after %g s; leaving anyway.", grace)
                return
            await asyncio.wait([finished], timeout=_POLL)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


async def serve_scheduler(
    *,
    host: str,
    dashboard: bool,
    timeout: float,
    scheduler_file: Path | None = None,
    on_started: Callable[[Any], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
    grace: float = 5.0,
    security: Any = None,
) -> None:
    """Run a scheduler until it closes.

    Parameters
    ----------
    host
        Address to listen on (port: any free one).
    dashboard
        Serve the dashboard, on 127.0.0.1 at a free port.
    timeout
        The scheduler closes itself if no client connects within this many seconds, and
        a few seconds after its last client left.
    scheduler_file
        Where to write the scheduler's address for the other ranks, if anywhere.
    on_started
        Called with the running :class:`distributed.Scheduler` (e.g. to send its address).
    stop_requested
        Polled; when it returns True the scheduler closes (telling its workers to close).
    grace
        Seconds to wait for the close to finish.
    security
        The deployment's :class:`distributed.Security`: listen on ``tls://`` and accept
        only its holders (``None``: plain TCP).
    """
    from distributed import Scheduler

    try:
        async with Scheduler(
            host=host,
            port=0,
            dashboard=dashboard,
            dashboard_address="127.0.0.1:0",
            scheduler_file=str(scheduler_file) if scheduler_file else None,
            preload=[preload_text(timeout)],
            security=security,
            protocol="tls://" if security is not None else None,
        ) as scheduler:
            if on_started is not None:
                on_started(scheduler)
            await _serve_until_done(scheduler, scheduler.close, stop_requested, grace)
    finally:
        if scheduler_file is not None:
            scheduler_file.unlink(missing_ok=True)


async def serve_worker(
    *,
    address: str,
    threads: int,
    memory: Any,
    name: str,
    local_directory: Path,
    death_timeout: float,
    host: str | None = None,
    stop_requested: Callable[[], bool] | None = None,
    grace: float = 5.0,
    security: Any = None,
) -> None:
    """Run one worker (no nanny) connected to ``address`` until it closes.

    Parameters
    ----------
    address
        The scheduler's address.
    threads, memory, name
        The worker's threads, memory limit and name.
    local_directory
        Where it spills; the caller removes it.
    death_timeout
        Seconds it waits for a lost (or not yet reachable) scheduler before closing.
    host
        Address the worker listens on (``None``: distributed's choice towards the
        scheduler).
    stop_requested, grace
        As for :func:`serve_scheduler`; the worker closes without waiting for a running
        task to finish.
    security
        The deployment's :class:`distributed.Security` (``None``: plain TCP).
    """
    async with _rank_worker_class()(
        address,
        host=host,
        nthreads=threads,
        memory_limit=memory,
        name=name,
        local_directory=str(local_directory),
        dashboard=False,
        death_timeout=death_timeout,
        security=security,
    ) as worker:
        await _serve_until_done(
            worker, lambda: worker.close(reason="daskdeploy: run ended"), stop_requested, grace
        )


def _rank_worker_class() -> type:
    """A Worker that never waits for running tasks when it closes.

    Told to close (by its scheduler, a signal or the end of the run), a plain Worker
    waits for the task in progress, which for a long pure-Python task keeps the rank (and
    the whole MPI run) alive for minutes. The rank exits right after, and the task
    threads are daemon threads, so nothing is lost by not waiting.
    """
    from distributed import Worker

    class RankWorker(Worker):
        async def close(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["executor_wait"] = False
            return await super().close(*args, **kwargs)

    return RankWorker


def scheduler_here(
    options: ResolvedOptions,
    context: StartContext,
    host: str,
    *,
    scheduler_file: Path | None = None,
    stop: list[Callable[[], Any]] | None = None,
    security: Any = None,
) -> Running:
    """Start the scheduler in this (the script's) process; one worker rank will join it."""
    cluster = scheduler_only_cluster(
        context.deployment_id, {"host": host}, options["dashboard"], scheduler_file, security
    )
    return Running(
        address=cluster.scheduler_address,
        cluster=cluster,
        security=security,
        expected_workers=1,
        dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
        stop=list(stop or []),
    )


def single_process(
    options: ResolvedOptions, context: StartContext, threads: int, memory: Any
) -> Running:
    """A world of one: scheduler and script here, one worker in a child process."""
    from distributed import LocalCluster

    security = None
    if options["tls"]:
        security = write_private(context.deployment_id, context.scratch_dir).security()
    cluster = LocalCluster(
        name=context.deployment_id,
        n_workers=1,
        threads_per_worker=threads,
        memory_limit=memory,
        processes=True,
        host="127.0.0.1",
        protocol="tls://" if security is not None else None,
        security=security,
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        local_directory=str(context.scratch_dir),
        scheduler_kwargs={"dashboard": options["dashboard"]},
    )
    return Running(
        address=cluster.scheduler_address,
        cluster=cluster,
        security=security,
        expected_workers=1,
        threads_per_worker=threads,
        dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
    )
