"""What a SLURM job's environment says about its allocation (pure functions).

Inside ``sbatch``/``salloc`` (and in every ``srun`` task) SLURM describes the allocation in
environment variables. :class:`Allocation` reads them into one value, so the backends that
run inside an allocation never parse ``SLURM_*`` variables themselves.

:attr:`Allocation.task_resources` are the CPUs and memory of each task, from which
:func:`~daskdeploy.backends.shared.layout.layout_for` makes the Dask workers it runs: the
rule the ``allocation`` backend (``srun`` step and runner mode) follows, and the ``mpi``
backend too when its ranks run as the tasks of a SLURM job (through
:meth:`~daskdeploy.backends.base.Backend.task_resources`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...options import ResolvedOptions

from ..shared.layout import TaskLayout, TaskResources, layout_for

__all__ = [
    "Allocation",
    "in_allocation",
    "parse_tasks_per_node",
]

_MIB = 1024 * 1024

#: How a SLURM task is named in the reasons a layout gives.
TASK_UNIT = "SLURM task"


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

    @property
    def task_resources(self) -> TaskResources:
        """The CPUs and memory of each task of this job."""
        return TaskResources(self.cpus_per_task, self.memory_per_task, TASK_UNIT)

    def worker_layout(self, options: ResolvedOptions) -> TaskLayout:
        """The workers each task of this job runs, under ``options`` (see :func:`layout_for`)."""
        return layout_for(self.task_resources, options)
