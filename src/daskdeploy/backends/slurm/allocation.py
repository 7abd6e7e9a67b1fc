"""The ``allocation`` backend: Dask inside a SLURM allocation you already hold.

Run from a batch script or an ``salloc`` shell, ``deploy("allocation")`` (or ``deploy()``,
which recognises the allocation) starts the scheduler here, in the batch step, and the
workers in every SLURM task with a single ``srun`` step across the allocation's nodes.
Each task runs one single-threaded worker process per CPU (``--cpus-per-task``), which
share the task's memory (``--mem-per-cpu`` / ``--mem``); with ``threads_per_worker`` set,
one worker per task with that many threads (see
:func:`~daskdeploy.backends.shared.layout.task_layout`).
Workers retire before the job's time limit. No extra job is submitted.

The workers find the scheduler through its scheduler file (in a directory the nodes
share) and the client waits for them with a deadline. Closing stops the ``srun`` step and
the scheduler and removes the scheduler file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError
from ...credentials import CredentialFiles, write_shared
from ...errors import OptionError
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
    text_list,
    worker_lifetime_setting,
)
from ..base import Availability, Backend, Running, StartContext
from ..jobqueue.jobscript import WORKER_DIR_VARIABLE, lifetime_args, worker_scratch_lines
from ..shared.layout import TaskLayout, TaskResources, task_layout
from ..shared.nannies import stop_workers_through_nannies
from ..shared.rendezvous import shared_rendezvous_dir
from ..shared.scheduler_cluster import running_with_layout, scheduler_only_cluster
from ..shared.worker_processes import worker_command
from . import control
from .environment import TASK_UNIT, Allocation, in_allocation

if TYPE_CHECKING:
    import click

__all__ = ["AllocationBackend"]

_STOP_GRACE = 3.0  # seconds for the workers to leave after the scheduler closed


class AllocationBackend(Backend):
    """Scheduler in the batch step, the workers in every task via one ``srun`` step."""

    name = "allocation"
    kind = "in-place"
    summary = "inside an sbatch/salloc allocation: scheduler here, srun dask worker per task"
    run_examples: ClassVar[tuple[str, ...]] = (
        "daskdeploy run --backend allocation my_analysis.py   # in an sbatch script or salloc",
    )
    default_workers = "one per CPU of each task of the allocation"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "lifetime",
            worker_lifetime_setting,
            "When workers retire: 'auto' (before the job's time limit), 'off', or a duration.",
        ),
        DEATH_TIMEOUT,
        Option("srun_extra_args", text_list, "More srun arguments, e.g. ['--gpus-per-task=1']."),
        WORKER_EXTRA_ARGS,
        INTERFACE,
        Option(
            "scheduler_host",
            text,
            "Address the scheduler listens on (null: this node's address facing the "
            "allocation's other nodes; 127.0.0.1 when they are all this machine).",
            nullable=True,
        ),
        WORKER_PYTHON,
        NANNY,
    )

    def cli_commands(self) -> Sequence[click.Command]:
        """``daskdeploy sbatch`` (a batch script for the allocation backend) and ``hostfile``."""
        from .commands import COMMANDS

        return COMMANDS

    def available(self) -> Availability:
        """Available inside a SLURM job whose ``srun`` is on PATH."""
        if not in_allocation(os.environ):
            return Availability.missing(
                "not inside a SLURM allocation (SLURM_JOB_ID is not set). Use it in an sbatch "
                "script or an salloc shell; `daskdeploy sbatch` writes such a script, or use "
                "the slurm backend to submit worker jobs from here."
            )
        missing = control.tools_missing_reason()
        if missing:
            return Availability.missing(missing)
        return Availability.ok(f"SLURM job {os.environ['SLURM_JOB_ID']}")

    def task_resources(self, environ: Mapping[str, str]) -> TaskResources | None:
        """The CPUs and memory of each task of the SLURM job ``environ`` belongs to."""
        if not in_allocation(environ):
            return None
        return Allocation.from_environ(environ).task_resources

    def detect(self) -> bool:
        """Recognise a SLURM job: a batch script, an salloc shell or an srun task."""
        return in_allocation(os.environ)

    def validate(self, options: ResolvedOptions) -> None:
        """Refuse more workers than the allocation's tasks run (when inside one).

        ``workers`` counts Dask workers, not tasks: each task runs
        :attr:`~daskdeploy.backends.shared.layout.TaskLayout.processes` of them (one per CPU by
        default), so a job of ``-n 2 -c 4`` runs up to 8. Fewer fill the tasks in task
        order (4 workers: the first task's 4 CPUs, the second task idle), so that every
        worker keeps the same memory and the job's CPUs are used by as few tasks as
        possible.
        """
        if options["workers"] is None or not in_allocation(os.environ):
            return
        allocation = Allocation.from_environ(os.environ)
        layout = _layout(options, allocation)
        most = allocation.ntasks * layout.processes
        if options["workers"] > most:
            room = ""
            if layout.processes > 1:
                room = f" of {allocation.cpus_per_task} CPUs, which run at most {most}"
            raise OptionError(
                f"workers={options['workers']} but SLURM job {allocation.job_id} has "
                f"{allocation.ntasks} task(s){room}. Ask for more tasks (sbatch -n) or fewer "
                f"workers."
            )

    def describe(self, options: ResolvedOptions) -> str:
        """Say how many workers srun would start, in how many tasks, and why."""
        if not in_allocation(os.environ):
            return "Outside a SLURM allocation: nothing can start here."
        allocation = Allocation.from_environ(os.environ)
        layout = _layout(options, allocation)
        workers = _worker_count(options, allocation, layout)
        text = (
            f"srun step in SLURM job {allocation.job_id}: {workers} worker(s) x "
            f"{layout.threads} thread(s), memory {layout.memory_text()} each"
        )
        if layout.processes > 1:
            text += f", up to {layout.processes} per task in {layout.tasks_for(workers)} task(s)"
        if layout.reason:
            text += f" ({layout.reason})"
        return text + "; scheduler in this batch step."

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Start the scheduler here and the workers with one ``srun`` step."""
        allocation = Allocation.from_environ(os.environ)
        if allocation.in_step:
            from .allocation_runner import start_in_step

            return start_in_step(options, context, allocation, _listen_host(options))
        layout = _layout(options, allocation)
        workers = _worker_count(options, allocation, layout)
        scheduler_file = shared_rendezvous_dir() / f"{context.deployment_id}.json"
        # The workers on other nodes read the credentials through the shared file system.
        credentials = write_shared(context.deployment_id) if options["tls"] else None
        security = credentials.security() if credentials else None
        try:
            cluster = scheduler_only_cluster(
                context.deployment_id,
                _listen_options(options),
                options["dashboard"],
                scheduler_file,
                security,
            )
        except BaseException:
            if credentials:
                credentials.remove()
            raise
        stop: list[Any] = [lambda: scheduler_file.unlink(missing_ok=True)]
        if credentials:
            stop.insert(0, credentials.remove)  # last: the workers have stopped by then
        try:
            command = _srun_command(
                options, allocation, layout, workers, scheduler_file, context, credentials
            )
            log_path = context.scratch_dir / "workers.log"
            step = _SrunStep.start(command, log_path, allocation.job_id, context.deployment_id)
        except BaseException:
            cluster.close()
            for undo in reversed(stop):
                undo()
            raise
        stop.append(step.stop)
        return running_with_layout(
            cluster,
            options,
            layout,
            workers,
            security,
            stop=stop,
            stop_workers=lambda: stop_workers_through_nannies(cluster),
            check=step.check,
            diagnose=step.diagnose,
        )


def _layout(options: ResolvedOptions, allocation: Allocation) -> TaskLayout:
    """The workers of each task of the srun step: :meth:`Allocation.worker_layout`, but
    one worker per task with the task's CPUs as threads under ``nanny=false``, since
    ``dask worker --no-nanny`` runs a single worker process."""
    layout = allocation.worker_layout(options)
    if layout.processes == 1 or options["nanny"] or allocation.in_step:
        return layout
    cpus = allocation.cpus_per_task
    one = task_layout(
        cpus,
        allocation.memory_per_task,
        threads=cpus,
        memory=options["memory_per_worker"],
        unit=TASK_UNIT,
    )
    reason = (
        f"{cpus} CPUs per SLURM task and nanny=false, which runs one worker process per "
        f"task; set nanny=true for one single-threaded worker process per CPU"
    )
    return dataclasses.replace(one, reason=reason)


def _worker_count(options: ResolvedOptions, allocation: Allocation, layout: TaskLayout) -> int:
    """The Dask workers to start: ``workers``, else every task's worker processes."""
    return options["workers"] or allocation.ntasks * layout.processes


def _nworkers_argument(layout: TaskLayout, workers: int) -> str:
    """``--nworkers`` for a task's shell: ``layout.processes``, but fewer in the last task
    when ``workers`` is not a multiple of it (the tasks fill up in task order)."""
    full, rest = divmod(workers, layout.processes)
    if rest == 0:
        return f" --nworkers {layout.processes}"
    if full == 0:
        return f" --nworkers {rest}"
    return f' --nworkers "$(( SLURM_PROCID < {full} ? {layout.processes} : {rest} ))"'


def _listen_host(options: ResolvedOptions) -> str:
    """One address to bind (runner mode), from the same choices as _listen_options."""
    listen = _listen_options(options)
    if "host" in listen:
        return listen["host"]
    from distributed.utils import get_ip_interface

    return get_ip_interface(listen["interface"])


def _listen_options(options: ResolvedOptions) -> dict[str, Any]:
    if options["scheduler_host"]:
        return {"host": options["scheduler_host"]}
    if options["interface"]:
        return {"interface": options["interface"]}
    try:
        names = control.hostnames(os.environ.get("SLURM_JOB_NODELIST", ""))
        nodes = control.node_addresses(names=names)
    except CommandError:
        nodes = []
    return {"host": address_facing(nodes)}


def _srun_command(
    options: ResolvedOptions,
    allocation: Allocation,
    layout: TaskLayout,
    workers: int,
    scheduler_file: Path,
    context: StartContext,
    credentials: CredentialFiles | None,
) -> list[str]:
    worker = [
        *worker_command(options["python"] or sys.executable, nanny=options["nanny"]),
        "--scheduler-file",
        str(scheduler_file),
        "--nthreads",
        str(layout.threads),
        "--memory-limit",
        str(layout.memory or "auto"),
        "--death-timeout",
        f"{options['death_timeout']:g}",
        "--no-dashboard",
    ]
    if options["interface"]:
        worker += ["--interface", options["interface"]]
    worker += _lifetime_args(options, allocation)
    if credentials:
        worker += credentials.worker_arguments()
    worker += options["worker_extra_args"]
    # The task's own shell expands the task number and the private spill directory.
    # dask worker names several workers of one task NAME-0, NAME-1, ...
    run_worker = (
        shlex.join(worker)
        + f' --name "{context.deployment_id}-$SLURM_PROCID"'
        + f' --local-directory "${WORKER_DIR_VARIABLE}"'
    )
    if layout.processes > 1:
        run_worker += _nworkers_argument(layout, workers)
    # The worker runs in the background so that the shell can act on SIGTERM (which srun
    # passes on) at once: pass it to the worker's nanny, wait, then remove the directory.
    # A shell waiting for a foreground command would only act once the command ended.
    shell = "; ".join(
        [
            *worker_scratch_lines(context.deployment_id),
            f"{run_worker} & worker=$!",
            "trap 'kill -TERM $worker 2>/dev/null' TERM INT",
            "wait $worker; wait $worker",
        ]
    )
    return [
        "srun",
        f"--ntasks={layout.tasks_for(workers)}",
        f"--cpus-per-task={allocation.cpus_per_task}",
        f"--job-name={context.deployment_id}",
        "--kill-on-bad-exit=0",
        *options["srun_extra_args"],
        "bash",
        "-c",
        shell,
    ]


def _lifetime_args(options: ResolvedOptions, allocation: Allocation) -> list[str]:
    left = None
    if options["lifetime"] == "auto":
        try:
            left = control.time_left(allocation.job_id)
        except CommandError:
            left = None
    return lifetime_args(options["lifetime"], left)


class _SrunStep:
    """The ``srun`` process running the workers, with its output kept for diagnostics."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log_path: Path,
        command: list[str],
        job_id: str,
        name: str,
    ):
        self.process = process
        self.log_path = log_path
        self.command = command
        self.job_id = job_id
        self.name = name

    @classmethod
    def start(cls, command: list[str], log_path: Path, job_id: str, name: str) -> _SrunStep:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the step in order
            )
        return cls(process, log_path, command, job_id, name)

    def _tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def check(self) -> None:
        """Raise when the srun step ended before the workers connected."""
        status = self.process.poll()
        if status is not None:
            from ...errors import DeploymentError

            raise DeploymentError(
                f"The srun step starting the workers exited with status {status} before they "
                f"connected: {shlex.join(self.command[:5])} ...\n{self._tail()}"
            )

    def diagnose(self) -> str:
        """The end of srun's output."""
        tail = self._tail()
        return f"Output of the srun step so far:\n{tail}" if tail else ""

    def stop(self) -> None:
        """Wait briefly for the step to end, then make it end.

        Runs after the scheduler closed, which tells every worker to shut down: idle
        workers leave within about a second, their shells remove their spill directories
        and the step ends by itself. A worker busy in a pure-Python task does not stop
        until the task ends, so after ``_STOP_GRACE`` the step's tasks get SIGTERM
        (``scancel --signal=TERM``): each shell passes it to its worker's nanny, waits,
        and removes its directory. srun itself is signalled only as the last resort,
        5 s later: SLURM then kills the tasks outright.
        """
        if self._ended_within(_STOP_GRACE):
            return
        with contextlib.suppress(CommandError):
            control.signal_step(self.job_id, self.name, "TERM")
        if self._ended_within(5.0):
            return
        self.process.send_signal(signal.SIGTERM)
        if not self._ended_within(5.0):
            self.process.kill()
            self.process.wait(timeout=5)

    def _ended_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True
