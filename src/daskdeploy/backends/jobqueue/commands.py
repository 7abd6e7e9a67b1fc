"""``daskdeploy jobscript``: a driver job script for any job-queue system.

Every job-queue backend adds this one command (see
:meth:`~daskdeploy.backends.jobqueue.backend.JobQueueBackend.cli_commands`).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ...cli.arguments import SCRIPT, ShortFlagsExplained, script_not_an_option
from ...errors import DaskDeployError
from .driver import DriverRequest, render_driver_script

__all__ = ["jobscript"]


def _job_queue_backends() -> dict[str, object]:
    from ...registry import loaded_backends
    from .backend import JobQueueBackend

    return {b.name: b for b in loaded_backends() if isinstance(b, JobQueueBackend)}


@click.command(
    cls=ShortFlagsExplained,
    not_here={"-q": ("--queue", "--queue {value}")},
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="""\b
Examples:
  daskdeploy jobscript --system sge -n 16 pi.py > pi.sh && qsub pi.sh
  daskdeploy jobscript --system pbs -n 8 -o walltime=02:00:00 -o queue=long pi.py | qsub
  daskdeploy jobscript --system slurm --setup 'module load python' pi.py > pi.sbatch
""",
)
@click.option(
    "--system",
    "system_name",
    required=True,
    metavar="NAME",
    help="Batch system: slurm, sge, pbs, lsf, oar, moab (htcondor: see the docs).",
)
@click.option(
    "--workers",
    "-n",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="Worker processes.",
)
@click.option(
    "--time",
    "-t",
    "walltime",
    default="01:00:00",
    show_default=True,
    metavar="HH:MM:SS",
    help="The driver job's time limit: the whole run, worker jobs' queueing included.",
)
@click.option(
    "--option",
    "-o",
    "worker_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the worker jobs, e.g. walltime=00:30:00 or queue=short (repeatable).",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="One job of WORKERS slots that runs the workers itself (no worker jobs).",
)
@click.option("--queue", metavar="NAME", help="The driver job's queue (default: the site's).")
@click.option("--account", "-A", metavar="NAME", help="The driver job's account.")
@click.option("--job-name", "-J", metavar="NAME", help="Driver job name (default: dask-<script>).")
@click.option(
    "--setup",
    multiple=True,
    metavar="LINE",
    help="A shell line run before daskdeploy, e.g. 'module load python' (repeatable).",
)
@click.argument("script", type=SCRIPT, callback=script_not_an_option)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def jobscript(
    system_name: str,
    workers: int,
    walltime: str,
    worker_options: tuple[str, ...],
    queue: str | None,
    in_place: bool,
    account: str | None,
    job_name: str | None,
    setup: tuple[str, ...],
    script: object,
    script_args: tuple[str, ...],
) -> None:
    """Print a job script that runs SCRIPT with Dask workers on a batch system.

    By default a driver job: it runs SCRIPT, the Dask scheduler and the client, and
    from inside it `daskdeploy run --backend NAME` submits WORKERS worker jobs and
    cancels them when SCRIPT ends. With --in-place, one job of WORKERS slots that runs
    a worker per slot itself (the batchjob backend; allocation on SLURM, where
    `daskdeploy sbatch` writes the same kind with more choices). Submit it with the
    system's submit command (qsub, sbatch, bsub <, oarsub -S, msub).
    """
    backends = _job_queue_backends()
    backend = backends.get(system_name)
    if backend is None:
        raise click.BadParameter(
            f"{system_name!r} is not a batch system daskdeploy knows. Choose one of: "
            f"{', '.join(backends)}.",
            param_hint="--system",
        )
    if not backend.system.driver_scripts:
        raise click.BadParameter(
            f"{backend.system.title} describes jobs in a submit file, not a shell script; "
            f"see the example in examples/jobscripts/ instead.",
            param_hint="--system",
        )
    if in_place and backend.system.in_place_backend is None:
        raise click.BadParameter(
            f"daskdeploy cannot run inside a {backend.system.title} job; leave out "
            f"--in-place to write a driver job.",
            param_hint="--in-place",
        )
    bad = [option for option in worker_options if "=" not in option]
    if bad:
        raise click.BadParameter(f"expected KEY=VALUE, got {bad[0]!r}", param_hint="--option")
    _check_worker_options(backend, in_place, worker_options)
    request = DriverRequest(
        script=str(script),
        script_args=tuple(script_args),
        workers=workers,
        walltime=walltime,
        worker_options=worker_options,
        queue=queue,
        account=account,
        job_name=job_name,
        setup=setup,
        python=sys.executable,
        in_place=in_place,
    )
    try:
        text = render_driver_script(backend, request)
    except (DaskDeployError, ValueError) as exc:
        message = str(exc)  # an option from --time, --queue or --account: name the flag
        flags = {"walltime": "--time", "account": "--account", "queue": "--queue"}
        flags["partition"] = "--queue"
        for option, flag in flags.items():
            if f"option '{option}'" in message:
                raise click.BadParameter(message, param_hint=flag) from None
        raise click.UsageError(message) from None
    click.echo(text, nl=False)


def _check_worker_options(backend: Any, in_place: bool, worker_options: tuple[str, ...]) -> None:
    """Check the ``--option`` values now, as ``daskdeploy run`` in the job would: a
    misspelt option should not cost a wait in the queue."""
    import daskdeploy

    from ...cli.arguments import parse_assignments

    name = backend.system.in_place_backend if in_place else backend.name
    try:
        daskdeploy.plan(name, **parse_assignments(worker_options))
    except DaskDeployError as exc:
        raise click.BadParameter(str(exc), param_hint="--option") from None
