"""Roles of the processes of an in-place run, and the servers the serving ones run.

In-place runners (the ``allocation`` backend's runner mode under ``srun``, the ``mpi``
backend under ``mpiexec``) start N copies of the same script. When they call
``deploy()``, each copy takes a role by its rank, as dask-mpi does:

* with 3 or more ranks, rank 0 runs the scheduler, rank 1 returns from ``deploy()``
  with the client and runs the rest of the script, ranks 2 and up run the workers;
* with 2 ranks, rank 0 runs the scheduler in the background and the script, rank 1 the
  workers;
* with 1 rank, that rank runs the scheduler, the worker processes and the script.

How many workers a worker rank runs, with how many threads, is its
:class:`~daskdeploy.backends.shared.layout.TaskLayout`: one worker in the rank's own process, or,
when
the rank has several CPUs (a task given N CPUs), N single-threaded
worker processes under nannies in the rank.

The backends differ only in how the ranks find the scheduler (a scheduler file, or an
MPI message) and in how they end; the roles and the servers live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ...credentials import write_private
from ...options import ResolvedOptions
from ..base import Running, StartContext
from . import worker_processes
from .layout import TaskLayout
from .scheduler_cluster import running_with_layout, scheduler_only_cluster
from .scheduler_watch import preload_text

__all__ = [
    "Roles",
    "drop_closed_connection_noise",
    "quiet_serving_logs",
    "scheduler_here",
    "serve_scheduler",
    "serve_workers",
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
    def worker_ranks(self) -> int:
        """Number of ranks that run workers."""
        return 1 if self.size <= 2 else self.size - 2

    def worker_index(self, rank: int) -> int:
        """Position of worker rank ``rank`` among the worker ranks, from 0.

        >>> Roles(5).worker_index(3), Roles(2).worker_index(1)
        (1, 0)
        """
        return 0 if self.size <= 2 else rank - 2

    def dask_workers(self, layout: TaskLayout, workers: int | None = None) -> int:
        """Dask workers the worker ranks run together, each laid out as ``layout``.

        ``workers`` caps the total as :meth:`TaskLayout.processes_in` describes.
        """
        return sum(layout.processes_in(index, workers) for index in range(self.worker_ranks))

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
    finished: Awaitable[Any],
    close: Callable[[], Any],
    stop_requested: Callable[[], bool] | None,
    grace: float,
) -> None:
    """Wait for ``finished``; call ``close`` on SIGINT/SIGTERM or ``stop_requested()``.

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
    finished = asyncio.ensure_future(finished)
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
            await _serve_until_done(scheduler.finished(), scheduler.close, stop_requested, grace)
    finally:
        if scheduler_file is not None:
            scheduler_file.unlink(missing_ok=True)


async def serve_workers(
    *,
    address: str,
    processes: int,
    threads: int,
    memory: int | None,
    name: str,
    local_directory: Path,
    death_timeout: float,
    host: str | None = None,
    stop_requested: Callable[[], bool] | None = None,
    grace: float = 5.0,
    security: Any = None,
) -> None:
    """Run a rank's workers, connected to ``address``, until they close.

    One worker runs in this process, without a nanny. Several (a rank with several CPUs,
    see :func:`~daskdeploy.backends.shared.layout.task_layout`) each run in a process of their own,
    under a nanny in this process, which restarts a worker process that dies: workers
    that share a process would share its GIL.

    Parameters
    ----------
    address
        The scheduler's address.
    processes
        Number of workers (worker processes when more than one).
    threads, memory
        Threads and memory limit (bytes; ``None``: Dask's ``auto``) of each worker.
    name
        The worker's name; with several, each gets ``-0``, ``-1``, ... appended.
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
    settings: dict[str, Any] = {
        "host": host,
        "nthreads": threads,
        "memory_limit": memory or "auto",
        "local_directory": str(local_directory),
        "dashboard": False,
        "death_timeout": death_timeout,
        "security": security,
    }
    if processes == 1:
        async with _rank_worker_class()(address, name=name, **settings) as worker:
            await _serve_until_done(
                worker.finished(),
                lambda: worker.close(reason="daskdeploy: run ended"),
                stop_requested,
                grace,
            )
        return
    await _serve_nannies(
        [{"name": f"{name}-{index}", **settings} for index in range(processes)],
        address,
        stop_requested,
        grace,
    )


async def _serve_nannies(
    workers: list[dict[str, Any]],
    address: str,
    stop_requested: Callable[[], bool] | None,
    grace: float,
) -> None:
    """Start one nanny per item of ``workers`` (its worker's settings) at once; serve them
    until they all finished; close them all however this ends. The worker processes are
    forked from one forkserver (see :mod:`.worker_processes`).

    Closing gives each worker :data:`~daskdeploy.backends.shared.nannies.WORKER_EXIT_GRACE`
    seconds before its nanny kills it, as the ``allocation`` backend's teardown does: a
    worker busy in a long task nobody waits for would keep the rank alive for minutes.
    """
    from distributed import Nanny

    # The worker processes set up their logging when they import distributed, before any
    # setting reaches them but their environment: tell them this rank's level (serving
    # ranks log errors only, see quiet_serving_logs), or every one prints its start-up
    # lines and, at the end, the tracebacks of connections closing.
    level = logging.getLogger("distributed").getEffectiveLevel()
    os.environ["DASK_LOGGING__DISTRIBUTED"] = logging.getLevelName(level).lower()
    # Their logs leave out connection-closed noise too, as this rank's do.
    preload = ["daskdeploy.backends.shared.quiet_worker"]
    with worker_processes.shared_forkserver():
        await _serve_started_nannies(
            [Nanny(address, preload=preload, **settings) for settings in workers],
            stop_requested,
            grace,
        )


async def _serve_started_nannies(
    nannies: list[Any], stop_requested: Callable[[], bool] | None, grace: float
) -> None:
    from distributed.core import Status

    from .nannies import WORKER_EXIT_GRACE

    async def close_all() -> None:
        await asyncio.gather(
            *(
                nanny.close(timeout=WORKER_EXIT_GRACE / 0.8, reason="daskdeploy: run ended")
                for nanny in nannies
            ),
            return_exceptions=True,
        )

    def stop_now() -> bool:
        # A worker that closes by itself (its scheduler closed) first tells its nanny so.
        # Closing the nannies then stops the worker processes through their stop queues,
        # which spares each process distributed's 2 s wait for that queue, and the race
        # in it that logs "Worker process died unexpectedly".
        if any(nanny.status == Status.closing_gracefully for nanny in nannies):
            return True
        return stop_requested is not None and stop_requested()

    try:
        started = await asyncio.gather(*nannies, return_exceptions=True)
        failed = [result for result in started if isinstance(result, BaseException)]
        if failed:
            raise failed[0]
        finished = asyncio.gather(*(nanny.finished() for nanny in nannies))
        await _serve_until_done(finished, close_all, stop_now, grace)
    finally:
        await close_all()


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
    layout: TaskLayout,
    workers: int,
    *,
    scheduler_file: Path | None = None,
    stop: list[Callable[[], Any]] | None = None,
    security: Any = None,
) -> Running:
    """Start the scheduler in this (the script's) process; one worker rank will join it
    with ``workers`` workers laid out as ``layout``."""
    cluster = scheduler_only_cluster(
        context.deployment_id, {"host": host}, options["dashboard"], scheduler_file, security
    )
    return running_with_layout(cluster, options, layout, workers, security, stop=list(stop or []))


def single_process(
    options: ResolvedOptions, context: StartContext, layout: TaskLayout, workers: int
) -> Running:
    """A world of one: scheduler and script here, ``workers`` workers laid out as ``layout``
    in child processes."""
    from distributed import LocalCluster

    security = None
    if options["tls"]:
        security = write_private(context.deployment_id, context.scratch_dir).security()
    cluster = LocalCluster(
        name=context.deployment_id,
        n_workers=workers,
        threads_per_worker=layout.threads,
        memory_limit=layout.memory or "auto",
        processes=True,
        host="127.0.0.1",
        protocol="tls://" if security is not None else None,
        security=security,
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        local_directory=str(context.scratch_dir),
        scheduler_kwargs={"dashboard": options["dashboard"]},
    )
    return running_with_layout(cluster, options, layout, workers, security)
