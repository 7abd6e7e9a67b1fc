"""What one batch system is: its commands, its spellings and its job states.

A :class:`BatchSystem` is the only place where a batch system differs from another. The
job-queue backend (:mod:`daskdeploy.backends.jobqueue.backend`) does everything else the
same way for all of them: checks before submitting, job arrays, the scheduler's address,
worker lifetimes, log directories, diagnostics while waiting, replacement of ended jobs,
clean-up. A system is data (class attributes) plus a few small methods, most of which
have a default that runs the system's commands with a deadline and full diagnostics.

Adding a batch system: subclass :class:`BatchSystem`, fill in the attributes, override
:meth:`~BatchSystem.list_jobs` (parse the status command) and
:meth:`~BatchSystem.job_kwargs` (spell queue, account, output and tag for the
dask-jobqueue class), then declare the backend::

    class MyBackend(JobQueueBackend):
        system = MySystem()
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError, missing_commands, run_command

if TYPE_CHECKING:
    from ...options import Option, ResolvedOptions

__all__ = [
    "BatchJob",
    "BatchSystem",
    "JobAllocation",
    "JobArrays",
    "JobSettings",
    "SubmitLimits",
    "format_hms",
]

#: Seconds a healthy batch system takes to answer a query, at most.
QUICK = 20.0


@dataclass(frozen=True)
class BatchJob:
    """One job (or array task) as the batch system lists it.

    Attributes
    ----------
    id
        The job id the system's cancel command accepts (``"42_3"``, ``"17.2"``).
    name
        The job name; daskdeploy names its jobs after the deployment id.
    state
        The system's own word for the state (``"PENDING"``, ``"qw"``, ``"R"``).
    reason
        Why a job waits, when the system says (empty otherwise).
    nodes
        Where a running job runs, when the system says.
    tag
        The deployment id the job carries besides its name (a comment or a job context
        variable), ``""`` when the system has no such field.
    running
        Whether the job is running (not queued, held or ending).
    """

    id: str
    name: str
    state: str
    reason: str = ""
    nodes: str = ""
    tag: str = ""
    running: bool = False

    def describe(self) -> str:
        """``"42_3 PENDING (Resources)"`` style text for messages."""
        text = f"{self.id} {self.state}"
        if self.reason and self.reason not in ("None", "(null)"):
            text += f" ({self.reason})"
        if self.nodes and self.running:
            text += f" on {self.nodes}"
        return text


@dataclass(frozen=True)
class JobArrays:
    """How a batch system spells a job array (``sbatch --array``, ``qsub -t``).

    Attributes
    ----------
    submit_flag
        Submit-command argument asking for ``count`` tasks, a format string with
        ``{first}`` and ``{last}`` (``"--array={first}-{last}"``).
    index_variable
        Environment variable holding a task's index inside the job.
    first_index
        Index of the first task (0 for SLURM, 1 for SGE).
    task_id
        Format of one task's job id from ``{array}`` and ``{index}``, as the cancel and
        status commands accept it.
    output_substitutions
        Replacements applied to the header lines so output files are per task (SLURM's
        ``%j`` becomes ``%A_%a``).
    """

    submit_flag: str
    index_variable: str
    first_index: int
    task_id: str
    output_substitutions: tuple[tuple[str, str], ...] = ()

    def flag(self, count: int) -> str:
        """The submit argument for ``count`` tasks."""
        return self.submit_flag.format(first=self.first_index, last=self.first_index + count - 1)

    def task_ids(self, array_id: str, count: int) -> list[str]:
        """The job ids of the ``count`` tasks of array ``array_id``, in task order."""
        return [
            self.task_id.format(array=array_id, index=self.first_index + i) for i in range(count)
        ]


@dataclass(frozen=True)
class SubmitLimits:
    """How many jobs a site lets one deployment submit, as its configuration says.

    Attributes
    ----------
    max_array_tasks
        Most tasks one job array may have; ``None`` when unknown or unlimited.
    max_jobs
        Most jobs that may be queued at once; ``None`` when unknown or unlimited.
    names
        The site's name of each limit found (``{"max_array_tasks": "MaxArraySize"}``),
        for messages.
    """

    max_array_tasks: int | None = None
    max_jobs: int | None = None
    names: Mapping[str, str] = field(default_factory=dict)

    def array_sizes(self, jobs: int) -> list[int]:
        """The sizes of the job arrays that submit ``jobs`` jobs within the limit.

        >>> SubmitLimits(max_array_tasks=4).array_sizes(10)
        [4, 4, 2]
        """
        step = self.max_array_tasks or jobs or 1
        return [min(step, jobs - first) for first in range(0, jobs, step)]

    def named(self, limit: str) -> str:
        """``"MaxJobCount (10000)"``: a limit by the site's name and its value."""
        return f"{self.names.get(limit, limit)} ({getattr(self, limit)})"


def parse_limits(text: str, settings: Mapping[str, str]) -> SubmitLimits:
    """Read :class:`SubmitLimits` from a configuration listing (``name = value`` lines).

    ``settings`` maps a setting's name in ``text`` to the limit it sets
    (``{"MaxArraySize": "max_array_tasks"}``); several settings of one limit give the
    smallest. Zero and values that are not whole numbers mean no limit.

    >>> parse_limits("MaxArraySize = 1001\nmax_u_jobs 0", {"MaxArraySize": "max_array_tasks",
    ...     "max_u_jobs": "max_jobs"}).max_array_tasks
    1001
    """
    found: dict[str, int] = {}
    names: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\S+)\s*=?\s*(\d+)\s*$", line)
        if match is None or match.group(1) not in settings:
            continue
        limit, value = settings[match.group(1)], int(match.group(2))
        if value > 0 and value < found.get(limit, value + 1):
            found[limit], names[limit] = value, match.group(1)
    return SubmitLimits(**found, names=names)


@dataclass(frozen=True)
class JobAllocation:
    """How a job of a batch system names its hosts, and how it starts a process on one.

    Read by the ``batchjob`` backend, which runs Dask inside such a job (in place).

    Attributes
    ----------
    marker
        An environment variable the system sets in every job (and only there), e.g.
        SGE's ``SGE_JOB_SPOOL_DIR``.
    job_id
        The variable holding the job's id.
    host_file
        The variable naming the job's host file (``PE_HOSTFILE``, ``PBS_NODEFILE``).
    slots_per_line
        True when each line of the host file is ``host slots ...`` (SGE); False when a
        host appears once per slot (PBS, LSF, OAR).
    slots
        The variable with the job's slot count, used when there is no host file (a
        one-host job); ``None``: one slot.
    launcher
        The command that starts a process on one of the job's hosts, as part of the job,
        with ``{host}`` for the host (``qrsh -inherit {host}``, ``pbsdsh -h {host}``).
    launcher_joins_arguments
        True when the launcher runs its arguments as one shell command line (like
        ``rsh``): they are then quoted for that shell.
    """

    marker: str
    job_id: str
    host_file: str
    slots_per_line: bool
    slots: str | None
    launcher: tuple[str, ...]
    launcher_joins_arguments: bool = True

    def hosts(self, environ: Mapping[str, str], read: Any = None) -> list[tuple[str, int]]:
        """The job's hosts and the slots on each, in the host file's order.

        ``read`` reads a file's text (default: from disk); a job without a host file has
        its slot count (``slots``) on the local host.
        """
        path = environ.get(self.host_file)
        if not path:
            import socket

            return [(socket.gethostname(), int(environ.get(self.slots or "", "") or 1))]
        text = read(path) if read else Path(path).read_text()
        hosts: dict[str, int] = {}
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            count = int(words[1]) if self.slots_per_line and len(words) > 1 else 1
            hosts[words[0]] = hosts.get(words[0], 0) + count
        return list(hosts.items())

    def launch(self, host: str, command: Sequence[str]) -> list[str]:
        """The command line that runs ``command`` on ``host`` as part of the job."""
        words = [word.format(host=host) for word in self.launcher]
        if self.launcher_joins_arguments:
            return [*words, shlex.join(command)]
        return [*words, *command]


@dataclass(frozen=True)
class JobSettings:
    """What every worker job gets, whatever the system; :meth:`BatchSystem.job_kwargs`
    spells the system-specific parts of it.

    Attributes
    ----------
    job_name
        The deployment id (or ``dd-<id>`` in a dry run): the job's name and its tag.
    log_directory
        Where job output goes.
    walltime_seconds
        The time limit, in seconds.
    cores, memory, processes
        Per job: CPU cores, bytes of memory, worker processes.
    """

    job_name: str
    log_directory: str
    walltime_seconds: int
    cores: int
    memory: int
    processes: int


def format_hms(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24), the time-limit form most systems accept.

    >>> format_hms(5400), format_hms(100 * 3600)
    ('01:30:00', '100:00:00')
    """
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class BatchSystem:
    """A batch system as the job-queue backend sees it (data plus small functions).

    Class attributes are data; the methods that run commands have defaults built on that
    data, and the ones that parse a system's output are overridden per system.
    """

    #: Backend name, as dask-jobqueue's (``"sge"``).
    name: ClassVar[str]
    #: How users name the system (``"SGE"``, ``"PBS"``).
    title: ClassVar[str]
    #: The dask-jobqueue cluster class, ``"module:Class"``.
    cluster_class: ClassVar[str]
    #: The client commands to submit, list and cancel jobs.
    submit_command: ClassVar[str]
    status_command: ClassVar[str]
    cancel_command: ClassVar[str]
    #: Other client commands daskdeploy runs (checks, node lists).
    other_commands: ClassVar[tuple[str, ...]] = ()
    #: How to get the client commands when they are missing.
    install_hint: ClassVar[str] = ""
    #: Prefix of a job-script directive line (``"#SBATCH"``, ``"#$"``).
    directive_prefix: ClassVar[str]
    #: A regular expression whose group ``job_id`` finds the id in the submit output.
    job_id_pattern: ClassVar[str] = r"(?P<job_id>\d+)"
    #: How the system spells job arrays; ``None`` when daskdeploy submits one job each.
    arrays: ClassVar[JobArrays | None] = None
    #: What the system calls a queue (``"partition"`` for SLURM).
    queue_word: ClassVar[str] = "queue"
    #: How a job of this system names its hosts and starts processes on them (the
    #: ``batchjob`` backend); ``None`` when daskdeploy cannot run inside its jobs.
    allocation: ClassVar[JobAllocation | None] = None
    #: The backend that runs Dask inside one job of this system (``daskdeploy jobscript
    #: --in-place``); ``None`` when there is none.
    in_place_backend: ClassVar[str | None] = None
    #: The variable holding the directory a job was submitted from, when jobs start
    #: elsewhere (PBS: ``PBS_O_WORKDIR``); a job script changes to it first.
    submit_dir_variable: ClassVar[str | None] = None
    #: How to submit a job script file, when not ``<submit_command> THIS_FILE``.
    submit_hint: ClassVar[str] = ""
    #: Whether a job is a shell script (``daskdeploy jobscript`` writes driver jobs then);
    #: HTCondor's submit description is not.
    driver_scripts: ClassVar[bool] = True
    #: Whether the project's tests run this system for real (said in the docs).
    tested_with_daemon: ClassVar[bool] = False
    #: Options only this system has, on top of the job-queue ones.
    extra_options: ClassVar[tuple[Option, ...]] = ()
    #: Words of a refusal mapped to what to check, for the error message.
    rejection_hints: ClassVar[Mapping[str, str]] = {}
    #: Help of the generic options in this system's words (``queue``, ``account``,
    #: ``job_extra_directives``), e.g. naming the flag they become.
    option_help: ClassVar[Mapping[str, str]] = {}
    #: States of a job that is ending or ended though still listed.
    ending_states: ClassVar[frozenset[str]] = frozenset()
    #: The command that lists the site's configuration, read for :attr:`limit_settings`
    #: (``scontrol show config``); ``None``: no limits are read.
    limits_command: ClassVar[tuple[str, ...] | None] = None
    #: The settings in that listing that limit submissions, mapped to the limit each
    #: sets (``"max_array_tasks"``, ``"max_jobs"``; see :class:`SubmitLimits`).
    limit_settings: ClassVar[Mapping[str, str]] = {}
    #: Whether each task of a job array counts as one job towards ``max_jobs`` (SLURM's
    #: MaxJobCount), rather than the array as one job (SGE's max_u_jobs).
    array_tasks_are_jobs: ClassVar[bool] = True
    #: States of a listed job that no longer holds resources (a finished job some
    #: systems keep listing for a while); :meth:`cancel_and_wait` does not wait for them.
    gone_states: ClassVar[frozenset[str]] = frozenset()

    # --- data derived from the above ---------------------------------------------------

    @property
    def client_commands(self) -> tuple[str, ...]:
        """Every client command daskdeploy runs."""
        return (self.submit_command, self.status_command, self.cancel_command, *self.other_commands)

    def tools_missing_reason(self) -> str | None:
        """Say which client commands are missing from ``PATH``, or ``None`` if none is."""
        missing = missing_commands(self.client_commands)
        if not missing:
            return None
        return (
            f"the {self.title} client commands {', '.join(missing)} are not on PATH. Run this "
            f"on a login node of your {self.title} cluster (on some, after `module load` of "
            f"the batch system's module){f', or {self.install_hint}' if self.install_hint else ''}."
        )

    def configured(self) -> bool:
        """Whether the system seems set up here (asked before listing jobs unprompted)."""
        return True

    # --- checks before submitting ---------------------------------------------------------

    def limits(self) -> SubmitLimits:
        """The site's limits on submissions, read from :attr:`limits_command`.

        No limits when the system has no such command. Raises
        :class:`~daskdeploy.commands.CommandError` when the command fails.
        """
        if self.limits_command is None:
            return SubmitLimits()
        result = run_command(
            list(self.limits_command),
            timeout=QUICK,
            what=f"reading the {self.title} limits ({shlex.join(self.limits_command)})",
        )
        return parse_limits(result.stdout, self.limit_settings)

    def check_controller(self) -> str:
        """Ask the system whether it is up; return its answer ("" when it says nothing).

        By default, list this user's jobs: a server that answers that will take jobs.
        Raises :class:`~daskdeploy.commands.CommandError` with the system's words.
        """
        self.list_jobs()
        return ""

    #: Whether :meth:`test_submit` asks the system (else it returns ``None``).
    can_test_submit: ClassVar[bool] = False
    #: Whether to ask the controller before the submission check (needed where the
    #: check waits long for a server that is down); else only after a failed check.
    controller_check_first: ClassVar[bool] = True

    def test_submit(self, script: str, array_size: int | None = None) -> str | None:
        """Ask whether the system would accept ``script`` without submitting it.

        ``array_size``: as a job array of that many tasks. Returns the system's
        answer, or ``None`` when the system has no such check.
        Raises :class:`~daskdeploy.commands.CommandError` quoting the refusal.
        """
        return None

    # --- submitting, listing, cancelling ---------------------------------------------------

    def submit_args(self, script_path: Path, array_size: int | None) -> list[str]:
        """The command line that submits ``script_path`` (as an array of ``array_size``)."""
        return [self.submit_command, *self.array_args(array_size), str(script_path)]

    def array_args(self, array_size: int | None) -> list[str]:
        """The submit arguments making a job an array of ``array_size`` tasks ([] for none)."""
        if not array_size or self.arrays is None:
            return []
        return shlex.split(self.arrays.flag(array_size))

    def submit(self, script_path: Path, *, array_size: int | None = None) -> str:
        """Submit a job script and return its job id (the array's id for an array).

        Raises :class:`~daskdeploy.commands.CommandError` quoting the system's refusal.
        """
        result = run_command(
            self.submit_args(script_path, array_size),
            timeout=60.0,
            what=f"submitting worker jobs with {self.submit_command}",
        )
        match = re.search(self.job_id_pattern, result.stdout)
        if match is None:
            raise CommandError(
                f"{self.submit_command} printed no job id: "
                f"{result.stdout.strip() or result.stderr.strip()}",
                result,
            )
        return match.group("job_id")

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """This user's jobs the system still lists (all, or those named ``name``).

        Array tasks are one entry each. Raises
        :class:`~daskdeploy.commands.CommandError` when the status command fails.
        """
        raise NotImplementedError(f"{type(self).__name__}.list_jobs")

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs by id (an array task by its task id)."""
        if job_ids:
            run_command(
                [self.cancel_command, *job_ids],
                timeout=QUICK,
                what=f"cancelling jobs with {self.cancel_command}",
            )

    def cancel_deployment(self, name: str, job_ids: Sequence[str] = ()) -> None:
        """Cancel every job named ``name`` and the jobs ``job_ids`` (found by their tag)."""
        listed = [job.id for job in self.list_jobs(name)]
        self.cancel(sorted({*listed, *job_ids}))

    def cancel_and_wait(self, name: str, *, wait: float = 30.0) -> list[BatchJob]:
        """Cancel every job named ``name`` and wait until the system no longer lists them.

        Returns the jobs still listed when ``wait`` seconds ran out (empty when all are
        gone).
        """
        if not self.list_jobs(name):
            return []
        self.cancel_deployment(name)
        deadline = time.monotonic() + wait
        while True:
            left = [job for job in self.list_jobs(name) if job.state not in self.gone_states]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def job_alive(self, job_id: str) -> bool:
        """Whether the job is still queued or running (not ended, not ending).

        A failing status command counts as ended: the job is then replaced, and the
        replacement's own submission says what is wrong.
        """
        try:
            jobs = self.list_jobs()
        except CommandError:
            return False
        return any(job.id == job_id and job.state not in self.ending_states for job in jobs)

    def tag_of(self, job: BatchJob) -> str:
        """The deployment id a job carries besides its name (``""`` if none)."""
        return job.tag

    # --- where the workers run --------------------------------------------------------------

    def node_addresses(self, queue: str | None) -> list[str]:
        """Addresses of the hosts where jobs of ``queue`` may run ([] when unknown)."""
        return []

    # --- the job script ---------------------------------------------------------------------

    def walltime_text(self, seconds: int, given: str) -> str:
        """The time limit (``given`` by the user, ``seconds`` long) as the dask-jobqueue
        class expects it; ``HH:MM:SS`` by default."""
        return format_hms(seconds)

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """The system-specific keyword arguments of the dask-jobqueue class.

        Queue, account, output files, the deployment tag and the system's own options.
        The generic ones (cores, memory, processes, walltime, name, prologue, worker
        arguments) are set by the backend; ``job_extra_directives`` returned here come
        before the user's.
        """
        raise NotImplementedError(f"{type(self).__name__}.job_kwargs")

    def extra_directives(self, ours: list[str], users: list[str]) -> Any:
        """The class's ``job_extra_directives``: daskdeploy's directives, then the user's."""
        return [*ours, *users]

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """Where the output of job ``job_id`` goes, for the last lines shown on failure."""
        return [log_directory / f"{job_name}-{job_id}.out"]

    def dry_run_settings(self) -> dict[str, Any]:
        """Extra keyword arguments of the class for a job script rendered without a cluster."""
        return {}


def strip_prefix(text: str, command: str) -> str:
    """Remove ``"<command>: "`` (and ``"error: "``) at the start of each line of ``text``."""
    return "\n".join(
        re.sub(rf"^{re.escape(command)}: (error: )?", "", line) for line in text.splitlines()
    )
