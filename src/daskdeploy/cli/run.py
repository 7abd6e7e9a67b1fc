"""``daskdeploy run``: deploy, run a script on the deployment, tear down."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from .arguments import (
    PROFILE_IS_NOT_P,
    SCRIPT,
    ShortFlagsExplained,
    collect_options,
    resource_options,
    script_not_an_option,
)
from .backend_commands import HelpWithExtras, backend_run_examples
from .errors import INTERRUPTED_EXIT, UserError, api_call

__all__ = ["run"]

#: Examples of ``daskdeploy run --help`` that need no particular backend; the backends'
#: own (:attr:`~daskdeploy.backends.base.Backend.run_examples`) follow.
GENERIC_EXAMPLES = (
    "daskdeploy run examples/pi.py --samples 100000000",
    "daskdeploy run --workers 2 --option processes=true my_analysis.py input.csv",
    "daskdeploy run --report -n 2 my_analysis.py   # CPU efficiency and hints at the end",
)


def run_examples_help() -> str:
    """The Examples paragraph of ``daskdeploy run --help``: generic, then each backend's."""
    lines = [*GENERIC_EXAMPLES, *backend_run_examples()]
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class _RunCommand(ShortFlagsExplained, HelpWithExtras):
    """``daskdeploy run``: help with the backends' examples; explains ``-p``."""


@click.command(
    cls=_RunCommand,
    extra_help=run_examples_help,
    not_here=PROFILE_IS_NOT_P,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@resource_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would start (e.g. the job script) and ask the resource manager, if "
    "the backend has one, whether it would accept it; start and submit nothing.",
)
@click.option("--no-check", is_flag=True, help="With --dry-run: do not ask the resource manager.")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Do not print the deployment summary, and draw no progress bar.",
)
@click.option(
    "--report",
    is_flag=True,
    help="At the end, print a CPU-efficiency report (like seff): wall and CPU time, CPU "
    "efficiency, tasks, data movement, peak memory per worker, and hints when "
    "efficiency is low. Same as --option report=true.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar of running computations on stderr (default: when stderr "
    "is a terminal and --quiet is not given).",
)
@click.option(
    "--adopt/--no-adopt",
    default=None,
    help="Run the clusters, clients and schedulers the script makes for itself (Client(), "
    "LocalCluster(...), dask-jobqueue clusters, scheduler='processes', ...) on this "
    "deployment, saying so on stderr (default; option adopt). --no-adopt: the script "
    "keeps its own.",
)
@click.option(
    "--attach",
    metavar="NAME",
    help="Run on the named deployment NAME (started by `daskdeploy up NAME`) instead of "
    "starting one; it keeps running afterwards. No resource flags with it.",
)
@click.argument("script", type=SCRIPT, callback=script_not_an_option)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def run(
    backend: str | None,
    profile: str | None,
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: tuple[str, ...],
    dry_run: bool,
    no_check: bool,
    quiet: bool,
    report: bool,
    progress: bool | None,
    adopt: bool | None,
    attach: str | None,
    script: Path,
    script_args: tuple[str, ...],
) -> None:
    """Deploy, run SCRIPT [ARGS...] on the deployment, tear down, exit with its status.

    The script needs no daskdeploy code: its dask.compute(), .compute() and
    daskdeploy.deploy() calls all use the deployment, and so do the clusters it makes
    for itself (Client(), LocalCluster(...), dask-jobqueue clusters,
    dask_mpi.initialize(), scheduler='processes'), each named in one line on stderr.
    Everything after SCRIPT is passed to the script.
    """
    from ..api import plan_from

    if attach is not None:
        flags = _flags(
            backend, profile, workers, threads_per_worker, memory_per_worker, assignments
        )
        if flags or dry_run:
            given = [flag.split("=", 1)[0] for flag in flags] + (["--dry-run"] if dry_run else [])
            raise UserError(
                f"--attach {attach} runs on a deployment that is already running: drop "
                f"{', '.join(given)} (resize it with `daskdeploy scale {attach} N`)."
            )
        from ..named import attach as connect

        client = api_call(connect, attach, quiet=quiet, report=report, adopt=adopt is not False)
        sys.exit(_run_on(client, script, script_args, quiet, progress))
    options = collect_options(
        workers, threads_per_worker, memory_per_worker, assignments, quiet, report, adopt
    )
    deployment_plan = api_call(plan_from, backend, profile, options, "command line")
    # The same command on every rank, for backends that start under a launcher.
    per_rank = [
        sys.executable,
        "-m",
        "daskdeploy",
        "run",
        *_flags(backend, profile, workers, threads_per_worker, memory_per_worker, assignments),
        *(["--quiet"] if quiet else []),
        *(["--report"] if report else []),
        *([] if progress is None else ["--progress" if progress else "--no-progress"]),
        *([] if adopt is None else ["--adopt" if adopt else "--no-adopt"]),
        str(script.resolve()),
        *script_args,
    ]
    launch = api_call(deployment_plan.launch_command, per_rank)
    if dry_run:
        click.echo(deployment_plan.describe())
        if launch is not None:
            click.echo(f"Would launch: {_command_text(launch)}")
            for note in launch.notes:
                click.echo(note)
        click.echo(f"Script: {script} {' '.join(script_args)}".rstrip())
        if not no_check and launch is None:
            _echo_check(deployment_plan)
        click.echo("Dry run: nothing was started.")
        return
    if launch is not None:
        sys.exit(_launch(launch, quiet))
    # As `python script.py` would: the script's own directory first on sys.path, before the
    # workers start, so that local worker processes (which copy sys.path) can import the
    # modules that sit next to the script.
    sys.path.insert(0, str(script.resolve().parent))
    try:
        client = api_call(deployment_plan.start)
    except KeyboardInterrupt:
        click.echo("daskdeploy: interrupted while starting; nothing was left running.", err=True)
        sys.exit(INTERRUPTED_EXIT)
    sys.exit(_run_on(client, script, script_args, quiet, progress))


def _run_on(
    client: Any, script: Path, script_args: tuple[str, ...], quiet: bool, progress: bool | None
) -> int:
    """Run the script with ``client``'s deployment as the ambient one; close it; the status."""
    from .. import lifecycle
    from ..adoption import adopting
    from ..runner import run_script

    status = 1
    bar = _progress_bar(client, quiet, progress)
    streams = sys.stdout, sys.stderr
    try:
        lifecycle.set_ambient(client.deployment)
        if bar is not None:
            sys.stdout, sys.stderr = bar.guard(sys.stdout), bar.guard(sys.stderr)
        with adopting(client.deployment, enabled=client.deployment.options["adopt"]):
            status = run_script(script, script_args)
        lifecycle.set_exit_status(status)
    finally:
        if bar is not None:
            sys.stdout, sys.stderr = streams
            bar.stop()
        lifecycle.set_ambient(None)
        client.close()
    return status


def _progress_bar(client: Any, quiet: bool, wanted: bool | None) -> Any:
    """Start the progress bar if asked for, or by default on a terminal without --quiet."""
    if wanted is False or (wanted is None and (quiet or not sys.stderr.isatty())):
        return None
    from ..report.progress import ProgressBar

    return ProgressBar(client, sys.stderr, dashboard=client.dashboard_link).start()


def _flags(
    backend: str | None,
    profile: str | None,
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: Iterable[str],
) -> list[str]:
    """The resource flags of a ``daskdeploy run`` command line, as given."""
    given = {
        "--backend": backend,
        "--profile": profile,
        "--workers": workers,
        "--threads-per-worker": threads_per_worker,
        "--memory-per-worker": memory_per_worker,
    }
    flags = [f"{flag}={value}" for flag, value in given.items() if value is not None]
    return flags + [f"--option={assignment}" for assignment in assignments]


def _command_text(launch: Any) -> str:
    settings = [f"{name}={shlex.quote(value)}" for name, value in launch.environment.items()]
    return (
        shlex.join(launch.args)
        if not settings
        else " ".join(settings) + " " + shlex.join(launch.args)
    )


def _launch(launch: Any, quiet: bool) -> int:
    """Run the launcher in the foreground; its exit status is the run's."""
    from ..launcher import run_launcher

    for note in launch.notes:
        click.echo(note, err=True)
    if not quiet:
        click.echo(f"daskdeploy: launching {_command_text(launch)}", err=True)
    try:
        return run_launcher(launch)
    except OSError as exc:
        raise click.ClickException(f"Could not start {launch.args[0]}: {exc}") from None


def _echo_check(deployment_plan: Any) -> None:
    """Print the resource manager's verdict on the plan; fail (exit 1) if it would reject it."""
    from ..errors import BackendUnavailableError, DeploymentError

    try:
        verdict = deployment_plan.check()
    except BackendUnavailableError as exc:
        click.echo(f"Check: skipped, {exc}")
        return
    except DeploymentError as exc:
        click.echo("Check: REJECTED")
        raise click.ClickException(str(exc)) from None
    if verdict:
        click.echo(f"Check: accepted. {verdict}")
