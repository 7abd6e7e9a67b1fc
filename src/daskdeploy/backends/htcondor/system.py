"""HTCondor as a batch system of the job-queue backend: its commands and spellings.

Written against the HTCondor manual (htcondor.readthedocs.io; ``docs/`` of
github.com/htcondor/htcondor): condor_submit(1) and the Job Description Language
(htcondor-jdl(5)), condor_q(1), condor_rm(1), the job ClassAd attributes. Not run by the
test suite: no HTCondor pool runs here.

What dask-jobqueue's ``HTCondorJob`` renders is a submit description, not a shell script:
``key = value`` submit commands (``job_header_dict``), then ``Arguments``, ``Executable =
/bin/sh`` and ``Queue``; the worker command (after the ``job_script_prologue`` lines,
joined with ``;``) runs as ``/bin/sh -c``. So:

* ``job_extra_directives`` are submit commands, ``"key = value"`` strings, which
  :meth:`HTCondorSystem.extra_directives` turns into the dict ``HTCondorJob`` wants;
* a job's name is its ``batch_name`` (``JobBatchName`` in the job ClassAd), set to the
  deployment id, which the job also carries as ``MY.DaskDeployId``, its tag;
* the time limit is ``periodic_remove`` (HTCondor has no walltime), and
  :mod:`~daskdeploy.backends.htcondor.cluster` drops the ``walltime`` argument;
* workers spill to the job's scratch directory, ``$_CONDOR_SCRATCH_DIR``, which HTCondor
  creates for every job and removes when it ends;
* the job id is ``ClusterId.ProcId`` (``12.0``), as dask-jobqueue's
  ``HTCondorJob._job_id_from_submit_output`` makes it.

No job arrays: HTCondor queues many jobs from one submit description (``Queue N``, with
``$(ProcId)``), but daskdeploy's array scripts are shell scripts. One submission per
worker job.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import run_command
from ...errors import OptionError
from ...options import Option, memory_size
from ..jobqueue.system import QUICK, BatchJob, BatchSystem, JobSettings

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["CONDOR_Q_ATTRIBUTES", "HTCONDOR", "HTCondorSystem", "parse_condor_q", "submit_commands"]

#: The job ClassAd attributes daskdeploy lists (condor_q -af): the tag's own attribute
#: is DaskDeployId; HoldReason is last as it may contain spaces.
CONDOR_Q_ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "JobBatchName",
    "DaskDeployId",
    "RemoteHost",
    "HoldReason",
)

#: JobStatus codes (HTCondor manual, "Job Status Codes").
JOB_STATUS = {
    "1": "Idle",
    "2": "Running",
    "3": "Removing",
    "4": "Completed",
    "5": "Held",
    "6": "Transferring Output",
    "7": "Suspended",
}


def parse_condor_q(text: str) -> list[BatchJob]:
    """The jobs in ``condor_q -af:t`` output of :data:`CONDOR_Q_ATTRIBUTES`.

    One job per line, values separated by tabs (``-af:t``); an attribute the job does not
    have prints as ``undefined``. A job's id is ``ClusterId.ProcId``; its state is the
    name of its ``JobStatus``; a held job's reason is its ``HoldReason``; ``RemoteHost``
    (``slot1@node7.example.org``) gives its host.
    """
    jobs = []
    for line in text.splitlines():
        fields = line.lstrip("\t").split("\t", len(CONDOR_Q_ATTRIBUTES) - 1)
        if len(fields) != len(CONDOR_Q_ATTRIBUTES):
            continue
        cluster, proc, status, batch, tag, host, hold = (
            "" if value.strip() == "undefined" else value.strip() for value in fields
        )
        state = JOB_STATUS.get(status, status)
        jobs.append(
            BatchJob(
                f"{cluster}.{proc}",
                batch,
                state,
                reason=hold if state == "Held" else "",
                nodes=host.rpartition("@")[2],
                tag=tag,
                running=state == "Running",
            )
        )
    return jobs


def submit_commands(lines: Sequence[str]) -> dict[str, str]:
    """``"key = value"`` submit commands as the ``{key: value}`` ``HTCondorJob`` renders.

    >>> submit_commands(["request_gpus = 1", "+Group = \\"physics\\""])
    {'request_gpus': '1', '+Group': '"physics"'}

    Raises
    ------
    OptionError
        For a line that is not ``key = value``.
    """
    commands = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise OptionError(
                f"HTCondor job_extra_directives are submit commands such as "
                f"'request_gpus = 1', got {line!r}."
            )
        commands[key.strip()] = value.strip()
    return commands


class HTCondorSystem(BatchSystem):
    """HTCondor: ``condor_submit``/``condor_q -af``/``condor_rm``, submit commands."""

    name = "htcondor"
    title = "HTCondor"
    # dask-jobqueue's HTCondorCluster, with a job class that takes walltime (see .cluster).
    cluster_class = "daskdeploy.backends.htcondor.cluster:HTCondorCluster"
    # condor_submit(1) "condor_submit <submit description file>"; condor_q(1) with a user
    # name and -af:t; condor_rm(1) "condor_rm [cluster.proc...]".
    submit_command = "condor_submit"
    status_command = "condor_q"
    cancel_command = "condor_rm"
    install_hint = (
        "install HTCondor (packages from htcondor.org) and point CONDOR_CONFIG at the "
        "pool's configuration"
    )
    # A submit description has no directive prefix: its lines are "key = value" submit
    # commands (htcondor-jdl(5)); the word only appears in the options' help.
    directive_prefix = "submit-description"
    driver_scripts = False  # jobs are submit descriptions, not shell scripts
    # condor_submit prints "1 job(s) submitted to cluster 12." (HTCondor manual, quick
    # start guide); the job is process 0 of that cluster, see submit().
    job_id_pattern = r"submitted to cluster (?P<job_id>\d+)"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "disk",
            memory_size,
            "Scratch disk per job (request_disk), e.g. '1GiB'; HTCondor runs the job only "
            "on a slot with that much disk.",
        ),
    )
    option_help: ClassVar[dict[str, str]] = {
        "queue": "Not available: HTCondor has no queues, it matches jobs to slots; choose "
        "machines with 'requirements = ...' in job_extra_directives (`condor_status` lists "
        "the slots).",
        "account": "HTCondor accounting group the jobs negotiate under (accounting_group).",
        "job_extra_directives": "More submit commands, 'key = value', e.g. "
        "['request_gpus = 1', 'requirements = (OpSysMajorVer == 9)'].",
    }
    # condor_submit: "ERROR: Failed to commit job submission into the queue." then the
    # schedd's reason (a SUBMIT_REQUIREMENT_<Name>_REASON, HTCondor admin manual);
    # "ERROR: Failed to connect to local queue manager" when the schedd is unreachable.
    rejection_hints: ClassVar[dict[str, str]] = {
        "queue manager": "the condor_schedd does not answer: check that `condor_q` works "
        "and that CONDOR_CONFIG is the pool's configuration",
        "memory": "ask for less memory per job (`condor_status -af Name Memory Cpus Disk` "
        "shows what slots offer)",
        "disk": "check the disk option (`condor_status -af Name Memory Cpus Disk` shows "
        "what slots offer)",
        "cpus": "ask for fewer cores per job (`condor_status -af Name Memory Cpus Disk` "
        "shows what slots offer)",
        "on line": "check the submit commands in job_extra_directives",
    }
    # JobStatus: 3 removing (listed until the job has left its slot), 4 completed; 5 held
    # (its worker is gone and the job runs again only if released, e.g. after it went
    # over its memory), so it is replaced like an ended job.
    ending_states: ClassVar[frozenset[str]] = frozenset({"Removing", "Completed", "Held"})
    gone_states: ClassVar[frozenset[str]] = frozenset({"Completed"})

    def configured(self) -> bool:
        """Whether HTCondor seems set up here (``CONDOR_CONFIG``, its default file)."""
        return bool(os.environ.get("CONDOR_CONFIG")) or Path("/etc/condor/condor_config").is_file()

    def submit(self, script_path: Path, *, array_size: int | None = None) -> str:
        """``condor_submit FILE``; the job id is ``<cluster>.0``, the cluster's only job."""
        return f"{super().submit(script_path)}.0"

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``condor_q USER -af:t ...``: this user's jobs (of deployment ``name`` if given).

        condor_q(1): a user name in the restriction list selects that user's jobs;
        ``-af:t`` prints the attributes tab-separated.
        """
        result = run_command(
            [self.status_command, getpass.getuser(), "-af:t", *CONDOR_Q_ATTRIBUTES],
            timeout=QUICK,
            what="listing jobs with condor_q",
        )
        jobs = parse_condor_q(result.stdout)
        return [job for job in jobs if name is None or name in (job.name, job.tag)]

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Disk, names, accounting group, output files, time limit, scratch directory.

        Raises
        ------
        OptionError
            When a queue is given: HTCondor has none.
        """
        if options["queue"] is not None:
            raise OptionError(
                "HTCondor has no queues: it matches jobs to slots. Leave queue unset and "
                "choose machines with 'requirements = (...)' in job_extra_directives."
            )
        log = settings.log_directory
        # htcondor-jdl(5) output/error/log = <pathname>; $(ClusterId) and $(ProcId) are
        # expanded by condor_submit. stream_output/stream_error = True: the output reaches
        # the file while the job runs (dask-jobqueue sets them with its log_directory).
        base = f"{log}/{settings.job_name}-$(ClusterId).$(ProcId)"
        directives = [
            # htcondor-jdl(5) batch_name: shown and grouped by condor_q.
            f"batch_name = {settings.job_name}",
            # htcondor-jdl(5) "MY.<attribute> = <value>": a job ClassAd attribute.
            f'MY.DaskDeployId = "{settings.job_name}"',
            f"Output = {base}.out",
            f"Error = {base}.err",
            f"Log = {log}/{settings.job_name}-$(ClusterId).log",
            "Stream_Output = True",
            "Stream_Error = True",
            # htcondor-jdl(5) periodic_remove, in the form of the HTCondor users' manual
            # ("Automatic job management"): remove a job running longer than the limit.
            f"periodic_remove = (JobStatus == 2) && "
            f"(time() - EnteredCurrentStatus) > {settings.walltime_seconds}",
        ]
        if options["account"]:
            # htcondor-jdl(5) accounting_group: "Causes jobs to negotiate under the given
            # accounting group" (advertised as AcctGroup).
            directives.append(f"accounting_group = {options['account']}")
        return {
            "disk": options["disk"],
            "job_extra_directives": directives,
            # Prologue lines are joined into the /bin/sh -c command; the worker spills to
            # the job's own scratch directory, which HTCondor removes when the job ends
            # (HTCondor manual, "Environment of a job": _CONDOR_SCRATCH_DIR).
            "job_script_prologue": list(options["job_script_prologue"]),
            "local_directory": options["local_directory"] or '"$_CONDOR_SCRATCH_DIR"',
        }

    def extra_directives(self, ours: list[str], users: list[str]) -> dict[str, str]:
        """``HTCondorJob``'s ``job_extra_directives`` is a dict of submit commands.

        Later commands win, so a user's ``batch_name = ...`` replaces daskdeploy's.
        """
        return submit_commands([*ours, *users])

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """``<name>-<cluster>.<proc>.out`` and ``.err``."""
        return [
            log_directory / f"{job_name}-{job_id}.out",
            log_directory / f"{job_name}-{job_id}.err",
        ]


HTCONDOR = HTCondorSystem()
