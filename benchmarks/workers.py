"""Section ``workers``: start-up CPU of one worker and time to connect 16 and 64, on SLURM.

Runs :mod:`bench_jobqueue` (``--system slurm``: daskdeploy's ``slurm`` backend against
dask-jobqueue's ``SLURMCluster`` doing the same work, alternating, in the same run) on a
private SLURM cluster of 8 nodes x 8 CPUs, room for 64 one-core workers. Reported:

* per-worker start-up CPU: user + system seconds of a worker job's whole process tree
  (the nanny and its worker) from its start until it is connected, N=1;
* the same, averaged over the workers, and the wall time until all are connected, for
  N = 16 and 64.

Targets (daskdeploy / raw, medians): start-up CPU of one worker <= 0.5; connected <= 1.0
at 16 and at 64 workers. With ``--smoke``: one worker, one run per side, to check it runs.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CONNECTED_TARGET", "CPU_TARGET", "run"]

CPU_TARGET = 0.5
CONNECTED_TARGET = 1.0
NODES, CPUS_PER_NODE = 8, 8


def run(*, repeats: int, smoke: bool, meter: Any, notes: list[str]) -> dict[str, Any]:
    """Run the SLURM worker benchmark; return its JSON plus this section's targets.

    ``meter`` is unused: :mod:`bench_jobqueue` measures the background load itself.
    """
    import bench_jobqueue

    counts = (1,) if smoke else (1, 16, 64)
    with tempfile.TemporaryDirectory(prefix="daskdeploy-bench-workers-") as scratch:
        argv = [
            "--workers",
            ",".join(map(str, counts)),
            "--nodes",
            str(NODES),
            "--cpus-per-node",
            str(CPUS_PER_NODE),
            "--repeats",
            str(1 if smoke else max(2, min(repeats, 3))),
            "--json",
            str(Path(scratch) / "workers.json"),
            *(["--smoke"] if smoke else []),
        ]
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                result = bench_jobqueue.main(argv, system="slurm", prog="workers")
        except SystemExit as exc:  # no private SLURM here: reported as skipped
            reason = f"bench_jobqueue could not run SLURM (exit {exc.code}): {printed.getvalue()}"
            notes.append(f"workers: skipped: {reason.strip()}")
            return {"error": "skipped", "skipped": {"slurm": reason.strip()}}
    result["report"] = printed.getvalue()
    result["targets"] = _targets(result, counts)
    return result


def _targets(result: dict[str, Any], counts: tuple[int, ...]) -> list[dict[str, Any]]:
    cpu = result.get("worker_cpu") or {}
    value = cpu.get("ratio")
    targets = [
        {
            "name": "workers: slurm start-up CPU of one worker vs dask_jobqueue.SLURMCluster",
            "target": f"<= {CPU_TARGET}",
            "value": value,
            "met": None if value is None else value <= CPU_TARGET,
        }
    ]
    for entry in result.get("scaling", []):
        if entry.get("workers") == 1 and len(counts) > 1:
            continue
        connected = (entry.get("ratio") or {}).get("connected")
        targets.append(
            {
                "name": f"workers: slurm {entry['workers']} workers connected vs SLURMCluster",
                "target": f"<= {CONNECTED_TARGET}",
                "value": connected,
                "met": None if connected is None else connected <= CONNECTED_TARGET,
            }
        )
    return targets


def rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: N, connected s (daskdeploy, raw, ratio), CPU s per worker (same)."""

    def text(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = []
    for entry in result.get("scaling", []):
        medians = entry.get("medians", {})
        ours, raw = medians.get("daskdeploy", {}), medians.get("raw", {})
        cpu_ours, cpu_raw = ours.get("worker_cpu_seconds_mean"), raw.get("worker_cpu_seconds_mean")
        cpu_ratio = cpu_ours / cpu_raw if cpu_ours and cpu_raw else None
        table.append(
            [
                str(entry.get("workers")),
                text(ours.get("connected"), ".2f"),
                text(raw.get("connected"), ".2f"),
                text((entry.get("ratio") or {}).get("connected"), ".2f"),
                text(cpu_ours, ".2f"),
                text(cpu_raw, ".2f"),
                text(cpu_ratio, ".2f"),
            ]
        )
    return table
