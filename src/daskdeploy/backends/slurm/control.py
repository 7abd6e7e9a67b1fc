"""Talking to SLURM through its client commands: check, submit, list and cancel jobs.

Shared by the backends that use SLURM. Every call has a deadline and failures carry what
the SLURM command printed (see :mod:`daskdeploy.commands`). Jobs are found by their job
name, which daskdeploy sets to the deployment id, so only a deployment's own jobs are ever
listed or cancelled.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...commands import CommandError, missing_commands, run_command
from ..jobqueue.jobscript import parse_walltime

__all__ = [
    "CLIENT_COMMANDS",
    "SlurmJob",
    "cancel_jobs",
    "cancel_named_or_listed",
    "check_controller",
    "hostnames",
    "job_state",
    "list_jobs",
    "list_my_jobs",
    "node_addresses",
    "parse_walltime",
    "submit",
    "test_submit",
    "time_left",
    "tools_missing_reason",
]

#: SLURM client commands daskdeploy needs on the submitting host.
CLIENT_COMMANDS = ("sbatch", "squeue", "scancel", "scontrol")

_QUICK = 20.0  # seconds: a healthy controller answers in well under a second


@dataclass(frozen=True)
class SlurmJob:
    """One row of ``squeue``: a job (or array task) and why it is not running yet."""

    id: str
    name: str
    state: str
    reason: str
    nodes: str

    def describe(self) -> str:
        """``"42_3 PENDING (Resources)"`` style text for messages."""
        text = f"{self.id} {self.state}"
        if self.reason and self.reason not in ("None", "(null)"):
            text += f" ({self.reason})"
        if self.nodes and self.state == "RUNNING":
            text += f" on {self.nodes}"
        return text


def tools_missing_reason() -> str | None:
    """Say which SLURM client commands are missing from ``PATH``, or ``None`` if none is."""
    missing = missing_commands(CLIENT_COMMANDS)
    if not missing:
        return None
    return (
        f"the SLURM client commands {', '.join(missing)} are not on PATH. Run this on a "
        f"SLURM login node (on many clusters after `module load slurm`), or install the "
        f"client tools (Debian/Ubuntu: apt-get install slurm-client)."
    )


def check_controller() -> str:
    """Ask the SLURM controller whether it is up; return its answer.

    Raises
    ------
    CommandError
        When ``scontrol ping`` fails or reports the controller down; the message carries
        SLURM's words and the usual causes.
    """
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.isfile(conf):
        raise CommandError(
            f"SLURM_CONF is set to {conf!r}, which is not a file. Point it at the cluster's "
            f"slurm.conf, or unset it to use the default configuration."
        )
    try:
        result = run_command(
            ["scontrol", "ping"], timeout=_QUICK, what="asking the SLURM controller (scontrol ping)"
        )
    except CommandError as exc:
        raise CommandError(
            f"{exc}\nCheck that SLURM_CONF points at the cluster's slurm.conf (or that "
            f"/etc/slurm/slurm.conf exists) and that slurmctld is running.",
            exc.result,
        ) from None
    answer = result.stdout.strip()
    if "DOWN" in answer and "UP" not in answer:
        raise CommandError(f"The SLURM controller is down: {answer}", result)
    return answer


def test_submit(
    script: str, *, what: str = "the worker job script", args: Sequence[str] = ()
) -> str:
    """Ask SLURM whether it would accept ``script`` (``sbatch --test-only``); submits nothing.

    ``args`` go to ``sbatch`` too (e.g. the ``--array=`` that will be submitted).

    Returns
    -------
    str
        SLURM's estimate, e.g. ``"Job 12 to start at ... on nodes n1 in partition debug"``.

    Raises
    ------
    CommandError
        SLURM rejected the script; the message quotes ``sbatch``'s reason.
    """
    result = run_command(
        ["sbatch", "--test-only", *args],
        input_text=script,
        timeout=_QUICK,
        what=f"checking {what} with sbatch --test-only",
    )
    return _strip_prefix(result.stderr.strip() or result.stdout.strip())


_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


def submit(script_path: Path, *, array_size: int | None = None) -> str:
    """Submit a batch script and return the job id (the array's id for an array).

    Parameters
    ----------
    script_path
        The job script.
    array_size
        Submit as a job array with tasks ``0 .. array_size - 1``.
    """
    args = ["sbatch"]
    if array_size is not None:
        args.append(f"--array=0-{array_size - 1}")
    args.append(str(script_path))
    result = run_command(args, timeout=60.0, what="submitting worker jobs with sbatch")
    match = _SUBMITTED.search(result.stdout)
    if match is None:
        raise CommandError(
            f"sbatch printed no job id: {result.stdout.strip() or result.stderr.strip()}", result
        )
    return match.group(1)


_FIELD = "\x1f"  # ASCII unit separator: cannot occur in job names or reasons


def list_jobs(name: str) -> list[SlurmJob]:
    """Return the jobs named ``name`` that SLURM still knows, array tasks one per row."""
    result = run_command(
        ["squeue", "-h", "-r", f"--name={name}", "-o", _FIELD.join(["%i", "%j", "%T", "%r", "%N"])],
        timeout=_QUICK,
        what="listing jobs with squeue",
    )
    jobs = []
    for line in result.stdout.splitlines():
        fields = line.split(_FIELD)
        if len(fields) == 5:
            jobs.append(SlurmJob(*(field.strip() for field in fields)))
    return jobs


def list_my_jobs() -> list[tuple[SlurmJob, str]]:
    """Every job of this user that SLURM still knows, with its comment (``--comment``).

    Array tasks are one row each. Raises :class:`~daskdeploy.commands.CommandError` when
    ``squeue`` fails.
    """
    result = run_command(
        ["squeue", "--me", "-h", "-r", "-o", _FIELD.join(["%i", "%j", "%T", "%r", "%N", "%k"])],
        timeout=_QUICK,
        what="listing your SLURM jobs with squeue",
    )
    jobs = []
    for line in result.stdout.splitlines():
        fields = [field.strip() for field in line.split(_FIELD)]
        if len(fields) == 6:
            jobs.append((SlurmJob(*fields[:5]), fields[5]))
    return jobs


def cancel_named_or_listed(name: str, job_ids: Sequence[str]) -> None:
    """Cancel every job named ``name`` and the jobs ``job_ids`` (an array as a whole).

    Raises :class:`~daskdeploy.commands.CommandError` when ``scancel`` fails.
    """
    commands = [["scancel", f"--name={name}"]]
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if arrays:
        commands.append(["scancel", *arrays])
    for command in commands:
        run_command(command, timeout=_QUICK, what="cancelling jobs with scancel")


def cancel_jobs(name: str, *, wait: float = 30.0) -> list[SlurmJob]:
    """Cancel every job named ``name`` and wait until SLURM no longer lists them.

    Returns
    -------
    list of SlurmJob
        Jobs still listed when ``wait`` ran out (empty when all are gone).
    """
    if not list_jobs(name):
        return []
    run_command(["scancel", f"--name={name}"], timeout=_QUICK, what="cancelling jobs with scancel")
    deadline = time.monotonic() + wait
    while True:
        left = list_jobs(name)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def job_state(job_id: str) -> str:
    """SLURM's state of one job (or array task), "" once it is gone or unknown."""
    try:
        result = run_command(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"],
            timeout=10,
            check=False,
            what="asking squeue for a job's state",
        )
    except CommandError:
        return ""
    return result.stdout.strip().splitlines()[0].strip() if result.stdout.strip() else ""


def signal_step(job_id: str, step_name: str, signal_name: str = "TERM") -> bool:
    """Send a signal to the tasks of the step named ``step_name`` in job ``job_id``.

    Unlike signalling ``srun`` (which ends the step, SIGKILL to its tasks), this lets
    the tasks act on it: clean up and exit. Returns whether such a step was found.
    """
    result = run_command(
        ["squeue", "-h", "-s", "-j", job_id, "-o", f"%i{_FIELD}%j"],
        timeout=_QUICK,
        check=False,
        what="listing job steps with squeue",
    )
    steps = [
        step_id
        for step_id, _, name in (line.partition(_FIELD) for line in result.stdout.splitlines())
        if name.strip() == step_name
    ]
    for step_id in steps:
        run_command(
            ["scancel", f"--signal={signal_name}", step_id.strip()],
            timeout=_QUICK,
            check=False,
            what="signalling a job step with scancel",
        )
    return bool(steps)


def node_addresses(partition: str | None = None, names: Sequence[str] | None = None) -> list[str]:
    """Return the addresses (``NodeAddr``) of nodes, by partition and/or node name.

    Parameters
    ----------
    partition
        Only nodes of this partition (all partitions if None).
    names
        Only these nodes (all if None), e.g. from :func:`hostnames`.
    """
    result = run_command(
        ["scontrol", "-o", "show", "node"], timeout=_QUICK, what="listing nodes with scontrol"
    )
    addresses = []
    for line in result.stdout.splitlines():
        fields = dict(_scontrol_fields(line))
        if partition and partition not in fields.get("Partitions", "").split(","):
            continue
        if names is not None and fields.get("NodeName") not in names:
            continue
        address = fields.get("NodeAddr") or fields.get("NodeHostName") or fields.get("NodeName")
        if address:
            addresses.append(address)
    return addresses


def hostnames(nodelist: str) -> list[str]:
    """Expand a SLURM node list such as ``n[1-3]`` into node names."""
    result = run_command(
        ["scontrol", "show", "hostnames", nodelist], timeout=_QUICK, what="expanding a node list"
    )
    return result.stdout.split()


def time_left(job_id: str) -> int | None:
    """Seconds before SLURM ends job ``job_id``, or ``None`` if it has no time limit."""
    result = run_command(
        ["squeue", "-h", "-j", job_id, "-o", "%L"],
        timeout=_QUICK,
        what="asking SLURM for the time left",
    )
    try:
        return parse_walltime(result.stdout.strip())
    except ValueError:
        return None  # UNLIMITED, NOT_SET, INVALID


def _scontrol_fields(line: str) -> list[tuple[str, str]]:
    pairs = []
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            pairs.append((key, value))
    return pairs


def _strip_prefix(text: str) -> str:
    return re.sub(r"^sbatch: ", "", text, flags=re.MULTILINE)
