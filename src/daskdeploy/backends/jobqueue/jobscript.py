"""Pure functions that shape batch job scripts, time limits and worker lifetimes.

Nothing here runs a command or reads the environment, so each function is tested against
golden files (``tests/golden/``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .system import JobArrays

__all__ = [
    "WORKER_DIR_VARIABLE",
    "WorkerLifetime",
    "as_array_script",
    "lifetime_args",
    "parse_walltime",
    "worker_lifetime",
    "worker_scratch_lines",
]

NAMES_VARIABLE = "DASKDEPLOY_WORKER_NAMES"
#: Shell variable holding the worker's private spill directory (see worker_scratch_lines).
WORKER_DIR_VARIABLE = "DASKDEPLOY_WORKER_DIR"


def worker_scratch_lines(tag: str) -> list[str]:
    """Shell lines that make a private spill directory in the job's temporary directory.

    The directory's path is in ``$DASKDEPLOY_WORKER_DIR``; pass it to ``dask worker
    --local-directory``. ``tag`` (the deployment id) goes into its name. It is made in
    ``$TMPDIR``, else ``$TMP`` (Grid Engine sets only ``TMP`` in batch jobs, to a directory
    of the job's own that it removes when the job ends, however it ends), else ``/tmp``.

    bash runs an ``EXIT`` trap when the script ends, but not when a signal kills it, and
    ending a job (``scancel``, ``qdel``, the time limit) starts with ``SIGTERM``. The second
    trap turns those signals into an exit: bash waits for the worker, which shuts down on the
    same signal, then runs the ``EXIT`` trap. A ``SIGKILL`` still leaves the directory
    behind; ``daskdeploy cleanup`` removes those it can reach.

    >>> for line in worker_scratch_lines("dd-1"):
    ...     print(line)
    DASKDEPLOY_WORKER_DIR="$(mktemp -d "${TMPDIR:-${TMP:-/tmp}}/daskdeploy-dd-1-XXXXXX")"
    trap 'rm -rf "$DASKDEPLOY_WORKER_DIR"' EXIT
    trap 'exit 143' TERM INT HUP
    """
    template = f"${{TMPDIR:-${{TMP:-/tmp}}}}/daskdeploy-{tag}-XXXXXX"
    return [
        f'{WORKER_DIR_VARIABLE}="$(mktemp -d "{template}")"',
        f"trap 'rm -rf \"${WORKER_DIR_VARIABLE}\"' EXIT",
        "trap 'exit 143' TERM INT HUP",
    ]


def as_array_script(
    script: str,
    worker_names: Sequence[str],
    name_in_script: str,
    *,
    arrays: JobArrays,
    directive_prefix: str,
) -> str:
    """Turn the script of one worker job into a job array starting all ``worker_names``.

    Array task ``i`` starts the worker named ``worker_names[i]``, so the scheduler sees
    exactly the names it would see had each job been submitted on its own. The array's
    size goes in the header (:meth:`JobArrays.flag`), so the saved script shows it.

    Parameters
    ----------
    script
        Job script of one worker, as dask-jobqueue renders it.
    worker_names
        One name per array task.
    name_in_script
        The worker name that ``script`` passes to ``--name``.
    arrays
        How the batch system spells arrays (the task index variable, its first value,
        per-task output file names).
    directive_prefix
        How the script's directive lines start.

    Raises
    ------
    ValueError
        When the script does not pass ``--name name_in_script`` exactly once, or has no
        directive header.

    Examples
    --------
    >>> sge = JobArrays("-t {first}-{last}", "SGE_TASK_ID", 1, "{array}.{index}")
    >>> print(as_array_script("#!/bin/bash\\n#$ -N x\\nrun --name a", ["a", "b"], "a",
    ...                       arrays=sge, directive_prefix="#$"))
    #!/bin/bash
    #$ -N x
    #$ -t 1-2
    DASKDEPLOY_WORKER_NAMES=(a b)
    run --name "${DASKDEPLOY_WORKER_NAMES[$((SGE_TASK_ID - 1))]}"
    """
    if not worker_names:
        raise ValueError("a job array needs at least one worker name")
    flag = re.compile(rf"--name {re.escape(name_in_script)}(?=\s|$)")
    if len(flag.findall(script)) != 1:
        raise ValueError(f"the job script must pass '--name {name_in_script}' exactly once")
    lines = script.splitlines()
    header_end = max(
        (i for i, line in enumerate(lines) if line.startswith(directive_prefix + " ")),
        default=None,
    )
    if header_end is None:
        raise ValueError(f"the job script has no {directive_prefix} header")

    def per_task(line: str) -> str:
        if line.startswith(directive_prefix + " "):
            for old, new in arrays.output_substitutions:
                line = line.replace(old, new)
        return line

    lines = [per_task(line) for line in lines]
    names = " ".join(shlex.quote(name) for name in worker_names)
    lines[header_end + 1 : header_end + 1] = [
        f"{directive_prefix} {arrays.flag(len(worker_names))}",
        f"{NAMES_VARIABLE}=({names})",
    ]
    body = "\n".join(lines)
    index = f"${arrays.index_variable}"
    if arrays.first_index:
        index = f"$(({arrays.index_variable} - {arrays.first_index}))"
    chosen = f'--name "${{{NAMES_VARIABLE}[{index}]}}"'
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


_WALLTIME = re.compile(
    r"^(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$",
)


def parse_walltime(text: str) -> int:
    """Convert a time limit to seconds.

    Accepts ``HH:MM:SS`` and SLURM's other forms: ``M`` (minutes), ``M:S``, ``D-H``,
    ``D-H:M`` and ``D-H:M:S``. Every batch system's backend reads its ``walltime``
    option this way and spells the limit as its system expects.

    >>> parse_walltime("00:30:00"), parse_walltime("90"), parse_walltime("1-12")
    (1800, 5400, 129600)

    Raises
    ------
    ValueError
        For anything else (including ``UNLIMITED``, which has no length).
    """
    match = _WALLTIME.match(str(text).strip())
    if match is None:
        raise ValueError(
            f"expected a time limit such as '00:30:00', '90' (minutes) or '1-12:00:00', "
            f"got {text!r}"
        )
    days = int(match["days"] or 0)
    parts = [int(p) for p in (match["a"], match["b"], match["c"]) if p is not None]
    if match["days"] is not None:
        hours, minutes, seconds = [*parts, 0, 0][:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"expected a positive time limit, got {text!r}")
    return total
