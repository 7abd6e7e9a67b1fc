"""Pure functions that shape batch job scripts and worker lifetimes.

Nothing here runs a command or reads the environment, so each function is tested against
golden files (``tests/golden/``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "WORKER_DIR_VARIABLE",
    "WorkerLifetime",
    "as_array_script",
    "lifetime_args",
    "worker_lifetime",
    "worker_scratch_lines",
]

NAMES_VARIABLE = "DASKDEPLOY_WORKER_NAMES"
#: Shell variable holding the worker's private spill directory (see worker_scratch_lines).
WORKER_DIR_VARIABLE = "DASKDEPLOY_WORKER_DIR"


def worker_scratch_lines(tag: str) -> list[str]:
    """Shell lines that make a private spill directory in ``$TMPDIR`` and remove it at exit.

    The directory's path is in ``$DASKDEPLOY_WORKER_DIR``; pass it to ``dask worker
    --local-directory``. ``tag`` (the deployment id) goes into its name.

    >>> for line in worker_scratch_lines("dd-1"):
    ...     print(line)
    DASKDEPLOY_WORKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/daskdeploy-dd-1-XXXXXX")"
    trap 'rm -rf "$DASKDEPLOY_WORKER_DIR"' EXIT
    """
    template = f"${{TMPDIR:-/tmp}}/daskdeploy-{tag}-XXXXXX"
    return [
        f'{WORKER_DIR_VARIABLE}="$(mktemp -d "{template}")"',
        f"trap 'rm -rf \"${WORKER_DIR_VARIABLE}\"' EXIT",
    ]


def as_array_script(script: str, worker_names: Sequence[str], name_in_script: str) -> str:
    """Turn the script of one worker job into a job array starting all ``worker_names``.

    Array task ``i`` starts the worker named ``worker_names[i]``, so the scheduler sees
    exactly the names it would see had each job been submitted on its own.

    Parameters
    ----------
    script
        Job script of one worker, as dask-jobqueue renders it.
    worker_names
        One name per array task.
    name_in_script
        The worker name that ``script`` passes to ``--name``.

    Raises
    ------
    ValueError
        When the script does not pass ``--name name_in_script`` exactly once, or has no
        ``#SBATCH`` header.

    Examples
    --------
    >>> print(as_array_script("#!/bin/bash\\n#SBATCH -J x\\nrun --name a", ["a", "b"], "a"))
    #!/bin/bash
    #SBATCH -J x
    #SBATCH --array=0-1
    DASKDEPLOY_WORKER_NAMES=(a b)
    run --name "${DASKDEPLOY_WORKER_NAMES[$SLURM_ARRAY_TASK_ID]}"
    """
    if not worker_names:
        raise ValueError("a job array needs at least one worker name")
    flag = re.compile(rf"--name {re.escape(name_in_script)}(?=\s|$)")
    if len(flag.findall(script)) != 1:
        raise ValueError(f"the job script must pass '--name {name_in_script}' exactly once")
    lines = script.splitlines()
    header_end = max(
        (i for i, line in enumerate(lines) if line.startswith("#SBATCH")), default=None
    )
    if header_end is None:
        raise ValueError("the job script has no #SBATCH header")
    # Output files named after the array task ("%A_%a"), as squeue and scancel name it.
    lines = [line.replace("%j", "%A_%a") if line.startswith("#SBATCH") else line for line in lines]
    names = " ".join(shlex.quote(name) for name in worker_names)
    lines[header_end + 1 : header_end + 1] = [
        f"#SBATCH --array=0-{len(worker_names) - 1}",
        f"{NAMES_VARIABLE}=({names})",
    ]
    body = "\n".join(lines)
    chosen = f'--name "${{{NAMES_VARIABLE}[$SLURM_ARRAY_TASK_ID]}}"'
    return flag.sub(lambda _: chosen, body) + ("\n" if script.endswith("\n") else "")


@dataclass(frozen=True)
class WorkerLifetime:
    """When a worker retires before its job's time limit.

    A worker retires after ``lifetime`` seconds, plus or minus up to ``stagger`` seconds
    so that workers of jobs started together do not all leave at once. Every worker is
    gone at least ``margin - stagger`` seconds before SLURM would kill its job.
    """

    lifetime: int
    stagger: int
    margin: int

    def worker_args(self) -> list[str]:
        """The ``dask worker`` arguments that set this lifetime."""
        return ["--lifetime", f"{self.lifetime}s", "--lifetime-stagger", f"{self.stagger}s"]


def worker_lifetime(walltime_seconds: int) -> WorkerLifetime:
    """Derive a worker lifetime from its job's time limit.

    The margin before the limit is 10% of the time limit, at least one minute and at most
    ten, but never more than half the limit; the stagger is a quarter of the margin.

    >>> worker_lifetime(3600)
    WorkerLifetime(lifetime=3240, stagger=90, margin=360)
    >>> worker_lifetime(300)
    WorkerLifetime(lifetime=240, stagger=15, margin=60)
    """
    if walltime_seconds <= 0:
        raise ValueError(f"the time limit must be positive, got {walltime_seconds}")
    margin = min(max(walltime_seconds // 10, 60), 600, walltime_seconds // 2)
    return WorkerLifetime(walltime_seconds - margin, margin // 4, margin)


def lifetime_args(setting: float | str, time_limit: int | None) -> list[str]:
    """``dask worker`` lifetime arguments for a ``lifetime`` option value.

    ``"auto"`` retires workers before ``time_limit`` seconds (none without a limit),
    ``"off"`` never; a number of seconds is used as given, staggered by a fifth.

    >>> lifetime_args(600.0, None), lifetime_args("auto", 300), lifetime_args("off", 300)
    (['--lifetime', '600s', '--lifetime-stagger', '120s'], \
['--lifetime', '240s', '--lifetime-stagger', '15s'], [])
    """
    if setting == "off":
        return []
    if setting == "auto":
        return worker_lifetime(time_limit).worker_args() if time_limit else []
    return ["--lifetime", f"{setting:g}s", "--lifetime-stagger", f"{setting / 5:g}s"]
