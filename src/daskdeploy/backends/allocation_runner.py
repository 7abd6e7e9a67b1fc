"""Runner mode of the ``allocation`` backend: ``srun -n N python script.py``.

Every task runs the same script. When it calls ``deploy()``:

* with 3 or more tasks, task 0 becomes the scheduler, task 1 returns from ``deploy()``
  with the client and runs the rest of the script, tasks 2 and up become workers;
* with 2 tasks, task 0 runs the scheduler in the background and the script, task 1 is
  the worker;
* with 1 task, the task runs the scheduler, one worker process and the script.

The scheduler and worker tasks never return from ``deploy()``: they serve until the
script's task closes its client (or exits, or dies), then exit with status 0, so ``srun``
ends with the script's own status. The tasks find the scheduler through a scheduler file
in a directory shared by the nodes, waited for with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from ..options import ResolvedOptions
from ..rendezvous import shared_rendezvous_dir, wait_for_scheduler_file
from ..scheduler_watch import preload_text
from ..slurmenv import Allocation
from .base import Running, StartContext, dashboard_link
from .scheduler_cluster import scheduler_only_cluster

__all__ = ["Roles", "start_in_step"]

logger = logging.getLogger(__name__)


class Roles:
    """Which task does what, for a step of ``ntasks`` tasks.

    >>> [Roles(n).of(rank) for n in (1, 2, 3) for rank in range(n)]
    ['all', 'scheduler+client', 'worker', 'scheduler', 'client', 'worker']
    """

    def __init__(self, ntasks: int) -> None:
        self.ntasks = ntasks

    def of(self, rank: int) -> str:
        if self.ntasks == 1:
            return "all"
        if self.ntasks == 2:
            return "scheduler+client" if rank == 0 else "worker"
        return {0: "scheduler", 1: "client"}.get(rank, "worker")

    @property
    def workers(self) -> int:
        return 1 if self.ntasks <= 2 else self.ntasks - 2


def scheduler_file_for(allocation: Allocation, environ: dict[str, str] | None = None) -> Path:
    """The scheduler file every task of this step agrees on."""
    env = os.environ if environ is None else environ
    step = env.get("SLURM_STEP_ID", "0")
    return shared_rendezvous_dir() / f"runner-{allocation.job_id}.{step}.json"


def start_in_step(
    options: ResolvedOptions,
    context: StartContext,
    allocation: Allocation,
    listen_host: str,
) -> Running:
    """Take this task's role; return the client's :class:`Running`, or never return."""
    roles = Roles(allocation.ntasks)
    role = roles.of(allocation.rank)
    scheduler_file = scheduler_file_for(allocation)
    threads = _threads(options, allocation)
    memory = options["memory_per_worker"] or allocation.memory_per_task or "auto"
    if role == "scheduler":
        _serve(
            _run_scheduler(scheduler_file, listen_host, options["dashboard"], options["timeout"])
        )
    if role == "worker":
        _serve(
            _run_worker(
                scheduler_file,
                threads,
                memory,
                f"{context.deployment_id}-{allocation.rank}",
                context.scratch_dir,
                options["timeout"],
            )
        )
    if role == "all":
        return _start_single(options, context, threads, memory)
    if role == "scheduler+client":
        return _start_scheduler_here(options, context, scheduler_file, listen_host)
    address = wait_for_scheduler_file(scheduler_file, options["timeout"])
    return Running(
        address=address,
        expected_workers=roles.workers,
        # The scheduler task closes when this client leaves; the file goes with it.
        stop=[lambda: scheduler_file.unlink(missing_ok=True)],
    )


def _threads(options: ResolvedOptions, allocation: Allocation) -> int:
    explicit = options.sources.get("threads_per_worker", "default") != "default"
    return options["threads_per_worker"] if explicit else allocation.cpus_per_task


def _serve(coroutine: Any) -> None:
    """Run a scheduler or worker until it closes, then end this task with status 0.

    ``SystemExit`` passes through ``deploy()``, which removes the task's scratch directory
    on its way out.
    """
    # Serving tasks log warnings and errors only; the script's task keeps the summary line.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coroutine)
    raise SystemExit(0)


async def _run_scheduler(scheduler_file: Path, host: str, dashboard: bool, timeout: float) -> None:
    from distributed import Scheduler

    try:
        async with Scheduler(
            host=host,
            port=0,
            dashboard=dashboard,
            dashboard_address="127.0.0.1:0",
            scheduler_file=str(scheduler_file),
            # Closes when the script's client leaves, or never comes within `timeout`.
            preload=[preload_text(timeout)],
        ) as scheduler:
            await scheduler.finished()
    finally:
        scheduler_file.unlink(missing_ok=True)


async def _run_worker(
    scheduler_file: Path,
    threads: int,
    memory: Any,
    name: str,
    local_directory: Path,
    timeout: float,
) -> None:
    from distributed import Worker

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for_scheduler_file, scheduler_file, timeout)
    async with Worker(
        scheduler_file=str(scheduler_file),
        nthreads=threads,
        memory_limit=memory,
        name=name,
        local_directory=str(local_directory),
        dashboard=False,
        death_timeout=timeout,
    ) as worker:
        await worker.finished()


def _start_scheduler_here(
    options: ResolvedOptions, context: StartContext, scheduler_file: Path, host: str
) -> Running:
    cluster = scheduler_only_cluster(
        context.deployment_id, {"host": host}, options["dashboard"], scheduler_file
    )
    return Running(
        address=cluster.scheduler_address,
        cluster=cluster,
        expected_workers=1,
        dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
        stop=[lambda: scheduler_file.unlink(missing_ok=True)],
    )


def _start_single(
    options: ResolvedOptions, context: StartContext, threads: int, memory: Any
) -> Running:
    from distributed import LocalCluster

    cluster = LocalCluster(
        name=context.deployment_id,
        n_workers=1,
        threads_per_worker=threads,
        memory_limit=memory,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        local_directory=str(context.scratch_dir),
        scheduler_kwargs={"dashboard": options["dashboard"]},
    )
    return Running(
        address=cluster.scheduler_address,
        cluster=cluster,
        expected_workers=1,
        dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
    )
