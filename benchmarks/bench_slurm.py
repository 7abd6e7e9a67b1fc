"""Benchmark daskdeploy's ``slurm`` backend against a hand-built dask-jobqueue ``SLURMCluster``.

One run, one private SLURM cluster on localhost (:class:`daskdeploy.testing.slurm.LocalSlurm`,
4 nodes x 8 CPUs by default; it needs root and ``apt-get install slurm-wlm munge``)::

    python benchmarks/bench_slurm.py [--workers 2,8,16] [--repeats 3] [--smoke] [--json PATH]

This is ``bench_jobqueue.py --system slurm`` (the same code measures SGE with ``--system
sge``); its module docstring describes the measurements. In short:

1. **Start-up at scale.** For every N in ``--workers``: ``daskdeploy.deploy("slurm",
   workers=N, quiet=True)`` against ``SLURMCluster(cores=1, processes=1, memory="1GiB",
   ...)``, ``cluster.scale(N)`` and ``Client(cluster).wait_for_workers(N)``, timed until
   ``squeue`` (polled every 50 ms from a thread) lists all N jobs RUNNING and until N
   workers are connected. Targets: jobs running <= 0.7x raw at N=16 (one job array
   instead of N ``sbatch`` calls); connected <= 1.0x raw at every N.
2. **Start-up CPU of one worker** (N=1): user + system CPU seconds of the worker job's
   processes at connect.

It prints a table and writes JSON (default ``benchmarks/results/slurm.json``), never
fails on a missed target, and exits with status 2, saying why, when no local SLURM
cluster can run here. :func:`main` returns the JSON's content, so a smoke test can run
``main(["--smoke", "--json", str(tmp_path / "s.json")])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_jobqueue
from bench_jobqueue import SLURM, QueueWatcher, format_report
from common import LoadMeter

__all__ = ["QueueWatcher", "Runner", "format_report", "main"]


class Runner(bench_jobqueue.Runner):
    """:class:`bench_jobqueue.Runner` on SLURM: ``Runner(slurm, meter, args, scratch)``.

    ``startup.py`` times its raw ``slurm`` side with ``_start_raw``.
    """

    def __init__(self, slurm: Any, meter: LoadMeter, args: Any, scratch: Path) -> None:
        super().__init__(SLURM, slurm, meter, args, scratch)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Start a private SLURM cluster, run the benchmark, print the table, write the JSON.

    See :func:`bench_jobqueue.main`; the command line is that of ``bench_jobqueue.py``
    without ``--system``.
    """
    return bench_jobqueue.main(argv, system="slurm", prog="bench_slurm.py")


if __name__ == "__main__":
    main()
