"""Driver job scripts for any job-queue system (``daskdeploy jobscript``).

A driver job is one small batch job that runs your script, the Dask scheduler and the
client; from inside it, ``daskdeploy run --backend <system>`` submits the worker jobs and
cancels them when the script ends. Its header is the one dask-jobqueue's class of that
system renders for a job of the driver's size (through the same
:meth:`~daskdeploy.backends.jobqueue.system.BatchSystem.job_kwargs` as the worker jobs),
so every system's spelling of queue, account, cores, memory, time limit and output file
is written once, in its :class:`~daskdeploy.backends.jobqueue.system.BatchSystem`.

:func:`render_driver_script` is pure apart from importing dask-jobqueue: it reads neither
the environment nor the batch system, and is tested against golden files.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import JobQueueBackend

__all__ = ["DriverRequest", "render_driver_script"]


@dataclass(frozen=True)
class DriverRequest:
    """What a driver job runs and asks for.

    Parameters
    ----------
    script, script_args
        The Python script and its arguments, as the job sees them (relative paths are
        relative to the directory the job is submitted from).
    workers
        Worker processes ``daskdeploy run`` starts, as worker jobs.
    walltime
        The driver job's time limit; it bounds the whole run, queueing of the worker jobs
        included.
    worker_options
        ``KEY=VALUE`` options of the worker jobs (``walltime=00:30:00``,
        ``queue=short``), passed to ``daskdeploy run --option``.
    queue, account
        The driver job's own queue and account (``None``: the site's defaults). The
        worker jobs do not inherit them: give them in ``worker_options`` too.
    job_name
        The driver job's name (``None``: ``dask-`` and the script's stem).
    setup
        Shell lines run before daskdeploy (``module load python``, ``source
        venv/bin/activate``), written as they are.
    python
        The Python that runs daskdeploy (``python -m daskdeploy``); ``None``: the
        ``daskdeploy`` command on the job's ``PATH``.
    in_place
        Ask for ``workers`` slots in this one job and run the workers on them (the
        system's in-place backend: ``allocation`` on SLURM, ``batchjob`` elsewhere)
        instead of submitting worker jobs.
    """

    script: str
    script_args: tuple[str, ...] = ()
    workers: int = 4
    walltime: str = "01:00:00"
    worker_options: tuple[str, ...] = ()
    queue: str | None = None
    account: str | None = None
    job_name: str | None = None
    setup: tuple[str, ...] = field(default_factory=tuple)
    python: str | None = None
    in_place: bool = False

    @property
    def name(self) -> str:
        """The job name: :attr:`job_name`, or ``dask-<script stem>``."""
        if self.job_name:
            return self.job_name
        stem = self.script.rsplit("/", 1)[-1].removesuffix(".py") or "script"
        return f"dask-{stem}"


def run_command(backend: str, request: DriverRequest) -> list[str]:
    """The ``daskdeploy run`` command line the job ends with (``backend``: the one that
    runs the workers; an in-place job uses all its slots, so it passes no ``--workers``)."""
    launcher = ["daskdeploy"] if request.python is None else [request.python, "-m", "daskdeploy"]
    command = [*launcher, "run", "--backend", backend]
    if not request.in_place:
        command += ["--workers", str(request.workers)]
    for option in request.worker_options:
        command += ["--option", option]
    if request.script.startswith("-"):
        command.append("--")  # a script name that looks like an option
    return [*command, request.script, *request.script_args]


def render_driver_script(backend: JobQueueBackend, request: DriverRequest) -> str:
    """The driver job script of ``request`` for ``backend``'s batch system.

    Raises
    ------
    daskdeploy.errors.OptionError
        When the request's values are not valid options of the backend (a bad time
        limit, say); the message names the option.
    """
    import daskdeploy

    from .backend import driver_job_script

    system = backend.system
    slots = request.workers if request.in_place else 1
    options = daskdeploy.plan(
        backend.name,
        walltime=request.walltime,
        processes=1,
        cores=slots,
        memory=f"{2 * slots}GiB",
        account=request.account,
        tls=False,
        **{system.queue_word: request.queue},
    ).options
    title = system.title
    submit = system.submit_hint or f"{system.submit_command} THIS_FILE"
    written = (
        f"`daskdeploy jobscript --system {backend.name}{' --in-place' if request.in_place else ''}`"
    )
    if request.in_place:
        assert system.in_place_backend is not None
        command = shlex.join(run_command(system.in_place_backend, request))
        comments = [
            f"# Dask in one {title} job of {slots} slots, written by {written}.",
            "#",
            "# This job runs your script and the Dask scheduler, and one single-threaded Dask",
            f"# worker per slot ({system.in_place_backend} backend). No other job is submitted, so",
            "# deleting this job stops everything, and its time limit bounds the whole run.",
        ]
    else:
        command = shlex.join(run_command(backend.name, request))
        comments = [
            f"# A driver job for daskdeploy's {backend.name} backend, written by {written}.",
            "#",
            "# This small job runs your script, the Dask scheduler and the client. The workers",
            f"# are {title} jobs of their own, submitted from inside it and named after the",
            "# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or",
            "# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole",
            "# run: the worker jobs' time in the queue and your script's.",
        ]
    comments += [
        "#",
        f"#     {submit}      (from the directory the relative paths refer to)",
    ]
    prologue = [*comments, "set -euo pipefail"]
    if system.submit_dir_variable:  # jobs start elsewhere (the home directory)
        prologue.append(f'cd "${{{system.submit_dir_variable}:-.}}"')
    if request.setup:
        prologue += ["set +u  # activation scripts may use unset variables", *request.setup]
        prologue.append("set -u")
    return driver_job_script(backend, options, request.name, prologue, command)
