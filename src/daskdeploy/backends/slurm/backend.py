"""The ``slurm`` backend: workers arrive as SLURM batch jobs (dask-jobqueue's SLURMCluster).

The job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) on
:data:`~daskdeploy.backends.slurm.system.SLURM`, plus the SLURM-only commands
``daskdeploy sbatch`` and ``daskdeploy hostfile``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ..jobqueue.backend import JobQueueBackend
from .system import SLURM

if TYPE_CHECKING:
    import click

__all__ = ["SlurmBackend"]


class SlurmBackend(JobQueueBackend):
    """Worker processes in SLURM batch jobs, submitted from here (dask-jobqueue)."""

    system = SLURM
    run_examples: ClassVar[tuple[str, ...]] = (
        "daskdeploy run --backend slurm -n 8 --option walltime=01:00:00 my_analysis.py",
        "daskdeploy run --backend slurm --dry-run my_analysis.py   # job script + sbatch check",
    )

    def cli_commands(self) -> Sequence[click.Command]:
        """``jobscript``, ``daskdeploy sbatch`` (a batch script for the allocation backend)
        and ``hostfile``."""
        from .commands import COMMANDS

        return (*super().cli_commands(), *COMMANDS)
