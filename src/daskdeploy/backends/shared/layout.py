"""How many Dask worker processes a task runs, with how many threads and how much memory.

:func:`task_layout` is the one rule the in-place runners share (the ``allocation``
backend's ``srun`` tasks and the ``mpi`` backend's ranks): by default one single-threaded
worker process per CPU of the task, because pure-Python tasks hold the GIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["MIN_WORKER_MEMORY", "TaskLayout", "TaskResources", "layout_for", "task_layout"]

_MIB = 1024 * 1024

#: The least memory limit :func:`task_layout` gives a worker process by splitting its
#: task's memory; below it a task runs fewer processes, with more threads each.
MIN_WORKER_MEMORY = 256 * _MIB


@dataclass(frozen=True)
class TaskResources:
    """The CPUs and memory each task of a job may use, as its batch system granted them.

    Attributes
    ----------
    cpus
        CPUs of each task.
    memory
        Bytes each task may use; ``None`` when the job set no memory limit.
    unit
        What a task is called in messages (e.g. the batch system's word for it).
    """

    cpus: int
    memory: int | None
    unit: str = "task"


def layout_for(resources: TaskResources, options: ResolvedOptions) -> TaskLayout:
    """The workers each task with ``resources`` runs, under ``options`` (:func:`task_layout`).

    ``threads_per_worker`` counts as set when its source is anything but the packaged
    default (a keyword, ``--threads-per-worker``, ``--option``, dask config, a profile),
    even when it is set to 1; ``memory_per_worker`` when it is not null.
    """
    explicit = options.sources.get("threads_per_worker", "default") != "default"
    return task_layout(
        resources.cpus,
        resources.memory,
        threads=options["threads_per_worker"] if explicit else None,
        memory=options["memory_per_worker"],
        unit=resources.unit,
    )


@dataclass(frozen=True)
class TaskLayout:
    """The Dask workers one task (a batch-system task, an MPI rank) runs.

    Attributes
    ----------
    processes
        Worker processes per task (at most; see :meth:`processes_in`).
    threads
        Threads of each worker process.
    memory
        Memory limit of each worker process in bytes; ``None`` leaves it to Dask's
        ``auto``.
    reason
        Why the task runs these workers, in a few words for the start-up line and
        ``--dry-run``; ``None`` when there is nothing to explain (a task of one CPU).
    """

    processes: int
    threads: int
    memory: int | None
    reason: str | None = None

    def tasks_for(self, workers: int) -> int:
        """How many tasks ``workers`` worker processes take, ``processes`` per task.

        >>> TaskLayout(processes=4, threads=1, memory=None).tasks_for(6)
        2
        """
        return -(-workers // self.processes)

    def processes_in(self, index: int, workers: int | None = None) -> int:
        """Worker processes of the ``index``-th worker task (from 0) when ``workers`` caps
        the total: the tasks fill up in order, so only the last one may run fewer.

        >>> layout = TaskLayout(processes=4, threads=1, memory=None)
        >>> [layout.processes_in(index, workers=6) for index in range(3)]
        [4, 2, 0]
        """
        if workers is None:
            return self.processes
        return max(0, min(self.processes, workers - index * self.processes))

    def memory_text(self) -> str:
        """The memory limit of each worker, for messages."""
        from dask.utils import format_bytes

        return format_bytes(self.memory) if self.memory else "Dask's auto share of the node"


def task_layout(
    cpus: int,
    task_memory: int | None,
    *,
    threads: int | None = None,
    memory: int | None = None,
    unit: str = "task",
) -> TaskLayout:
    """The workers a task of ``cpus`` CPUs and ``task_memory`` bytes runs.

    The rule that respects the GIL: with ``threads`` unset, the task runs one
    single-threaded worker process per CPU, and they split the task's memory. Pure-Python
    tasks hold the GIL, so threads of one process would run them no faster than one.

    * ``threads`` set (the user set ``threads_per_worker``, e.g. for NumPy code that
      releases the GIL): one worker per task with that many threads and the task's
      memory (or ``memory``).
    * Otherwise ``cpus`` processes of 1 thread, each with ``task_memory / cpus`` bytes,
      or ``memory`` when given; a task without a memory limit leaves it to Dask's ``auto``.
    * When ``task_memory / cpus`` would fall below :data:`MIN_WORKER_MEMORY` (256 MiB),
      the task runs fewer processes with more threads each: as many processes as the
      memory allows, rounded down to a divisor of ``cpus`` so that every CPU has a
      thread and every worker the same threads.

    Parameters
    ----------
    cpus
        CPUs of the task (``--cpus-per-task``).
    task_memory
        Memory of the task in bytes (``None``: the job set no limit).
    threads
        Threads per worker the user asked for, or ``None`` (left at its default).
    memory
        Memory limit per worker process the user asked for, or ``None``.
    unit
        What a task is called in :attr:`TaskLayout.reason` (e.g. ``"MPI rank"``).

    Returns
    -------
    TaskLayout
        The processes, threads and memory of the task's workers, and why.

    Examples
    --------
    >>> def show(layout):
    ...     return layout.processes, layout.threads, layout.memory
    >>> show(task_layout(4, 4 * 2**30))
    (4, 1, 1073741824)
    >>> show(task_layout(4, 600 * 2**20))  # 150 MiB each would be too little
    (2, 2, 314572800)
    >>> show(task_layout(4, None, threads=4))
    (1, 4, None)
    """
    if threads is not None:
        reason = None
        if cpus > 1:
            reason = (
                f"{cpus} CPUs per {unit}, threads_per_worker={threads} set: one worker per task"
            )
        return TaskLayout(1, threads, memory or task_memory, reason)
    processes = cpus
    if memory is None and task_memory is not None:
        fits = max(1, task_memory // MIN_WORKER_MEMORY)
        processes = max(
            count for count in range(1, cpus + 1) if cpus % count == 0 and count <= fits
        )
        memory = task_memory // processes
    reason = None
    if processes > 1 and processes == cpus:
        reason = (
            f"{cpus} CPUs per {unit}: one single-threaded worker process per CPU; "
            f"set threads_per_worker for threads"
        )
    elif cpus > 1:
        from dask.utils import format_bytes

        reason = (
            f"{cpus} CPUs per {unit} but {format_bytes(task_memory or 0)}: {processes} "
            f"worker process{'es' if processes > 1 else ''} of {cpus // processes} threads, "
            f"since one per CPU would leave each less than {format_bytes(MIN_WORKER_MEMORY)}; "
            f"ask for more memory (--mem-per-cpu) for single-threaded workers"
        )
    return TaskLayout(processes, cpus // processes, memory, reason)
