"""``sbatch --wait`` for the docs' console blocks, polling 5 times a second.

The real ``sbatch --wait`` checks the job 2, 10, 42, 74, ... s after submitting it (it
sleeps 2 s, then 8 s, then 32 s at a time), so a 10 s job holds the shell ~42 s. The
command :func:`install` puts first on a block's ``PATH`` submits with the real sbatch,
prints what sbatch prints, and waits by asking ``scontrol show job`` every 0.2 s; its exit
status is the one ``man sbatch`` gives ``--wait``: the job's exit code, 1 when the job was
ended by a signal, the highest of an array's tasks. Any other sbatch command line runs
the real sbatch unchanged (``exec``), so the jobs, and whatever they submit, are SLURM's.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

WAIT_OPTIONS = ("--wait", "-W")
QUIET_OPTIONS = ("--quiet", "-Q")
#: Job states that end a job (sbatch's IS_JOB_FINISHED); any other state is waited out.
FINISHED = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL"}
    | {"OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
)
POLL_SECONDS = 0.2


def install(bindir: Path, real_sbatch: str) -> Path:
    """Write ``bindir/sbatch``, running this module with ``real_sbatch``; return its path."""
    bindir.mkdir(parents=True, exist_ok=True)
    wrapper = bindir / "sbatch"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from job_wait import sbatch\n"
        f"sys.exit(sbatch({real_sbatch!r}, sys.argv[1:]))\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def _wait_option(args: Sequence[str]) -> int | None:
    """Where ``--wait`` is among the options before the script, or None.

    Only a leading run of ``-x``/``--xx`` words is searched: past the first other word
    (the script, or an option's value) the real sbatch decides, waiting its own way.
    """
    for index, arg in enumerate(args):
        if not arg.startswith("-"):
            return None
        if arg in WAIT_OPTIONS:
            return index
    return None


def exit_status(records: str) -> int | None:
    """``sbatch --wait``'s exit status from ``scontrol -o show job`` lines; None while
    a job (or an array task) has not ended, or when no job is shown."""
    status = None
    for line in records.splitlines():
        state = re.search(r"\bJobState=(\S+)", line)
        code = re.search(r"\bExitCode=(\d+):(\d+)", line)
        if state is None or code is None:
            continue
        if state[1] not in FINISHED:
            return None
        status = max(status or 0, 1 if int(code[2]) else int(code[1]))
    return status


def sbatch(real: str, args: Sequence[str]) -> int:
    """Run ``real`` with ``args``; for ``--wait``, submit, print its line and wait fast."""
    index = _wait_option(args)
    if index is None:
        os.execv(real, [real, *args])
    rest = [*args[:index], *args[index + 1 :]]
    submitted = subprocess.run([real, "--parsable", *rest], stdout=subprocess.PIPE, text=True)
    if submitted.returncode != 0:
        sys.stdout.write(submitted.stdout)
        return submitted.returncode
    job_id, _, cluster = submitted.stdout.strip().partition(";")
    options = list(itertools.takewhile(lambda arg: arg.startswith("-"), rest))
    if "--parsable" in options:
        print(submitted.stdout.strip(), flush=True)
    elif not any(option in options for option in QUIET_OPTIONS):
        on = f" on cluster {cluster}" if cluster else ""
        print(f"Submitted batch job {job_id}{on}", flush=True)
    scontrol = shutil.which("scontrol", path=os.path.dirname(real)) or "scontrol"
    while True:
        time.sleep(POLL_SECONDS)
        shown = subprocess.run(
            [scontrol, "-o", "show", "job", job_id], capture_output=True, text=True
        )
        if "Invalid job id" in shown.stderr:
            print(
                f"sbatch: error: Job {job_id} no longer found and exit code not found",
                file=sys.stderr,
            )
            return 1
        status = exit_status(shown.stdout) if shown.returncode == 0 else None
        if status is not None:
            return status
