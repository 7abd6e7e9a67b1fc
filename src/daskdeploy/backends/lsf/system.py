"""IBM Spectrum LSF as a batch system of the job-queue backend: its commands and spellings.

Written against the IBM Spectrum LSF 10.1 command reference (bsub, bjobs, bkill;
www.ibm.com/docs/en/spectrum-lsf/10.1.0); ``bjobs -o`` needs LSF 9.1.1 or later. Not run
by the test suite: no LSF cluster runs here.

Jobs are submitted as ``bsub < SCRIPT``: LSF reads ``#BSUB`` lines from a script given on
standard input, but from a script given as an argument only where the cluster sets
``LSB_BSUB_PARSE_SCRIPT=Y`` (bsub, "job_script" argument).

No job arrays: LSF names an array in its job name (``bsub -J "name[1-4]"``), so the
submit flag would need the job name, which
:class:`~daskdeploy.backends.jobqueue.system.JobArrays` cannot spell (its flag has only
the first and last index). daskdeploy submits one job per worker job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError, run_command
from ..jobqueue.system import QUICK, BatchJob, BatchSystem, JobAllocation, JobSettings

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["BJOBS_FORMAT", "LSF", "LsfSystem", "format_hours_minutes", "parse_bjobs"]

#: bjobs -o "field ... delimiter='|'" (bjobs -o, LSF 9.1.1+): the job name last, so a
#: "|" in it cannot shift the other fields.
BJOBS_FORMAT = "jobid stat exec_host job_name delimiter='|'"


def format_hours_minutes(seconds: int) -> str:
    """A time limit as LSF's ``[hour:]minute``, rounded up to the next minute.

    bsub -W: "The run limit is in the form of [hour:]minute."

    >>> format_hours_minutes(5400), format_hours_minutes(61), format_hours_minutes(36000)
    ('01:30', '00:02', '10:00')
    """
    minutes = -(-int(seconds) // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _hosts(exec_host: str) -> str:
    """``4*hostA:2*hostB`` (bjobs, EXEC_HOST: slots per host) as ``hostA,hostB``."""
    if exec_host in ("", "-"):
        return ""
    hosts = (part.rpartition("*")[2] for part in exec_host.split(":"))
    return ",".join(dict.fromkeys(host for host in hosts if host))


def parse_bjobs(text: str) -> list[BatchJob]:
    """The jobs in ``bjobs -noheader -o BJOBS_FORMAT`` output.

    One job per line, fields separated by ``|``, ``-`` for an empty field. Lines without
    the delimiter (``No unfinished job found``) are skipped.
    """
    jobs = []
    for line in text.splitlines():
        fields = line.strip().split("|", 3)
        if len(fields) != 4:
            continue
        job_id, state, exec_host, name = fields
        jobs.append(BatchJob(job_id, name, state, nodes=_hosts(exec_host), running=state == "RUN"))
    return jobs


class LsfSystem(BatchSystem):
    """IBM Spectrum LSF: ``bsub < SCRIPT``/``bjobs -o``/``bkill``, ``#BSUB`` directives."""

    name = "lsf"
    title = "LSF"
    cluster_class = "dask_jobqueue.lsf:LSFCluster"
    # bsub < SCRIPT (bsub, "command": without one, "bsub reads the job commands from
    # standard input"); bjobs -noheader -o (bjobs -noheader, -o); bkill "bkill [options]
    # [job_ID ...]".
    submit_command = "bsub"
    status_command = "bjobs"
    cancel_command = "bkill"
    install_hint = (
        "source the cluster's LSF profile (`. $LSF_ENVDIR/profile.lsf`), which puts bsub, "
        "bjobs and bkill on PATH"
    )
    # bsub, "job_script": "Use the #BSUB imperative ... to specify job submission options".
    directive_prefix = "#BSUB"
    # Inside a job: LSB_JOBID; LSB_DJOB_HOSTFILE lists a host once per slot ("LSF
    # environment variables" reference); blaunch(1) HOST COMMAND starts a task on one
    # of the job's hosts. Not tested against a real LSF.
    in_place_backend = "batchjob"
    submit_hint = "bsub < THIS_FILE"  # bsub reads #BSUB lines from standard input
    allocation = JobAllocation(
        marker="LSB_JOBID",
        job_id="LSB_JOBID",
        host_file="LSB_DJOB_HOSTFILE",
        slots_per_line=False,
        slots="LSB_DJOB_NUMPROC",
        launcher=("blaunch", "{host}"),
        launcher_joins_arguments=False,
    )
    # bsub prints "Job <764254593> is submitted to queue <normal>."
    job_id_pattern = r"Job <(?P<job_id>\d+)> is submitted"
    option_help: ClassVar[dict[str, str]] = {
        "queue": "LSF queue (bsub -q); null: the cluster's default queue. `bqueues` lists them.",
        "account": "LSF project charged for the jobs (bsub -P).",
        "job_extra_directives": "More #BSUB lines, e.g. ['-x', '-R \"select[avx2]\"'].",
    }
    # bsub's words end in "Job not submitted.": "<queue>: No such queue.", "Too many
    # processors requested.", "Error in rusage section.", "... limit ..."
    rejection_hints: ClassVar[dict[str, str]] = {
        "no such queue": "check the queue option (`bqueues` lists queues)",
        "processors": "ask for fewer cores per job (`bqueues -l QUEUE` shows the queue's limits)",
        "limit": "ask for fewer cores, less memory or time per job (`bqueues -l QUEUE` shows "
        "the queue's limits)",
        "project": "check the account option, the LSF project (bsub -P)",
        "section": "check the -R resource requirements in job_extra_directives",
    }
    # bjobs states: DONE, EXIT finished; ZOMBI killed while unreachable.
    ending_states: ClassVar[frozenset[str]] = frozenset({"DONE", "EXIT", "ZOMBI"})
    gone_states: ClassVar[frozenset[str]] = frozenset({"DONE", "EXIT"})

    def configured(self) -> bool:
        """Whether an LSF cluster seems set up here (``LSF_ENVDIR``, ``/etc/lsf.conf``)."""
        return bool(os.environ.get("LSF_ENVDIR")) or Path("/etc/lsf.conf").is_file()

    def submit(self, script_path: Path, *, array_size: int | None = None) -> str:
        """``bsub < SCRIPT`` (the script on standard input, so its ``#BSUB`` lines count)."""
        result = run_command(
            [self.submit_command],
            input_text=script_path.read_text(),
            timeout=60.0,
            what="submitting worker jobs with bsub",
        )
        match = re.search(self.job_id_pattern, result.stdout)
        if match is None:
            raise CommandError(
                f"bsub printed no job id: {result.stdout.strip() or result.stderr.strip()}",
                result,
            )
        return match.group("job_id")

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``bjobs -noheader -o ...``: this user's unfinished jobs (named ``name`` if given).

        bjobs lists the user's own jobs by default and exits 0 with ``No unfinished job
        found`` when there is none.
        """
        result = run_command(
            [self.status_command, "-noheader", "-o", BJOBS_FORMAT],
            timeout=QUICK,
            what="listing jobs with bjobs",
        )
        return [job for job in parse_bjobs(result.stdout) if name is None or job.name == name]

    def walltime_text(self, seconds: int, given: str) -> str:
        """``[hour:]minute`` (bsub -W), rounded up: LSFJob passes it to ``#BSUB -W``."""
        return format_hours_minutes(seconds)

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Queue, project and the output file, named after the job and its id."""
        # bsub -o: "%J is replaced by the job ID"; "If you use -o without -e or -eo, the
        # standard error of the job is stored in the output file."
        directives = [f"-o {settings.log_directory}/{settings.job_name}-%J.out"]
        # LSFJob renders: -J name (bsub -J), -q queue (bsub -q), -P "project" (bsub -P),
        # -n cores and -R "span[hosts=1]" (bsub -n, -R), -M memory in the units of
        # lsf.conf's LSF_UNIT_FOR_LIMITS (bsub -M), -W walltime (bsub -W).
        return {
            "queue": options["queue"],
            "project": options["account"],
            "job_extra_directives": directives,
        }

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """``<name>-<job id>.out``: the job's output and error."""
        return [log_directory / f"{job_name}-{job_id}.out"]


LSF = LsfSystem()
