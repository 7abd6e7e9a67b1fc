"""The ``batchjob`` backend: Dask inside a PBS, SGE, LSF or OAR job you already hold.

Run from a job script (``qsub -pe smp 8 job.sh``, ``qsub -l nodes=2:ppn=8``, ``bsub -n 16``,
``oarsub -l nodes=2``), ``deploy("batchjob")`` (or ``deploy()``, which recognises the job)
starts the scheduler here, in the job script's process, and one ``dask worker`` on every
host of the job, started with the batch system's own launcher (``qrsh -inherit``,
``pbsdsh``, ``blaunch``, ``oarsh``) so that the workers are part of the job: the system
accounts for them and ends them with it. Each host runs one single-threaded worker process
per slot it was given (``threads_per_worker`` set: that many threads per worker). No
other job is submitted.

The SLURM counterpart is the ``allocation`` backend (``srun``); what differs between the
other systems is data (:class:`~daskdeploy.backends.jobqueue.system.JobAllocation`): the
variable that marks a job, its host file and its launcher.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...credentials import write_shared
from ...errors import DeploymentError, OptionError
from ...network import address_facing
from ...options import (
    DEATH_TIMEOUT,
    INTERFACE,
    NANNY,
    WORKER_EXTRA_ARGS,
    WORKER_PYTHON,
    Option,
    ResolvedOptions,
    text,
)
from ..base import Availability, Backend, Running, StartContext
from ..shared.layout import TaskLayout, TaskResources, layout_for
from ..shared.nannies import stop_workers_through_nannies
from ..shared.scheduler_cluster import running_with_layout, scheduler_only_cluster
from ..shared.worker_processes import worker_command
from .system import BatchSystem, JobAllocation

__all__ = ["BatchJobBackend", "HostWorkers", "current_job", "plan_hosts"]

_STOP_GRACE = 3.0  # seconds for the workers to leave after the scheduler closed
_SLOT = "host of the job"


@dataclass(frozen=True)
class CurrentJob:
    """The batch job this process runs in: its system, id and hosts with their slots."""

    system: BatchSystem
    allocation: JobAllocation
    job_id: str
    hosts: list[tuple[str, int]]

    @property
    def slots(self) -> int:
        """All slots of the job."""
        return sum(slots for _, slots in self.hosts)

    def describe(self) -> str:
        """``"SGE job 42 (8 slots on vm)"``."""
        where = ", ".join(f"{slots} on {host}" for host, slots in self.hosts)
        return f"{self.system.title} job {self.job_id} ({where})"


def _systems() -> list[BatchSystem]:
    from ...registry import loaded_backends
    from .backend import JobQueueBackend

    return [
        backend.system
        for backend in loaded_backends()
        if isinstance(backend, JobQueueBackend) and backend.system.allocation is not None
    ]


def current_job(environ: dict[str, str] | os._Environ[str] = os.environ) -> CurrentJob | None:
    """The job of a batch system (other than SLURM) that ``environ`` belongs to, if any."""
    for system in _systems():
        allocation = system.allocation
        assert allocation is not None
        if environ.get(allocation.marker):
            return CurrentJob(
                system,
                allocation,
                environ.get(allocation.job_id, "?"),
                allocation.hosts(environ),
            )
    return None


@dataclass(frozen=True)
class HostWorkers:
    """The Dask workers one host of the job runs."""

    host: str
    index: int
    processes: int
    threads: int


def _layout(options: ResolvedOptions, slots: int) -> TaskLayout:
    """Workers of a host with ``slots`` slots: one single-threaded process per slot, or
    with ``threads_per_worker`` set, as many workers of that many threads as fit."""
    explicit = options.sources.get("threads_per_worker", "default") != "default"
    if not explicit:
        return layout_for(TaskResources(slots, None, _SLOT), options)
    threads = options["threads_per_worker"]
    return TaskLayout(max(1, slots // threads), min(threads, slots), options["memory_per_worker"])


def plan_hosts(options: ResolvedOptions, job: CurrentJob) -> list[HostWorkers]:
    """The workers of each host, filling hosts in order up to ``workers`` (all slots if
    unset); hosts left without a worker are not used.

    Raises
    ------
    OptionError
        When ``workers`` is more than the job's slots hold.
    """
    plans = []
    for index, (host, slots) in enumerate(job.hosts):
        layout = _layout(options, slots)
        plans.append(HostWorkers(host, index, layout.processes, layout.threads))
    most = sum(plan.processes for plan in plans)
    wanted = options["workers"] or most
    if wanted > most:
        raise OptionError(
            f"workers={wanted} but {job.describe()} holds at most {most} worker(s). Ask "
            f"the batch system for more slots, or for fewer workers."
        )
    chosen = []
    for plan in plans:
        take = min(plan.processes, wanted)
        if take:
            chosen.append(HostWorkers(plan.host, plan.index, take, plan.threads))
        wanted -= take
    return chosen


class BatchJobBackend(Backend):
    """Scheduler in the job script, workers on the job's hosts via the system's launcher."""

    name = "batchjob"
    kind = "in-place"
    summary = "inside a PBS/SGE/LSF/OAR job: scheduler here, workers on the job's hosts"
    run_examples: ClassVar[tuple[str, ...]] = (
        "daskdeploy run my_analysis.py   # in a qsub/bsub/oarsub job script: uses its slots",
    )
    default_workers = "one per slot of the job"
    extra_options: ClassVar[tuple[Option, ...]] = (
        DEATH_TIMEOUT,
        WORKER_EXTRA_ARGS,
        INTERFACE,
        Option(
            "scheduler_host",
            text,
            "Address the scheduler listens on (null: this host's address facing the job's "
            "other hosts; 127.0.0.1 when they are all this machine).",
            nullable=True,
        ),
        WORKER_PYTHON,
        NANNY,
    )

    def available(self) -> Availability:
        """Available inside a job of a batch system whose launcher is on PATH."""
        job = current_job()
        if job is None:
            return Availability.missing(
                "not inside a PBS, SGE, LSF or OAR job (none of their job variables is set). "
                "Use it in a job script; `daskdeploy jobscript` writes one, or use the "
                "sge/pbs/lsf/oar backend to submit worker jobs from here."
            )
        launcher = job.allocation.launcher[0]
        if not _which(launcher):
            return Availability.missing(
                f"{launcher}, which starts the workers on the hosts of {job.describe()}, is "
                f"not on PATH. Load the batch system's module in the job script."
            )
        return Availability.ok(job.describe())

    def detect(self) -> bool:
        """Recognise a job of PBS, SGE, LSF or OAR (SLURM's is the ``allocation`` backend's)."""
        return current_job() is not None

    def validate(self, options: ResolvedOptions) -> None:
        """Refuse more workers than the job's slots hold (when inside a job)."""
        job = current_job()
        if job is not None:
            plan_hosts(options, job)

    def describe(self, options: ResolvedOptions) -> str:
        """Say how many workers start on which hosts, and with which launcher."""
        job = current_job()
        if job is None:
            return "Outside a batch job: nothing can start here."
        plans = plan_hosts(options, job)
        launcher = " ".join(job.allocation.launcher).replace("{host}", "HOST")
        on = ", ".join(f"{plan.processes} on {plan.host}" for plan in plans)
        threads = plans[0].threads if plans else 1
        return (
            f"In {job.describe()}: {sum(p.processes for p in plans)} worker(s) x {threads} "
            f"thread(s) ({on}), started with `{launcher}`; scheduler in this job script."
        )

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Start the scheduler here and the workers on every host with the launcher."""
        job = current_job()
        if job is None:
            raise DeploymentError("Not inside a batch job any more: nothing can start here.")
        plans = plan_hosts(options, job)
        # The workers on other hosts read the credentials through the shared file system.
        credentials = write_shared(context.deployment_id) if options["tls"] else None
        security = credentials.security() if credentials else None
        stop: list[Any] = [credentials.remove] if credentials else []
        try:
            cluster = scheduler_only_cluster(
                context.deployment_id,
                _listen(options, [host for host, _ in job.hosts]),
                options["dashboard"],
                security=security,
            )
        except BaseException:
            for undo in reversed(stop):
                undo()
            raise
        launched = _Launched(job, context.scratch_dir / "workers.log")
        try:
            worker = _worker_command(options, cluster.scheduler_address, credentials)
            for plan in plans:
                launched.start(plan, worker, context.deployment_id)
        except BaseException:
            launched.stop()
            cluster.close()
            for undo in reversed(stop):
                undo()
            raise
        stop.append(launched.stop)
        layout = _layout(options, job.hosts[0][1])
        return running_with_layout(
            cluster,
            options,
            layout,
            sum(plan.processes for plan in plans),
            security,
            stop=stop,
            stop_workers=lambda: stop_workers_through_nannies(cluster),
            check=launched.check,
            diagnose=launched.diagnose,
        )


def _which(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


def _listen(options: ResolvedOptions, hosts: Sequence[str]) -> dict[str, Any]:
    if options["scheduler_host"]:
        return {"host": options["scheduler_host"]}
    if options["interface"]:
        return {"interface": options["interface"]}
    return {"host": address_facing(list(hosts))}


def _worker_command(options: ResolvedOptions, address: str, credentials: Any) -> list[str]:
    command = [
        *worker_command(options["python"] or sys.executable, nanny=options["nanny"]),
        address,
        "--memory-limit",
        str(options["memory_per_worker"] or "auto"),
        "--death-timeout",
        f"{options['death_timeout']:g}",
        "--no-dashboard",
    ]
    if options["interface"]:
        command += ["--interface", options["interface"]]
    if credentials:
        command += credentials.worker_arguments()
    return command + list(options["worker_extra_args"])


class _Launched:
    """The launcher processes, one per host, with their output kept for diagnostics."""

    def __init__(self, job: CurrentJob, log_path: Path) -> None:
        self.job = job
        self.log_path = log_path
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, plan: HostWorkers, worker: list[str], name: str) -> None:
        command = [
            *worker,
            "--name",
            f"{name}-{plan.index}",
            "--nthreads",
            str(plan.threads),
            *(["--nworkers", str(plan.processes)] if plan.processes > 1 else []),
        ]
        argv = self.job.allocation.launch(plan.host, command)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the script; we stop the workers
            )
        self.processes.append((plan.host, process))

    def _tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def check(self) -> None:
        """Raise when a launcher ended before its workers connected."""
        for host, process in self.processes:
            status = process.poll()
            if status is not None:
                launcher = shlex.join(self.job.allocation.launch(host, ["..."])[:-1])
                raise DeploymentError(
                    f"`{launcher}` starting the workers on {host} exited with status {status} "
                    f"before they connected:\n{self._tail()}"
                )

    def diagnose(self) -> str:
        """The end of the launchers' output."""
        tail = self._tail()
        return f"Output of the workers' launchers so far:\n{tail}" if tail else ""

    def stop(self) -> None:
        """Let the launchers end once their workers left, then make them end.

        Runs after the scheduler closed, which tells every worker to leave; a launcher
        still running after ``_STOP_GRACE`` gets SIGTERM (the batch system passes it to
        the remote worker), then SIGKILL.
        """
        deadline = time.monotonic() + _STOP_GRACE
        for _, process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for _, process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 15)
        for _, process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(timeout=5)
