"""The job-queue backend: workers arrive as batch jobs (dask-jobqueue), on any system.

One class, :class:`JobQueueBackend`, is the ``slurm``, ``sge``, ``pbs``, ``lsf``,
``htcondor``, ``oar`` and ``moab`` backends; each of those is this class with a
:class:`~daskdeploy.backends.jobqueue.system.BatchSystem` that says how its system differs.

The client and scheduler run where ``deploy()`` is called (a login node or a small driver
job); every worker job runs ``dask worker`` and connects back. What daskdeploy adds to
plain dask-jobqueue, on every system:

* checks before anything is submitted: the client commands exist, the controller answers,
  and the system accepts the job script where it can say so without running it
  (``sbatch --test-only``, ``qsub -w v``);
* a submission that the system refuses raises with its message instead of a log line
  followed by a time-out; workers that do not arrive are explained with each job's state
  (and reason, where the system gives one) and the output of jobs that already ended;
* jobs started together go in one job array where the system has arrays (faster, and
  kinder to the controller);
* every job carries the deployment id as its name, so close, an exception, SIGINT or
  SIGTERM cancel exactly this deployment's jobs and wait until the system has let them go;
* workers retire before the job's time limit (``--lifetime`` with a stagger), and a job
  that ends on its own is replaced, so an adaptive or fixed cluster keeps its size;
* each worker spills to a private directory in the node's ``$TMPDIR``, removed when its
  job ends, and job output goes to a per-deployment log directory removed at close.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError
from ...credentials import CredentialFiles, write_shared
from ...errors import DeploymentError, OptionError
from ...network import address_facing
from ...options import (
    INTERFACE,
    NANNY,
    WORKER_EXTRA_ARGS,
    WORKER_PYTHON,
    Option,
    ResolvedOptions,
    adapt_range,
    boolean,
    duration_seconds,
    memory_size,
    text,
    text_list,
    whole_number,
    worker_lifetime_setting,
)
from ...scratch import shared_cache_dir
from ..base import (
    Availability,
    Backend,
    Running,
    StartContext,
    dashboard_link,
)
from ..shared import worker_processes
from ..shared.nannies import stop_workers_through_nannies
from .jobscript import WORKER_DIR_VARIABLE, lifetime_args, parse_walltime, worker_scratch_lines
from .leftovers import BatchJobLeftovers
from .system import BatchSystem, JobSettings, SubmitLimits, strip_prefix

if TYPE_CHECKING:
    import click

__all__ = ["JobQueueBackend", "default_log_root"]

_DRY_RUN_ID = "dd-<id>"


def default_log_root(system: str) -> Path:
    """Directory under which per-deployment job output of ``system`` goes by default.

    ``$XDG_CACHE_HOME/daskdeploy/<system>-logs`` (``~/.cache/...``), shared with the nodes.
    """
    return shared_cache_dir(f"{system}-logs")


def _walltime(value: Any) -> str:
    if not isinstance(value, str):
        # YAML reads an unquoted 12:00:00 as the number 43200, which SLURM would take as
        # minutes (30 days): refuse numbers rather than guess.
        raise ValueError(
            f"expected a time limit as text such as '01:00:00' (quote it in YAML, "
            f"where an unquoted 12:00:00 becomes the number 43200), got {value!r}"
        )
    parse_walltime(value)
    return value.strip()


def _job_queue_options(system: BatchSystem) -> tuple[Option, ...]:
    """The options of a job-queue backend on ``system``, in the order ``--help`` shows."""
    other_word = "queue" if system.queue_word != "queue" else "partition"

    def help_of(option: str, default: str) -> str:
        return system.option_help.get(option, default)

    return (
        Option("processes", whole_number(1), "Worker processes per job."),
        Option(
            "cores",
            whole_number(1),
            "CPU cores per job (null: processes x threads_per_worker); each worker gets "
            "cores / processes threads.",
            nullable=True,
        ),
        Option(
            "memory",
            memory_size,
            "Memory per job, e.g. '8GB' (null: processes x memory_per_worker).",
            nullable=True,
        ),
        Option("walltime", _walltime, "Time limit of each job, e.g. '01:00:00'."),
        Option(
            system.queue_word,
            text,
            help_of("queue", f"{system.title} {system.queue_word}; null: the system's default."),
            nullable=True,
            aliases=(other_word,),
        ),
        Option("account", text, help_of("account", "Account to charge."), nullable=True),
        Option(
            "job_extra_directives",
            text_list,
            help_of("job_extra_directives", f"More {system.directive_prefix} lines."),
            aliases=("job_directives",),
        ),
        Option(
            "job_directives_skip",
            text_list,
            f"Drop generated {system.directive_prefix} lines containing any of these texts.",
        ),
        Option(
            "job_script_prologue",
            text_list,
            "Shell lines run before the worker starts, e.g. ['module load python'].",
        ),
        WORKER_EXTRA_ARGS,
        Option(
            "adapt",
            adapt_range,
            "Start adaptive: [minimum, maximum] workers, grown under load and shrunk when "
            "idle (null: a fixed number of workers).",
            nullable=True,
        ),
        Option(
            "job_array",
            boolean,
            "Submit jobs started together as one job array (faster, fewer submissions)"
            + ("." if system.arrays else f"; {system.title} jobs are submitted one by one."),
        ),
        Option(
            "lifetime",
            worker_lifetime_setting,
            "When workers retire: 'auto' (before the walltime, staggered), 'off', or a "
            "duration such as '50 minutes'.",
        ),
        Option(
            "death_timeout",
            duration_seconds,
            "Seconds a worker waits for a lost scheduler before exiting its job.",
        ),
        INTERFACE,
        Option(
            "scheduler_host",
            text,
            "Address the scheduler listens on (null: the address through which this host "
            "reaches the partition's nodes; 127.0.0.1 when the nodes are this host).",
            nullable=True,
        ),
        Option(
            "local_directory",
            text,
            "Worker spill directory on the node (null: a private directory in the node's "
            "$TMPDIR, removed when the job ends).",
            nullable=True,
        ),
        Option(
            "log_directory",
            text,
            "Directory for job output, kept (null: a per-deployment directory under "
            "~/.cache/daskdeploy/<backend>-logs, removed at close unless keep_logs).",
            nullable=True,
        ),
        Option("keep_logs", boolean, "Keep the default job output directory after close."),
        WORKER_PYTHON,
        NANNY,
        Option(
            "worker_dashboard",
            boolean,
            "Serve a dashboard from every worker. Off by default: it listens on the node's "
            "network and loading it adds about half a second of CPU to each worker's start.",
        ),
        *system.extra_options,
    )


class JobQueueBackend(BatchJobLeftovers, Backend):
    """Worker processes in batch jobs, submitted from here (dask-jobqueue).

    Subclasses set :attr:`system`; name, summary, options, examples and the leftovers'
    key follow from it.
    """

    system: ClassVar[BatchSystem]
    kind = "cluster"
    default_workers = "one job's processes"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        system = cls.__dict__.get("system")
        if system is None:
            return
        title, name = system.title, system.name
        cls.name = name
        cls.summary = cls.__dict__.get(
            "summary", f"{title} batch jobs as workers (dask-jobqueue), scale and adapt"
        )
        cls.extra_options = _job_queue_options(system)
        cls.leftovers_key = f"{name}_jobs"
        check = "job script + submission check" if system.can_test_submit else "job script"
        cls.run_examples = cls.__dict__.get("run_examples") or (
            f"daskdeploy run --backend {name} -n 8 --dry-run my_analysis.py   # {title} {check}",
        )

    def cli_commands(self) -> Sequence[click.Command]:
        """``daskdeploy jobscript``: a driver job script for any job-queue system."""
        from .commands import jobscript

        return (jobscript,)

    def available(self) -> Availability:
        """Available when dask-jobqueue is installed and the client commands are on PATH."""
        if importlib.util.find_spec("dask_jobqueue") is None:
            return Availability.missing(
                "dask-jobqueue is not installed. Install it with: pip install "
                f"'daskdeploy[{self.system.name}]'"
            )
        missing = self.system.tools_missing_reason()
        if missing:
            return Availability.missing(missing)
        return Availability.ok()

    def validate(self, options: ResolvedOptions) -> None:
        """Reject inconsistent combinations (cores vs threads, workers with adapt)."""
        _Layout.from_options(options)
        if options["adapt"] is not None and options["workers"] is not None:
            raise OptionError(
                "Give either workers (a fixed number) or adapt=[minimum, maximum], not both."
            )

    def submit_supervisor(
        self, options: ResolvedOptions, command: str, deployment_id: str, directory: Path
    ) -> str | None:
        """Submit ``command`` as a driver-sized job of this system (see the base class)."""
        job_name = _supervisor_job_name(deployment_id)
        script = driver_job_script(
            self, options, job_name, [f"cd {shlex.quote(os.getcwd())}"], command, str(directory)
        )
        path = directory / f".{job_name}.job"
        path.write_text(script)
        try:
            return self.system.submit(path)
        finally:  # every system copies the script when it accepts it
            path.unlink(missing_ok=True)

    def supervisor_alive(self, deployment_id: str) -> bool:
        """Whether the supervisor's job is still queued or running."""
        name = _supervisor_job_name(deployment_id)
        try:
            jobs = self.system.list_jobs(name)
        except CommandError:
            return False
        return any(job.state not in self.system.ending_states for job in jobs)

    def cancel_supervisor(self, deployment_id: str) -> None:
        """Cancel the supervisor's job, found by its name."""
        self.system.cancel_deployment(_supervisor_job_name(deployment_id))

    def time_limit(self, options: ResolvedOptions) -> float | None:
        """The jobs' walltime: a named deployment's workers end with their jobs."""
        return float(parse_walltime(options["walltime"])) if options.get("walltime") else None

    def describe(self, options: ResolvedOptions) -> str:
        """Summarise the jobs and show the job script each would run."""
        layout = _Layout.from_options(options)
        if options["adapt"] is not None:
            count = f"Adaptive between {options['adapt'][0]} and {options['adapt'][1]} workers"
        else:
            workers = options["workers"] or layout.processes
            jobs = layout.jobs_for(workers)
            count = f"{jobs} job(s) for {jobs * layout.processes} worker(s)"
            if options["job_array"] and self.system.arrays and jobs > 1:
                count += ", submitted as one job array"
        lines = [f"{count}. {layout.describe(self.system.title)}"]
        if importlib.util.find_spec("dask_jobqueue") is None:
            lines.append("(install dask-jobqueue to see the job script)")
        else:
            lines.append("Job script:")
            lines += [f"    {line}" for line in self.job_script(options).splitlines()]
        return "\n".join(lines)

    def check(self, options: ResolvedOptions) -> str:
        """Ask the system whether it is up and would accept the jobs as they will be
        submitted (each distinct job array, within the site's limits).

        Returns its answer (SLURM's start estimate, SGE's verification), or says that
        the system cannot check a script without running it.
        """
        return self._checked(options)[0]

    def check_scale(self, options: ResolvedOptions, workers: int) -> None:
        """Refuse ``workers`` workers when their jobs exceed the site's job limit."""
        try:
            limits = self.system.limits()
        except CommandError as refused:
            raise DeploymentError(_rejection_message(self.system, refused)) from None
        _submissions(self.system, options, limits, workers)

    def _checked(self, options: ResolvedOptions) -> tuple[str, SubmitLimits]:
        """:meth:`check`'s answer, and the site's limits it read (once per deployment)."""
        system = self.system
        missing = system.tools_missing_reason()
        if missing:
            raise DeploymentError(f"Cannot submit {system.title} jobs: {missing}")
        try:
            if system.controller_check_first or not system.can_test_submit:
                system.check_controller()
            limits = system.limits()
            arrays = _submissions(system, options, limits, _most_workers(options))
            script = self.job_script(options) if system.can_test_submit else ""
            answers = [
                system.test_submit(script, size if size > 1 else None)
                for size in sorted(set(arrays or [1]), reverse=True)
            ]
        except CommandError as refused:
            raise DeploymentError(_rejection_message(system, self._why(refused))) from None
        note = _arrays_note(system, limits, arrays)
        if answers[0] is None:
            return (
                f"{note}{system.title} cannot check a job script without submitting it; "
                f"{system.submit_command} will be given the script above.",
                limits,
            )
        return note + "; ".join(answer for answer in answers if answer), limits

    def _why(self, refused: CommandError) -> CommandError:
        """The controller's error when it is down, else ``refused`` (the script's refusal).

        Where the submission check fails fast on a server that is down, the controller
        is asked only when the check failed: its answer says which it was.
        """
        if self.system.controller_check_first or not self.system.can_test_submit:
            return refused
        try:
            self.system.check_controller()
        except CommandError as down:
            return down
        return refused

    def job_script(self, options: ResolvedOptions) -> str:
        """The script a worker job would run, with placeholders for run-time values."""
        from .cluster import deploy_cluster_class, isolated_config_name

        log_dir = options["log_directory"] or str(default_log_root(self.name) / _DRY_RUN_ID)
        tls: dict[str, Any] = {}
        if options["tls"]:
            files = CredentialFiles(Path("<credentials-dir>"))  # made at start, removed at close
            tls = {"security": files.security(), "protocol": "tls://"}
        job_cls = deploy_cluster_class(self.system).job_cls
        job = job_cls(
            scheduler=f"{'tls' if tls else 'tcp'}://<scheduler-address>:<port>",
            name="<worker-name>",
            config_name=isolated_config_name(self.system),
            **_job_kwargs(self.system, options, _DRY_RUN_ID, log_dir),
            **tls,
        )
        return job.job_script()

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Check with the system, start the scheduler here, submit the worker jobs."""
        from .cluster import ArraySubmitter, deploy_cluster_class, isolated_config_name

        system = self.system
        _, limits = self._checked(options)
        layout = _Layout.from_options(options)
        log_dir = _log_directory(self.name, options, context)
        script_dir = context.scratch_dir / "job-scripts"
        script_dir.mkdir()
        submitter = ArraySubmitter(
            system, script_dir, use_arrays=options["job_array"], limits=limits
        )
        job_name = context.deployment_id
        # The worker jobs read the credentials through the shared file system.
        credentials = write_shared(job_name) if options["tls"] else None
        security = credentials.security() if credentials else None
        try:
            cluster = deploy_cluster_class(system)(
                name=job_name,
                config_name=isolated_config_name(system),
                scheduler_options=_scheduler_options(system, options),
                submitter=submitter,
                security=security,
                retire_after=_earliest_retirement(options),
                check_workers=lambda workers: _submissions(system, options, limits, workers),
                **_job_kwargs(system, options, job_name, str(log_dir.path)),
            )
        except BaseException:
            log_dir.remove()
            if credentials:
                credentials.remove()
            raise
        stop: list[Callable[[], Any]] = [log_dir.remove, lambda: _cancel_all(system, job_name)]
        if credentials:
            stop.insert(0, credentials.remove)  # last: every job has been cancelled by then
        try:
            if options["adapt"] is not None:
                minimum, maximum = options["adapt"]
                cluster.adapt(minimum=minimum, maximum=maximum)
                expected = minimum
            else:
                jobs = layout.jobs_for(options["workers"] or layout.processes)
                cluster.scale(jobs=jobs)
                expected = jobs * layout.processes
        except BaseException:
            _close_quietly(cluster)
            for step in reversed(stop):
                step()
            raise
        watcher = _StartupWatcher(system, submitter, job_name, log_dir.path)
        return Running(
            address=cluster.scheduler_address,
            cluster=cluster,
            security=security,
            expected_workers=expected,
            scalable=True,
            dashboard_link=dashboard_link(cluster) if options["dashboard"] else None,
            stop=stop,
            # Nannies told to stop end their jobs by themselves, at once; a job cancelled
            # first waits for its processes to take SIGTERM.
            stop_workers=lambda: stop_workers_through_nannies(cluster),
            check=watcher.check,
            diagnose=watcher.diagnose,
            record={"log_directory": str(log_dir.path), "remove_logs": log_dir.owned},
        )


def driver_job_script(
    backend: JobQueueBackend,
    options: ResolvedOptions,
    job_name: str,
    prologue: list[str],
    command: str,
    output_dir: str = ".",
) -> str:
    """A job script with the header of a one-process job of ``options`` that runs
    ``prologue`` then ``command`` instead of a worker (see :mod:`.driver`).

    Its output goes to ``output_dir`` (the submission directory by default), named after
    the job.
    """
    from .cluster import deploy_cluster_class, isolated_config_name

    system = backend.system
    job = deploy_cluster_class(system).job_cls(
        scheduler="tcp://<unused>:0",
        name=job_name,
        config_name=isolated_config_name(system),
        **_job_kwargs(system, options, job_name, output_dir),
    )
    job._job_script_prologue = prologue
    job._command_template = command
    return job.job_script()


def _supervisor_job_name(deployment_id: str) -> str:
    """``dd-3f9a61c2-up``: within PBS's 15 characters, and not the worker jobs' name."""
    return f"{deployment_id}-up"


# --- layout: jobs, processes, cores, memory ------------------------------------------------


def _most_workers(options: ResolvedOptions) -> int:
    """The most workers these options start at once (adapt's maximum)."""
    if options["adapt"] is not None:
        return options["adapt"][1]
    return options["workers"] or options["processes"]


def _submissions(
    system: BatchSystem, options: ResolvedOptions, limits: SubmitLimits, workers: int
) -> list[int]:
    """The sizes of the job arrays that start ``workers`` workers ([] for single jobs).

    Raises :class:`~daskdeploy.DeploymentError` when the jobs exceed the site's limit
    on queued jobs.
    """
    layout = _Layout.from_options(options)
    jobs = layout.jobs_for(workers)
    arrays = limits.array_sizes(jobs) if options["job_array"] and system.arrays and jobs > 1 else []
    counted = jobs if system.array_tasks_are_jobs or not arrays else len(arrays)
    if limits.max_jobs is not None and counted > limits.max_jobs:
        unit = "jobs" if system.array_tasks_are_jobs or not arrays else "job arrays"
        raise DeploymentError(
            f"{workers} workers need {counted} {system.title} {unit} ({layout.processes} "
            f"worker(s) per job), more than the site allows: {limits.named('max_jobs')}. "
            f"Nothing was submitted. Ask for fewer workers (--workers), or more workers "
            f"per job (--option processes=N)."
        )
    return arrays


def _arrays_note(system: BatchSystem, limits: SubmitLimits, arrays: list[int]) -> str:
    """Says how many job arrays will be submitted when the site's limit splits them."""
    if len(arrays) < 2:
        return ""
    return (
        f"{sum(arrays)} jobs go as {len(arrays)} job arrays ({', '.join(map(str, arrays))} "
        f"tasks): {system.title}'s {limits.named('max_array_tasks')} limits each array. "
    )


class _Layout:
    """How workers map onto jobs: processes, cores and memory per job."""

    def __init__(self, processes: int, cores: int, memory: int, threads: int) -> None:
        self.processes = processes
        self.cores = cores
        self.memory = memory
        self.threads = threads

    @classmethod
    def from_options(cls, options: ResolvedOptions) -> _Layout:
        processes = options["processes"]
        cores = options["cores"] or processes * options["threads_per_worker"]
        if cores % processes:
            raise OptionError(
                f"cores ({cores}) must be a multiple of processes ({processes}) so every "
                f"worker gets the same number of threads."
            )
        threads = cores // processes
        explicit_threads = options.sources.get("threads_per_worker", "default") != "default"
        if options["cores"] and explicit_threads and threads != options["threads_per_worker"]:
            raise OptionError(
                f"cores={cores} with processes={processes} gives {threads} thread(s) per "
                f"worker, but threads_per_worker={options['threads_per_worker']} was asked "
                f"for. Set only one of cores and threads_per_worker."
            )
        memory = options["memory"] or processes * options["memory_per_worker"]
        return cls(processes, cores, memory, threads)

    def jobs_for(self, workers: int) -> int:
        return -(-workers // self.processes)

    def describe(self, title: str) -> str:
        from dask.utils import format_bytes

        return (
            f"{title} jobs of {self.processes} worker process(es) x {self.threads} thread(s): "
            f"{self.cores} core(s) and {format_bytes(self.memory)} per job."
        )


# --- job script ---------------------------------------------------------------------------


def _job_kwargs(
    system: BatchSystem, options: ResolvedOptions, job_name: str, log_dir: str
) -> dict[str, Any]:
    """Keyword arguments of the system's dask-jobqueue job class for these options."""
    layout = _Layout.from_options(options)
    walltime = parse_walltime(options["walltime"])
    settings = JobSettings(
        job_name=job_name,
        log_directory=log_dir,
        walltime_seconds=walltime,
        cores=layout.cores,
        memory=layout.memory,
        processes=layout.processes,
    )
    specific = system.job_kwargs(options, settings)
    prologue = list(options["job_script_prologue"])
    local_directory = options["local_directory"]
    if local_directory is None:
        prologue += worker_scratch_lines(job_name)
        local_directory = f'"${WORKER_DIR_VARIABLE}"'
    worker_args = [] if options["worker_dashboard"] else ["--no-dashboard"]
    if options["nanny"]:
        worker_args += worker_processes.quoted_nanny_arguments()
    worker_args += lifetime_args(options["lifetime"], walltime)
    worker_args += options["worker_extra_args"]
    kwargs = {
        "cores": layout.cores,
        "memory": layout.memory,
        "processes": layout.processes,
        "walltime": system.walltime_text(walltime, options["walltime"]),
        "job_name": job_name,
        "job_directives_skip": list(options["job_directives_skip"]),
        "job_script_prologue": prologue,
        "worker_extra_args": worker_args,
        "local_directory": local_directory,
        "death_timeout": int(options["death_timeout"]),
        "python": options["python"] or sys.executable,
        "nanny": options["nanny"],
        "interface": options["interface"],
        "log_directory": None,
        **specific,
        "job_extra_directives": system.extra_directives(
            specific.get("job_extra_directives", []), list(options["job_extra_directives"])
        ),
    }
    # Last, whatever a system did with the prologue: the worker's Python starts after it.
    variables = worker_processes.environment()
    if variables:
        kwargs["job_script_prologue"] = [*kwargs["job_script_prologue"], _export_line(variables)]
    return kwargs


def _export_line(variables: dict[str, str]) -> str:
    """``export A=1 B=2``: the job script's line that sets ``variables`` for the worker."""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def _earliest_retirement(options: ResolvedOptions) -> float | None:
    """Seconds after which a worker may leave at the end of its lifetime (None: never)."""
    args = lifetime_args(options["lifetime"], parse_walltime(options["walltime"]))
    if not args:
        return None
    values = dict(zip(args[::2], (float(value.rstrip("s")) for value in args[1::2]), strict=True))
    return values["--lifetime"] - values.get("--lifetime-stagger", 0.0)


# --- scheduler address ------------------------------------------------------------------


def _scheduler_options(system: BatchSystem, options: ResolvedOptions) -> dict[str, Any]:
    scheduler: dict[str, Any] = {
        "port": 0,
        "dashboard": options["dashboard"],
        "dashboard_address": "127.0.0.1:0",
    }
    if options["scheduler_host"]:
        scheduler["host"] = options["scheduler_host"]
    elif options["interface"]:
        scheduler["interface"] = options["interface"]
    else:
        scheduler["host"] = _address_facing_nodes(system, options[system.queue_word])
    return scheduler


def _address_facing_nodes(system: BatchSystem, queue: str | None) -> str:
    """This host's address on the route to the queue's hosts (loopback if local)."""
    try:
        nodes = system.node_addresses(queue)
    except CommandError:
        nodes = []
    return address_facing(nodes)


# --- logs, checks and clean-up ----------------------------------------------------------


class _LogDirectory:
    def __init__(self, path: Path, owned: bool) -> None:
        self.path = path
        self.owned = owned

    def remove(self) -> None:
        if self.owned:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


def _log_directory(backend: str, options: ResolvedOptions, context: StartContext) -> _LogDirectory:
    if options["log_directory"]:
        path = Path(options["log_directory"]).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return _LogDirectory(path, owned=False)
    path = default_log_root(backend) / context.deployment_id
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return _LogDirectory(path, owned=not options["keep_logs"])


def _rejection_message(system: BatchSystem, exc: CommandError) -> str:
    if exc.result is None or exc.result.args[:1] != (system.submit_command,):
        return f"{system.title} is not usable from here: {exc}"
    return (
        f"{system.title} would reject the worker job script: {_refusal(system, exc)} Nothing "
        f"was submitted."
    )


def _refusal(system: BatchSystem, exc: CommandError) -> str:
    """What the submit command said (its own words, on one line), and what to check."""
    said = strip_prefix(exc.result.output_tail() if exc.result else str(exc), system.submit_command)
    said = " ".join(line.strip() for line in said.splitlines() if line.strip()).rstrip(".")
    lowered = said.lower()
    found = (hint for word, hint in system.rejection_hints.items() if word in lowered)
    hints = list(dict.fromkeys(found))
    return f"{said}." + (f" Hint: {'; '.join(hints)}." if hints else "")


def _cancel_all(system: BatchSystem, job_name: str) -> None:
    left = system.cancel_and_wait(job_name)
    if left:
        raise DeploymentError(
            f"{system.title} still lists jobs of {job_name} 30 s after "
            f"{system.cancel_command}: {', '.join(job.describe() for job in left)}"
        )


def _close_quietly(cluster: Any) -> None:
    # The failure being reported is the earlier one; a second from close() would hide it.
    with contextlib.suppress(Exception):
        cluster.close()


class _StartupWatcher:
    """Explains, while ``deploy()`` waits for workers, why they are not there yet."""

    def __init__(self, system: BatchSystem, submitter: Any, job_name: str, log_dir: Path) -> None:
        self.system = system
        self.submitter = submitter
        self.job_name = job_name
        self.log_dir = log_dir
        self._last_poll = 0.0

    def check(self) -> None:
        """Raise as soon as the wait is known to be hopeless."""
        if self.submitter.failures:
            failure = self.submitter.failures[0]
            if isinstance(failure, CommandError) and failure.result is not None:
                failure = _refusal(self.system, failure)  # its words, with what to check
            raise DeploymentError(f"{self.system.title} refused the worker jobs: {failure}")
        if time.monotonic() - self._last_poll < 2.0 or not self.submitter.submitted:
            return
        self._last_poll = time.monotonic()
        listed = {job.id for job in self.system.list_jobs(self.job_name)}
        ended = [job_id for job_id in self.submitter.submitted if job_id not in listed]
        if ended:
            raise DeploymentError(
                f"Worker job(s) {', '.join(ended)} ended before their workers connected."
                + self._log_tails(ended)
            )

    def diagnose(self) -> str:
        """Describe every job of the deployment: state and the system's reason."""
        system = self.system
        try:
            jobs = system.list_jobs(self.job_name)
        except CommandError as exc:
            return f"({system.status_command} failed: {exc})"
        if not jobs:
            return f"{system.title} lists no job of this deployment." + self._log_tails(
                self.submitter.submitted
            )
        states = "; ".join(job.describe() for job in jobs)
        text = f"Worker jobs: {states}."
        if any(not job.running for job in jobs):
            text += (
                f" Queued jobs wait for {system.title} (see `{system.status_command}`); raise "
                f"timeout to wait longer."
            )
        return text

    def _log_tails(self, job_ids: list[str]) -> str:
        tails = []
        for job_id in job_ids[:3]:
            for path in self.system.output_files(self.log_dir, self.job_name, job_id):
                try:
                    lines = path.read_text(errors="replace").strip().splitlines()[-15:]
                except OSError:
                    continue
                tails.append(f"\n--- last lines of job {job_id}'s output ---\n" + "\n".join(lines))
        return "".join(tails)
