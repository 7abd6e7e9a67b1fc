"""OAR as a batch system of the job-queue backend: its commands and spellings.

Written against OAR 2.5's manual pages oarsub(1), oarstat(1), oardel(1) and
oarnotify(1) (``sources/core/man/man1`` of github.com/oar-team/oar); OAR 3's commands
take the same options (github.com/oar-team/oar3, ``oar/cli``). Not run by the test
suite: no OAR server runs here.

Submission is dask-jobqueue's: the ``#OAR`` lines become ``oarsub`` options and the rest
of the script its command (an "inline script"), because OAR runs a script file from the
first node of the job, where daskdeploy's private copy of it does not exist
(``OARJob._submit_job``).

No job arrays: ``oarsub --array N`` gives every subjob a job id of its own (oarsub(1),
``--array``), not one derived from the array's id as
:class:`~daskdeploy.backends.jobqueue.system.JobArrays` needs. One submission per worker
job.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError, run_command
from ...options import Option, text
from ..jobqueue.system import QUICK, BatchJob, BatchSystem, JobAllocation, JobSettings

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["OAR", "OarSystem", "oarsub_args", "parse_oarstat_json"]


def oarsub_args(script: str) -> list[str]:
    """The ``oarsub`` command line that submits ``script``, as dask-jobqueue builds it.

    oarsub(1), SCRIPT: a script's ``#OAR`` lines use "the same option syntax" as the
    command line; the other lines (comments and the shebang dropped) are the command.

    >>> oarsub_args("#!/bin/bash\\n#OAR -n dd-1\\n#OAR -l /core=2,walltime=1:00:00\\nrun\\n")
    ['oarsub', '-n', 'dd-1', '-l', '/core=2,walltime=1:00:00', 'run\\n']
    """
    lines = script.splitlines(keepends=True)
    options = [arg for line in lines if line.startswith("#OAR ") for arg in shlex.split(line[5:])]
    command = "".join(line for line in lines if not line.startswith("#"))
    return ["oarsub", *options, command]


def parse_oarstat_json(output: str) -> list[BatchJob]:
    """The jobs in ``oarstat -u -J`` output: a JSON object keyed by job id.

    Each value has ``name``, ``state``, ``message`` (the scheduler's note, the reason a
    job waits) and, in OAR 2.5, ``assigned_network_address`` (the job's hosts; OAR 3
    lists it only with ``-f``). No job prints ``{}``, or ``null`` in OAR 2.5.
    """
    data = json.loads(output) if output.strip() else None
    jobs = []
    for job_id, info in (data or {}).items():
        state = str(info.get("state", ""))
        running = state == "Running"
        hosts = info.get("assigned_network_address") or []
        jobs.append(
            BatchJob(
                str(job_id),
                str(info.get("name") or ""),
                state,
                reason="" if running else str(info.get("message") or ""),
                nodes=",".join(dict.fromkeys(hosts)),
                running=running,
            )
        )
    return jobs


class OarSystem(BatchSystem):
    """OAR: ``oarsub``/``oarstat -J``/``oardel``, ``#OAR`` directives as oarsub options."""

    name = "oar"
    title = "OAR"
    cluster_class = "dask_jobqueue.oar:OARCluster"
    # oarsub(1) "oarsub [OPTIONS] <command>"; oarstat(1) -u -J; oardel(1) "oardel
    # [options] <job_id> [job_id [...]]".
    submit_command = "oarsub"
    status_command = "oarstat"
    cancel_command = "oardel"
    install_hint = "install the OAR user tools (Debian/Ubuntu: apt-get install oar-user)"
    # oarsub(1), SCRIPT: "lines starting with #OAR".
    directive_prefix = "#OAR"
    # Inside a job: OAR_JOB_ID; OAR_NODEFILE lists a host once per core (oarsub(1),
    # "ENVIRONMENT"); oarsh HOST COMMAND (an ssh wrapper) starts a task on one of the
    # job's hosts. Not tested against a real OAR.
    in_place_backend = "batchjob"
    submit_hint = "oarsub -S ./THIS_FILE"  # -S: read the #OAR lines of the script
    allocation = JobAllocation(
        marker="OAR_JOB_ID",
        job_id="OAR_JOB_ID",
        host_file="OAR_NODEFILE",
        slots_per_line=False,
        slots=None,
        launcher=("oarsh", "{host}"),
    )
    # oarsub prints "OAR_JOB_ID=4242" (oarsub(1); dask-jobqueue's OARJob.job_id_regexp).
    job_id_pattern = r"OAR_JOB_ID=(?P<job_id>\d+)"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "resource_spec",
            text,
            "Resources of each job (oarsub -l, before the walltime), e.g. "
            "'/nodes=1/core=4'; null: /nodes=1/core=CORES.",
            nullable=True,
        ),
        Option(
            "memory_per_core_property_name",
            text,
            "The resource property holding memory per core in MiB (often 'memcore'; "
            "`oarnodes` lists properties): the jobs then ask for nodes with enough of it "
            "(oarsub -p). null: memory is not requested.",
            nullable=True,
        ),
    )
    option_help: ClassVar[dict[str, str]] = {
        "queue": "OAR queue (oarsub -q); null: the default queue. `oarnotify -l` lists them.",
        "account": "OAR project the jobs belong to (oarsub --project).",
        "job_extra_directives": "More #OAR lines, given to oarsub, e.g. ['-t besteffort'].",
    }
    # oarsub's words: "# Error: queue 'short' does not exist", "There are not enough
    # resources for your request", "[ADMISSION RULE] ..." (OAR 2.5 OAR/IO.pm, oarsub).
    rejection_hints: ClassVar[dict[str, str]] = {
        "queue": "check the queue option (`oarnotify -l` lists queues)",
        "not enough resources": "ask for fewer cores or less time per job, or check "
        "resource_spec (`oarnodes` lists the resources and their properties)",
        "property": "check memory_per_core_property_name and '-p' in job_extra_directives "
        "(`oarnodes` lists the properties)",
        "admission rule": "an admission rule of the cluster refused the job: its message "
        "says what to change",
    }
    # oarstat(1) states: Finishing, then Terminated or Error.
    ending_states: ClassVar[frozenset[str]] = frozenset(
        {"Finishing", "Terminated", "Error", "toError"}
    )
    gone_states: ClassVar[frozenset[str]] = frozenset({"Terminated", "Error"})

    def configured(self) -> bool:
        """Whether OAR seems set up here (``/etc/oar/oar.conf``, from oar-common)."""
        return Path("/etc/oar/oar.conf").is_file()

    def submit_args(self, script_path: Path, array_size: int | None) -> list[str]:
        """``oarsub [#OAR options] COMMAND``: see :func:`oarsub_args`."""
        return oarsub_args(script_path.read_text())

    def submit(self, script_path: Path, *, array_size: int | None = None) -> str:
        """Submit as :meth:`submit_args` says; a refusal shows the options, not the command.

        The inline command is the whole job script: quoted in an error message it would
        bury oarsub's own words, so the message names the script file instead.
        """
        try:
            return super().submit(script_path, array_size=array_size)
        except CommandError as exc:
            if exc.result is None:
                raise
            shown = f"{shlex.join(exc.result.args[:-1])} <commands of {script_path}>"
            raise CommandError(
                str(exc).replace(exc.result.command_line, shown), exc.result
            ) from None

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``oarstat -u -J``: this user's current jobs (named ``name`` if given).

        oarstat(1): ``-u`` without a login is the current user; ``-J`` prints JSON.
        """
        result = run_command(
            [self.status_command, "-u", "-J"], timeout=QUICK, what="listing jobs with oarstat"
        )
        jobs = parse_oarstat_json(result.stdout)
        return [job for job in jobs if name is None or job.name == name]

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Queue, project, resources, memory property and per-job output files."""
        out = f"{settings.log_directory}/%jobname%-%jobid%"
        # oarsub(1) -O/-E <FILE>: "The %jobid% and %jobname% patterns are automatically
        # replaced." Quoted: these lines are split like a command line.
        directives = [f"-O {shlex.quote(out + '.out')}", f"-E {shlex.quote(out + '.err')}"]
        # OARJob renders: -n name (oarsub -n), -q queue (oarsub -q), --project (oarsub
        # --project), -l RESOURCES,walltime=HH:MM:SS (oarsub -l: "The walltime format is
        # hours:minutes:seconds") and, with the property name, -p PROPERTY>=MiB.
        return {
            "queue": options["queue"],
            "project": options["account"],
            "resource_spec": options["resource_spec"],
            # "not_applicable": OARJob's word for "no memory request, and no warning".
            "memory_per_core_property_name": options["memory_per_core_property_name"]
            or "not_applicable",
            "job_extra_directives": directives,
        }

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """``<name>-<job id>.out`` and ``.err``."""
        return [
            log_directory / f"{job_name}-{job_id}.out",
            log_directory / f"{job_name}-{job_id}.err",
        ]


OAR = OarSystem()
