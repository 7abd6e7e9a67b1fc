"""PBS as a batch system of the job-queue backend: its commands and spellings.

Covers PBS Professional / OpenPBS and Torque, whose client commands share the options
used here. Written against the OpenPBS manual pages qsub(1B), qstat(1B) and qdel(1B)
(``doc/man1`` of github.com/openpbs/openpbs; the PBS Professional 2022 Reference Guide
documents the same options) and Torque 6's qsub(1) and qstat(1) (``doc/man1`` of
github.com/adaptivecomputing/torque). Not run by the test suite: no PBS server runs here.

No job arrays: PBS Professional spells them ``qsub -J X-Y`` (index in
``$PBS_ARRAY_INDEX``), Torque ``qsub -t X-Y`` (``$PBS_ARRAYID``), and on both a subjob's
id puts the index inside the array's id (``1234[2].server``), which
:class:`~daskdeploy.backends.jobqueue.system.JobArrays` cannot spell (its task ids are
the array id followed by the index). daskdeploy submits one job per worker job.

The PBS-family helpers (:data:`JOB_ID_LINE`, :func:`sequence_number`, the
:class:`PbsSystem` spellings) are shared with the ``moab`` backend, which submits PBS
job scripts with ``msub``.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import run_command
from ...options import Option, text
from ..jobqueue.system import QUICK, BatchJob, BatchSystem, JobAllocation, JobSettings

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = [
    "JOB_ID_LINE",
    "PBS",
    "PbsSystem",
    "exec_hosts",
    "parse_qstat_full",
    "qstat_full_attributes",
    "sequence_number",
]

#: The job id ``qsub``/``msub`` print alone on a line: ``1234.server`` (qsub(1B), PBS
#: Professional: "<sequence number>.<server name>"; Torque: the same), ``4761849`` or
#: ``Moab.12`` (msub). The whole id is kept: ``qdel`` and ``qstat`` want it.
JOB_ID_LINE = r"(?m)^\s*(?P<job_id>(?:[A-Za-z][\w-]*\.)?\d+(?:\.[\w.-]+)?)\s*$"


def sequence_number(job_id: str) -> str:
    """The numeric part of a PBS-family job id (Torque names output files after it).

    >>> sequence_number("1234.pbs01.example.org"), sequence_number("Moab.12")
    ('1234', '12')
    """
    match = re.search(r"\d+", job_id)
    return match.group() if match else job_id


def exec_hosts(exec_host: str) -> str:
    """The hosts of a PBS ``exec_host`` value, comma-separated, each once.

    PBS Professional writes ``node1/0*4+node2/0*4``, Torque ``node1/0-3+node2/0``
    (qstat(1B) -f, "exec_host").

    >>> exec_hosts("node1/0*2+node2/1*2"), exec_hosts("n7/0-3+n7/4"), exec_hosts("")
    ('node1,node2', 'n7', '')
    """
    hosts = (part.partition("/")[0] for part in exec_host.split("+"))
    return ",".join(dict.fromkeys(host for host in hosts if host))


def qstat_full_attributes(text: str) -> list[tuple[str, dict[str, str]]]:
    """The ``(job id, {attribute: value})`` blocks of ``qstat -f`` output.

    Each job starts with ``Job Id: <id>``; attributes follow one per line, indented,
    as ``name = value``. Long values are wrapped onto lines that start with a tab and
    continue the value where it was cut (PBS Professional's and Torque's ``qstat.c``,
    ``prt_attr``).
    """
    blocks: list[tuple[str, dict[str, str]]] = []
    last: str | None = None
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            blocks.append((line.partition(":")[2].strip(), {}))
            last = None
        elif line.startswith("\t") and blocks and last is not None:
            blocks[-1][1][last] += line[1:].rstrip("\n")
        elif " = " in line and blocks:
            name, _, value = line.strip().partition(" = ")
            blocks[-1][1][name] = value
            last = name
    return blocks


def parse_qstat_full(text: str, owner: str | None = None) -> list[BatchJob]:
    """The jobs in ``qstat -f`` output (of ``owner`` only, when given).

    ``Job_Owner`` is ``user@submit-host``; ``comment`` holds PBS Professional's
    scheduler message (``Not Running: Insufficient amount of resource: ncpus``), shown
    as the reason a job waits.
    """
    jobs = []
    for job_id, attributes in qstat_full_attributes(text):
        if owner is not None and attributes.get("Job_Owner", "").partition("@")[0] != owner:
            continue
        state = attributes.get("job_state", "")
        running = state == "R"
        jobs.append(
            BatchJob(
                job_id,
                attributes.get("Job_Name", ""),
                state,
                reason="" if running else attributes.get("comment", ""),
                nodes=exec_hosts(attributes.get("exec_host", "")),
                running=running,
            )
        )
    return jobs


class PbsSystem(BatchSystem):
    """PBS Professional, OpenPBS and Torque: ``qsub``/``qstat -f``/``qdel``, ``#PBS``."""

    name = "pbs"
    title = "PBS"
    cluster_class = "dask_jobqueue.pbs:PBSCluster"
    # qsub(1B) "qsub [options] <script>"; qstat(1B) -f, the long format; qdel(1B)
    # "qdel <job ID> ...".
    submit_command = "qsub"
    status_command = "qstat"
    cancel_command = "qdel"
    install_hint = (
        "add PBS's commands to PATH (PBS Professional and OpenPBS install them in "
        "/opt/pbs/bin and read the server's name from /etc/pbs.conf; Torque's read "
        "/var/spool/torque/server_name)"
    )
    # qsub(1B) -C: "#PBS" is the default directive prefix (PBS Professional and Torque).
    directive_prefix = "#PBS"
    # Inside a job: PBS_JOBID; PBS_NODEFILE lists a host once per slot (qsub(1B),
    # "Environment variables"); pbsdsh(1B) -h starts a task on one host (Torque; PBS
    # Professional's pbsdsh takes -n, see the docs). Not tested against a real server.
    in_place_backend = "batchjob"
    # qsub(1B): jobs start in the home directory; PBS_O_WORKDIR is where qsub ran.
    submit_dir_variable = "PBS_O_WORKDIR"
    allocation = JobAllocation(
        marker="PBS_JOBID",
        job_id="PBS_JOBID",
        host_file="PBS_NODEFILE",
        slots_per_line=False,
        slots="PBS_NP",
        launcher=("pbsdsh", "-h", "{host}"),
        launcher_joins_arguments=False,
    )
    job_id_pattern = JOB_ID_LINE
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "resource_spec",
            text,
            "Resources of each job (qsub -l), e.g. 'select=1:ncpus=4:mem=8gb' (PBS "
            "Professional) or 'nodes=1:ppn=4,mem=8gb' (Torque); null: "
            "select=1:ncpus=CORES:mem=MEMORY, PBS Professional's form (Torque sites set it).",
            nullable=True,
        ),
    )
    option_help: ClassVar[dict[str, str]] = {
        "queue": "PBS queue (qsub -q); null: the server's default queue. `qstat -Q` lists them.",
        "account": "Account string charged for the jobs (qsub -A).",
        "job_extra_directives": "More #PBS lines, e.g. ['-m n', '-l place=scatter'].",
    }
    # The server's words (OpenPBS src/lib/Liblog/pbs_messages.c): "Unknown queue",
    # "Queue is not enabled", "Unknown resource", "Job violates queue and/or server
    # resource limits", "Resource limit exceeds allowable", "Invalid Account".
    rejection_hints: ClassVar[dict[str, str]] = {
        "unknown queue": "check the queue option (`qstat -Q` lists queues)",
        "not enabled": "the queue does not take jobs now (`qstat -Q` shows which queues do)",
        "resource": "ask for fewer cores, less memory or time per job, or check resource_spec "
        "(`qstat -Qf QUEUE` shows the queue's limits, `pbsnodes -a` what nodes offer)",
        "account": "check the account option (qsub -A)",
    }
    # qstat(1B) job states: E exiting; C completed (Torque, listed for keep_completed
    # seconds); F finished and X expired subjob (PBS Professional, with -x).
    ending_states: ClassVar[frozenset[str]] = frozenset({"E", "C", "F", "X"})
    gone_states: ClassVar[frozenset[str]] = frozenset({"C", "F", "X"})

    def tools_missing_reason(self) -> str | None:
        """As every system's, and also when ``qsub`` here is Grid Engine's: both name
        their commands qsub, qstat and qdel, and SGE would run a #PBS script without
        reading its directives."""
        missing = super().tools_missing_reason()
        if missing or self.submit_command != "qsub" or self.configured():
            return missing
        qsub = os.path.realpath(shutil.which("qsub") or "")
        sge_root = os.environ.get("SGE_ROOT")
        if "gridengine" in qsub or (sge_root and qsub.startswith(os.path.realpath(sge_root))):
            return (
                "qsub, qstat and qdel on PATH are Grid Engine's, not PBS's, and no PBS "
                "configuration (/etc/pbs.conf, PBS_CONF_FILE, Torque's server_name) is "
                "here. Use the sge backend."
            )
        return None

    def configured(self) -> bool:
        """Whether a PBS client seems set up here (``pbs.conf`` or Torque's server_name)."""
        return bool(
            os.environ.get("PBS_CONF_FILE")
            or os.environ.get("PBS_DEFAULT")
            or Path("/etc/pbs.conf").is_file()
            or Path("/var/spool/torque/server_name").is_file()
        )

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``qstat -f``, this user's jobs (named ``name`` if given).

        PBS Professional's ``qstat -f`` takes no ``-u`` (qstat(1B): ``-u`` belongs to the
        alternate formats), so jobs are chosen by their ``Job_Owner``.
        """
        result = run_command(
            [self.status_command, "-f"], timeout=QUICK, what="listing jobs with qstat -f"
        )
        jobs = parse_qstat_full(result.stdout, owner=getpass.getuser())
        return [job for job in jobs if name is None or job.name == name]

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Queue, account, resources; all job output in one file in the log directory."""
        directives = [
            # qsub(1B) -o <path>: a path that ends in "/" is a directory; the file in it
            # is "<job ID>.OU" (PBS Professional) or "<job name>.o<sequence number>"
            # (Torque qsub(1): "is a directory, the default file name ... will be used").
            f"-o {settings.log_directory}/",
            # qsub(1B) -j oe: "Standard error and standard output are merged into
            # standard output."
            "-j oe",
        ]
        # PBSJob renders: -N name (qsub(1B) -N <name>), -q queue (qsub(1B) -q
        # <destination>), -A account (qsub(1B) -A <account string>), -l resource_spec
        # (qsub(1B) -l <resource list>) and -l walltime=HH:MM:SS (pbs_resources(7B),
        # walltime).
        return {
            "queue": options["queue"],
            "account": options["account"],
            "resource_spec": options["resource_spec"],
            "job_extra_directives": directives,
        }

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """``<job id>.OU`` (PBS Professional) or ``<name>.o<number>`` (Torque)."""
        return [
            log_directory / f"{job_id}.OU",
            log_directory / f"{job_name}.o{sequence_number(job_id)}",
        ]


PBS = PbsSystem()
