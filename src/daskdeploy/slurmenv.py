"""What a SLURM job's environment says about its allocation (pure functions).

Inside ``sbatch``/``salloc`` (and in every ``srun`` task) SLURM describes the allocation in
environment variables. :class:`Allocation` reads them into one value, so the backends that
run inside an allocation never parse ``SLURM_*`` variables themselves.

:func:`task_layout` turns a task's CPUs and memory into the Dask workers it runs
(:class:`TaskLayout`), the one rule the ``allocation`` backend (``srun`` step and runner
mode) and the ``mpi`` backend share: by default one single-threaded worker process per CPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .options import ResolvedOptions

__all__ = [
    "MIN_WORKER_MEMORY",
    "Allocation",
    "TaskLayout",
    "in_allocation",
    "parse_tasks_per_node",
    "task_layout",
]

_MIB = 1024 * 1024

#: The least memory limit :func:`task_layout` gives a worker process by splitting its
#: task's memory; below it a task runs fewer processes, with more threads each.
MIN_WORKER_MEMORY = 256 * _MIB


def parse_tasks_per_node(text: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` (e.g. ``"2(x3),1"``) into one count per node.

    >>> parse_tasks_per_node("2(x3),1")
    [2, 2, 2, 1]
    """
    counts: list[int] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        if match is None:
            raise ValueError(f"cannot read SLURM_TASKS_PER_NODE={text!r}")
        counts += [int(match[1])] * int(match[2] or 1)
    return counts


def in_allocation(environ: Mapping[str, str]) -> bool:
    """True inside a SLURM job (a batch script, an ``salloc`` shell or an ``srun`` task)."""
    return bool(environ.get("SLURM_JOB_ID"))


@dataclass(frozen=True)
class Allocation:
    """The resources of the SLURM job this process runs in.

    Attributes
    ----------
    job_id
        ``SLURM_JOB_ID``.
    ntasks
        Tasks the job was given (``SLURM_NTASKS``; 1 when unset).
    cpus_per_task
        ``SLURM_CPUS_PER_TASK`` (1 when the job was not submitted with ``-c``).
    tasks_per_node
        Task count of each node, in node order.
    memory_per_task
        Bytes each task may use, from ``--mem-per-cpu`` or ``--mem`` (per node, shared by
        the node's tasks); ``None`` when the job set no memory limit.
    in_step
        True in an ``srun`` task (``SLURM_STEP_ID`` set), False in the batch script or
        ``salloc`` shell.
    rank
        ``SLURM_PROCID`` in an ``srun`` task, else 0.
    """

    job_id: str
    ntasks: int
    cpus_per_task: int
    tasks_per_node: tuple[int, ...]
    memory_per_task: int | None
    in_step: bool
    rank: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Allocation:
        """Read the allocation from SLURM's variables in ``environ``.

        Raises
        ------
        ValueError
            When ``environ`` is not that of a SLURM job.
        """
        if not in_allocation(environ):
            raise ValueError("not inside a SLURM job: SLURM_JOB_ID is not set")
        ntasks = int(environ.get("SLURM_NTASKS") or environ.get("SLURM_NPROCS") or 1)
        cpus = int(environ.get("SLURM_CPUS_PER_TASK") or 1)
        per_node = parse_tasks_per_node(environ.get("SLURM_TASKS_PER_NODE", "") or str(ntasks))
        memory = None
        if environ.get("SLURM_MEM_PER_CPU"):
            memory = int(environ["SLURM_MEM_PER_CPU"]) * _MIB * cpus
        elif environ.get("SLURM_MEM_PER_NODE"):
            memory = int(environ["SLURM_MEM_PER_NODE"]) * _MIB // max(max(per_node), 1)
        # The batch step reports SLURM_STEP_ID only in some versions, and then as "batch"
        # or 4294967294; srun tasks always have a numeric step and SLURM_PROCID.
        step = environ.get("SLURM_STEP_ID", "")
        in_step = step.isdigit() and int(step) < 4294967290 and "SLURM_PROCID" in environ
        return cls(
            job_id=environ["SLURM_JOB_ID"],
            ntasks=ntasks,
            cpus_per_task=cpus,
            tasks_per_node=tuple(per_node),
            memory_per_task=memory,
            in_step=in_step,
            rank=int(environ.get("SLURM_PROCID") or 0) if in_step else 0,
        )

    def worker_layout(self, options: ResolvedOptions) -> TaskLayout:
        """The workers each task of this job runs, under ``options`` (see :func:`task_layout`).

        ``threads_per_worker`` counts as set when its source is anything but the packaged
        default (a keyword, ``--threads-per-worker``, ``--option``, dask config, a profile),
        even when it is set to 1; ``memory_per_worker`` when it is not null.
        """
        explicit = options.sources.get("threads_per_worker", "default") != "default"
        return task_layout(
            self.cpus_per_task,
            self.memory_per_task,
            threads=options["threads_per_worker"] if explicit else None,
            memory=options["memory_per_worker"],
        )


@dataclass(frozen=True)
class TaskLayout:
    """The Dask workers one SLURM task (or MPI rank) runs.

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
                f"{cpus} CPUs per SLURM task, threads_per_worker={threads} set: one worker per task"
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
            f"{cpus} CPUs per SLURM task: one single-threaded worker process per CPU; "
            f"set threads_per_worker for threads"
        )
    elif cpus > 1:
        from dask.utils import format_bytes

        reason = (
            f"{cpus} CPUs per SLURM task but {format_bytes(task_memory or 0)}: {processes} "
            f"worker process{'es' if processes > 1 else ''} of {cpus // processes} threads, "
            f"since one per CPU would leave each less than {format_bytes(MIN_WORKER_MEMORY)}; "
            f"ask for more memory (--mem-per-cpu) for single-threaded workers"
        )
    return TaskLayout(processes, cpus // processes, memory, reason)
