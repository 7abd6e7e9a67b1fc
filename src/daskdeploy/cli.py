"""The ``daskdeploy`` command line: a thin click layer over the Python API."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__

if TYPE_CHECKING:
    from .backends.slurm.sbatch import SbatchRequest

__all__ = ["cli", "main", "parse_option_value"]

BAD_INPUT_EXIT = 2
INTERRUPTED_EXIT = 130

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")


def _script_not_an_option(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Catch a misspelt flag before SCRIPT, which would otherwise be taken for the script.

    ``run`` and ``sbatch`` pass unknown options after SCRIPT on to the script, so click
    accepts ``--wokers`` in SCRIPT's place; say it is no option, and suggest the right one.
    """
    text = str(value)
    if text.startswith("-"):
        known = [name for option in ctx.command.params for name in option.opts]
        raise click.NoSuchOption(text.split("=", 1)[0], possibilities=known, ctx=ctx)
    if not value.exists():
        raise click.BadParameter(f"File {text!r} does not exist.", ctx=ctx, param=param)
    if value.is_dir():
        raise click.BadParameter(f"{text!r} is a directory, not a script.", ctx=ctx, param=param)
    return value


_SCRIPT = click.Path(path_type=Path)


class UserError(click.ClickException):
    """A mistake in the command line or configuration: one message, exit status 2."""

    exit_code = BAD_INPUT_EXIT


def parse_option_value(text: str) -> Any:
    """Type a ``--option`` value: integers, floats, booleans and ``[a,b]`` lists.

    Everything else stays a string, so ``00:10:00`` and ``1GB`` arrive as text.

    Examples
    --------
    >>> parse_option_value("4"), parse_option_value("0.5"), parse_option_value("true")
    (4, 0.5, True)
    >>> parse_option_value("[a, 2]"), parse_option_value("00:10:00")
    (['a', 2], '00:10:00')
    """
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        inner = stripped[1:-1].strip()
        return [parse_option_value(item.strip()) for item in inner.split(",")] if inner else []
    if _INT.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped):
        return float(stripped)
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return text


def _parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key.strip():
            raise UserError(
                f"--option expects KEY=VALUE (for example --option processes=false), "
                f"got {assignment!r}."
            )
        options[key.strip().replace("-", "_")] = parse_option_value(value)
    return options


def _collect_options(
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: Iterable[str],
    quiet: bool = False,
    report: bool = False,
    adopt: bool | None = None,
) -> dict[str, Any]:
    options = _parse_assignments(assignments)
    flags = {
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "memory_per_worker": memory_per_worker,
        "quiet": True if quiet else None,
        "report": True if report else None,
        "adopt": adopt,
    }
    for name, value in flags.items():
        if value is not None:
            if name in options:
                raise UserError(f"{name} is given twice (as a flag and as --option); keep one.")
            options[name] = value
    return options


def _resource_options(function: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.option(
            "--option",
            "-o",
            "assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any backend option; repeatable. Numbers, true/false and [a,b] lists are "
            "typed, everything else stays a string.",
        ),
        click.option(
            "--memory-per-worker", metavar="SIZE", help="Memory limit per worker, e.g. 4GB."
        ),
        click.option(
            "--threads-per-worker",
            type=click.IntRange(min=1),
            metavar="N",
            help="Threads per worker (keep 1 for pure-Python code).",
        ),
        click.option(
            "--workers", "-n", type=click.IntRange(min=1), metavar="N", help="Worker processes."
        ),
        click.option("--profile", "-p", metavar="NAME", help="Saved profile to deploy."),
        click.option(
            "--backend",
            "-b",
            metavar="NAME",
            help="Backend or profile name (default: $DASKDEPLOY_BACKEND, dask config, auto).",
        ),
    ]
    for decorator in decorators:
        function = decorator(function)
    return function


def _api_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from .errors import DaskDeployError, DeploymentError

    try:
        return function(*args, **kwargs)
    except DeploymentError as exc:  # the input was fine; starting failed
        raise click.ClickException(str(exc)) from None
    except DaskDeployError as exc:
        raise UserError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daskdeploy")
def cli() -> None:
    """Run the same Dask program on a laptop, a SLURM cluster, SSH hosts or under MPI.

    \b
    Quick start:
      daskdeploy run examples/pi.py                 # local workers, one per core
      daskdeploy run -n 2 --dry-run examples/pi.py  # show what would start
      daskdeploy backends                           # where can this machine run?

    \b
    Exit status: `run` exits with the script's own status; 2 means a mistake in
    the command line or configuration (nothing was started), 1 that starting failed.
    """


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_resource_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would start (for slurm: the job script) and ask the resource manager "
    "whether it would accept it (sbatch --test-only); start and submit nothing.",
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
    "LocalCluster(...), SLURMCluster(...), scheduler='processes', ...) on this deployment, "
    "saying so on stderr (default; option adopt). --no-adopt: the script keeps its own.",
)
@click.argument("script", type=_SCRIPT, callback=_script_not_an_option)
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
    script: Path,
    script_args: tuple[str, ...],
) -> None:
    """Deploy, run SCRIPT [ARGS...] on the deployment, tear down, exit with its status.

    The script needs no daskdeploy code: its dask.compute(), .compute() and
    daskdeploy.deploy() calls all use the deployment, and so do the clusters it makes
    for itself (Client(), LocalCluster(...), SLURMCluster(...), dask_mpi.initialize(),
    scheduler='processes'), each named in one line on stderr. Everything after SCRIPT is
    passed to the script.

    \b
    Examples:
      daskdeploy run examples/pi.py --samples 100000000
      daskdeploy run --workers 2 --option processes=true my_analysis.py input.csv
      daskdeploy run --backend slurm -n 8 --option walltime=01:00:00 my_analysis.py
      daskdeploy run --backend slurm --dry-run my_analysis.py   # job script + sbatch check
      daskdeploy run --backend mpi -n 4 my_analysis.py  # mpiexec -n 6: 4 workers
      daskdeploy run --report -n 2 my_analysis.py   # CPU efficiency and hints at the end
    """
    from . import lifecycle
    from .adoption import adopting
    from .api import plan_from
    from .runner import run_script

    options = _collect_options(
        workers, threads_per_worker, memory_per_worker, assignments, quiet, report, adopt
    )
    deployment_plan = _api_call(plan_from, backend, profile, options, "command line")
    # The same command on every rank, for backends that start under a launcher (mpi).
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
    launch = _api_call(deployment_plan.launch_command, per_rank)
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
    try:
        client = _api_call(deployment_plan.start)
    except KeyboardInterrupt:
        click.echo("daskdeploy: interrupted while starting; nothing was left running.", err=True)
        sys.exit(INTERRUPTED_EXIT)
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
    sys.exit(status)


def _progress_bar(client: Any, quiet: bool, wanted: bool | None) -> Any:
    """Start the progress bar if asked for, or by default on a terminal without --quiet."""
    if wanted is False or (wanted is None and (quiet or not sys.stderr.isatty())):
        return None
    from .report.progress import ProgressBar

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
    from .launcher import run_launcher

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
    from .errors import BackendUnavailableError, DeploymentError

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


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--nodes",
    "-N",
    type=click.IntRange(min=1),
    metavar="N",
    help="Nodes to spread the tasks over (default: SLURM decides).",
)
@click.option(
    "--ntasks",
    "-n",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    metavar="N",
    help="Tasks of the job; each runs one single-threaded Dask worker per CPU (-c).",
)
@click.option(
    "--cpus-per-task",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="CPUs of each task: it runs that many single-threaded worker processes (one "
    "worker of that many threads if threads_per_worker is set).",
)
@click.option(
    "--mem-per-cpu", metavar="SIZE", help="Memory per CPU, e.g. 2G (default: the site's)."
)
@click.option(
    "--mem",
    metavar="SIZE",
    help="Memory per node, e.g. 16G, shared by the node's workers (instead of --mem-per-cpu).",
)
@click.option(
    "--time",
    "-t",
    "time_limit",
    default="01:00:00",
    show_default=True,
    metavar="TIME",
    help="Time limit of the whole run, e.g. 00:30:00 or 1-12:00:00.",
)
@click.option("--partition", "-p", metavar="NAME", help="Partition (default: the site's).")
@click.option("--account", "-A", metavar="NAME", help="Account to charge.")
@click.option("--qos", metavar="NAME", help="Quality of service.")
@click.option("--job-name", "-J", metavar="NAME", help="Job name (default: dask-<script name>).")
@click.option(
    "--output",
    "-o",
    default="%x-%j.out",
    show_default=True,
    metavar="PATH",
    help="The job's output file (%x: job name, %j: job id); relative to the submit directory.",
)
@click.option(
    "--setup",
    multiple=True,
    metavar="LINE",
    help="Shell line that loads the Python environment in the job, e.g. 'module load "
    "python'; repeatable. Default: activate the virtual environment daskdeploy runs in, "
    "if any. --setup '' for none.",
)
@click.option(
    "--directive",
    multiple=True,
    metavar="OPTION",
    help="Another #SBATCH option, e.g. --directive=--constraint=skylake; repeatable.",
)
@click.option(
    "--python",
    metavar="PATH",
    help="Start daskdeploy in the job as `PATH -m daskdeploy` instead of the daskdeploy "
    "command on PATH.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Ask SLURM whether it would accept the job (sbatch --test-only); exit 1 if not.",
)
@click.option(
    "--submit",
    is_flag=True,
    help="Submit the job with sbatch, then print its id and how to watch and cancel it.",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the script to PATH instead of printing it (with --submit: submit PATH).",
)
@click.argument("script", type=_SCRIPT, callback=_script_not_an_option)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def sbatch(
    nodes: int | None,
    ntasks: int,
    cpus_per_task: int,
    mem_per_cpu: str | None,
    mem: str | None,
    time_limit: str,
    partition: str | None,
    account: str | None,
    qos: str | None,
    job_name: str | None,
    output: str,
    setup: tuple[str, ...],
    directive: tuple[str, ...],
    python: str | None,
    check: bool,
    submit: bool,
    save: Path | None,
    script: Path,
    script_args: tuple[str, ...],
) -> None:
    """Write a batch script that runs SCRIPT [ARGS...] on one SLURM allocation.

    The job runs `daskdeploy run --backend allocation SCRIPT ARGS`: the Dask scheduler
    and SCRIPT run in the batch step, and every task of the job runs its Dask workers
    (started with srun): one single-threaded worker process per CPU of the task
    (--cpus-per-task), because pure-Python code holds the GIL. No other job is
    submitted. The resource options are sbatch's own.

    The script is printed, to read, edit and submit yourself, unless --save or --submit
    is given. Paths in it are relative to the directory the job is submitted from.
    Everything after SCRIPT is passed to the script.

    \b
    Examples:
      daskdeploy sbatch -n 4 -t 00:30:00 examples/pi.py > pi.sbatch
      sbatch pi.sbatch
      daskdeploy sbatch -N 2 -n 8 -c 4 --mem-per-cpu 2G -p compute --check analysis.py
      daskdeploy sbatch -n 8 --setup 'module load python' --submit analysis.py in.csv
    """
    from .backends.slurm.sbatch import SbatchRequest, default_setup, render_sbatch_script

    if setup:
        setup_lines = tuple(line for line in setup if line.strip())
    else:
        setup_lines = default_setup(sys.prefix, sys.base_prefix)
    try:
        request = SbatchRequest(
            script=str(script),
            script_args=script_args,
            nodes=nodes,
            ntasks=ntasks,
            cpus_per_task=cpus_per_task,
            mem_per_cpu=mem_per_cpu,
            mem=mem,
            time=time_limit,
            partition=partition,
            account=account,
            qos=qos,
            job_name=job_name,
            output=output,
            setup=setup_lines,
            extra_directives=directive,
            python=python,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if check or submit:
        _require_sbatch(request)
    text = render_sbatch_script(request)
    to_stdout = save is None and not submit
    if to_stdout:
        click.echo(text, nl=False)
    if save is not None:
        try:
            save.write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write the script to {str(save)!r}: {exc}") from None
    if check:
        _echo_sbatch_check(text, err=to_stdout)
    if submit:
        _submit_and_explain(request, text, save)
    elif save is not None:
        click.echo(f"Wrote {save}. Submit it with: sbatch {shlex.quote(str(save))}")


def _require_sbatch(request: SbatchRequest) -> None:
    """Refuse --check/--submit without sbatch, or with an output directory SLURM lacks."""
    from .commands import missing_commands

    if missing_commands(["sbatch"]):
        raise UserError(
            "sbatch is not on PATH, so --check and --submit cannot reach SLURM. Run this on a "
            "SLURM login node (on many clusters after `module load slurm`), or leave out "
            "--check and --submit to only write the script."
        )
    directory = Path(request.output).parent
    if "%" not in str(directory) and not directory.is_dir():
        raise UserError(
            f"the output directory {str(directory)!r} does not exist; SLURM does not create "
            f"it, so the job's output would be lost. Create it (mkdir -p "
            f"{shlex.quote(str(directory))}) or change --output."
        )


def _echo_sbatch_check(text: str, *, err: bool) -> None:
    """Print SLURM's verdict on the script; fail (exit 1) if it would reject it."""
    from .backends.slurm.sbatch import check_script
    from .commands import CommandError

    try:
        verdict = check_script(text)
    except CommandError as exc:
        click.echo("Check: REJECTED", err=err)
        raise click.ClickException(str(exc)) from None
    click.echo(f"Check: accepted. {verdict}".rstrip(), err=err)


def _submit_and_explain(request: SbatchRequest, text: str, save: Path | None) -> None:
    """Submit the script and say where its output goes and how to watch and cancel it."""
    from .backends.slurm.control import parse_walltime
    from .backends.slurm.sbatch import output_path, submit_script, workers_summary
    from .commands import CommandError

    try:
        job_id = submit_script(text, save)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None
    seconds = parse_walltime(request.time)
    limit = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    click.echo(
        f"Submitted batch job {job_id} ({request.name}): {workers_summary(request)}, "
        f"time limit {limit}."
    )
    click.echo(f"  output:  {output_path(request, job_id, str(Path.cwd()))}")
    click.echo(f"  watch:   squeue -j {job_id}")
    click.echo(f"  cancel:  scancel {job_id}")


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def hostfile(path: Path | None) -> None:
    """Write the node names of the SLURM job this runs in, one per line.

    Inside an sbatch script or salloc shell, PATH (or stdout) gets one line per node of
    the job, the list an SSH-based deployment needs (the lessons' `srun hostname >
    .hosts`, without starting a step).

    \b
    Examples:
      daskdeploy hostfile .hosts
      daskdeploy hostfile | head -1
    """
    import os

    from .backends.slurm import control
    from .commands import CommandError

    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise UserError(
            "Not inside a SLURM job (SLURM_JOB_NODELIST is not set). Run this in an sbatch "
            "script or an salloc shell."
        )
    try:
        names = control.hostnames(nodelist)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None
    text = "".join(f"{name}\n" for name in names)
    if path is None:
        click.echo(text, nl=False)
    else:
        path.write_text(text)
        click.echo(f"Wrote {len(names)} host(s) to {path}", err=True)


@cli.command()
@click.option("--options", "show_options", is_flag=True, help="Also list each backend's options.")
def backends(show_options: bool) -> None:
    """List the backends, whether each can run here, and why not."""
    from .registry import available_backends

    statuses = available_backends()
    rows = [("BACKEND", "KIND", "AVAILABLE", "DETAILS")]
    for status in statuses.values():
        details = status.reason or status.summary
        rows.append((status.name, status.kind, "yes" if status else "no", details))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        click.echo("  ".join([*padded, row[3]]))
    if show_options:
        _echo_backend_options(statuses)


def _echo_backend_options(statuses: Iterable[str]) -> None:
    from . import config
    from .registry import get_backend

    for name in statuses:
        try:
            backend = get_backend(name)
        except Exception as exc:
            click.echo(f"\n{name}: cannot list options ({exc})")
            continue
        section = config.backend_section(name)
        click.echo(f"\n{name} options (dask config daskdeploy.{name}.<option>):")
        for option in backend.options():
            click.echo(f"  {option.name} = {section.get(option.name)!r}")
            click.echo(f"      {option.help}")


@cli.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects) for scripts.")
def list_deployments(as_json: bool) -> None:
    """List live deployments: running or orphaned.

    A deployment is found by its record (~/.cache/daskdeploy/deployments), its SLURM
    jobs (comment daskdeploy:<id>) or its local processes. STATE is `running` while the
    process that deployed it lives, `orphaned` when that process is gone but something
    is left (end it with `daskdeploy cleanup`), and `unknown` when it ran on another host.

    \b
    Examples:
      daskdeploy ls
      daskdeploy ls --json > deployments.json
    """
    import json

    from .orphans import find_deployments

    deployments, problems = find_deployments()
    for problem in problems:
        click.echo(f"daskdeploy: {problem}", err=True)
    if as_json:
        click.echo(json.dumps([found.to_json() for found in deployments], indent=1))
        return
    if not deployments:
        click.echo("No daskdeploy deployments.")
        return
    rows = [("ID", "BACKEND", "STATE", "OWNER", "AGE", "WHAT", "SCHEDULER")]
    for found in deployments:
        host, pid, _ = found.owner
        rows.append(
            (
                found.id,
                found.backend,
                found.state,
                f"{host}:{pid}" if pid is not None else "-",
                _age(found.started),
                found.what(),
                (found.record.scheduler_address if found.record else None) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*padded, row[-1]]))


def _age(started: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: how long ago ``started`` was; ``-`` if unknown."""
    import time

    if started is None:
        return "-"
    seconds = max(0, int(time.time() - started))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@cli.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--all",
    "end_running",
    is_flag=True,
    help="Without IDs: end running deployments too, not only orphaned ones.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only what failed.")
def cleanup(ids: tuple[str, ...], end_running: bool, quiet: bool) -> None:
    """End deployments and remove what they left.

    With IDs (as `daskdeploy ls` shows them), ends those deployments, also running ones:
    the process that deployed each gets SIGTERM (so its own teardown runs; SIGKILL after
    10 s), then its SLURM jobs are cancelled, its local processes ended (SIGTERM, SIGKILL
    after 3 s), its processes and directories on SSH hosts removed, and its files
    deleted. Without IDs, ends every orphaned deployment (its owner died, e.g. by kill
    -9) and leaves running ones alone unless --all is given.

    Each deployment's reaper runs `daskdeploy cleanup ID --quiet` by itself when its
    owner dies without tearing down, so this is rarely needed by hand.

    \b
    Examples:
      daskdeploy cleanup                 # end every orphaned deployment
      daskdeploy cleanup dd-3f9a61c2     # end this one, even if it is running
      daskdeploy cleanup --all           # end every deployment of yours here
    """
    from .orphans import ORPHANED, RUNNING, end_deployment, find_deployments
    from .records import ID_PATTERN

    bad = [text for text in ids if not ID_PATTERN.match(text)]
    if bad:
        raise UserError(
            f"{', '.join(repr(text) for text in bad)} {'is' if len(bad) == 1 else 'are'} not "
            f"a deployment id: ids look like dd-3f9a61c2 (see `daskdeploy ls`)."
        )
    deployments, problems = find_deployments()
    for problem in problems:
        click.echo(f"daskdeploy: {problem}", err=True)
    known = {found.id: found for found in deployments}
    if ids:
        unknown = [text for text in dict.fromkeys(ids) if text not in known]
        if unknown:
            listing = ", ".join(sorted(known)) if known else "none"
            raise UserError(
                f"No deployment {', '.join(unknown)} found (no record, SLURM job or process "
                f"of it). Known deployments: {listing}."
            )
        chosen = [known[text] for text in dict.fromkeys(ids)]
    else:
        wanted = (ORPHANED, RUNNING) if end_running else (ORPHANED,)
        chosen = [found for found in deployments if found.state in wanted]
        spared = [found for found in deployments if found not in chosen]
        if not quiet:
            if not deployments:
                click.echo("No daskdeploy deployments.")
            elif not chosen:
                click.echo("No orphaned deployments.")
            for found in spared:
                why = (
                    "running; use --all or its id to end it"
                    if found.state == RUNNING
                    else "its owner runs on another host (or is unknown); give its id to end it"
                )
                click.echo(f"Left {found.id} ({found.backend}) alone: {why}.")
    failed = False
    for found in chosen:
        if not quiet:
            click.echo(_ending_text(found))
        report = end_deployment(found)
        failed = failed or bool(report.errors)
        if not quiet:
            click.echo(f"  Ended {report.summary()}")
        for error in report.errors:
            click.echo(f"daskdeploy: cleanup of {found.id}: {error}", err=True)
    if failed:
        sys.exit(1)


def _ending_text(found: Any) -> str:
    """What `cleanup` is about to do to one deployment, in one line."""
    host, pid, _ = found.owner
    text = f"Ending {found.id} ({found.backend}, {found.state}"
    if pid is not None:
        text += f", owner {host}:{pid}"
    text += f"; {found.what()})"
    if found.state == "running" and found.record is not None:
        text += f": sending SIGTERM to pid {pid}, which then tears the deployment down"
    return text + "..."


@cli.group()
def profile() -> None:
    """Save cluster settings under a name and deploy them by that name."""


@profile.command("save")
@click.argument("name")
@_resource_options
def profile_save(
    name: str,
    backend: str | None,
    profile: str | None,
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: tuple[str, ...],
) -> None:
    """Validate settings and save them as profile NAME.

    \b
    Example:
      daskdeploy profile save small --backend local --workers 2
      daskdeploy run --backend small examples/pi.py
    """
    from .profiles import get_profile, save_profile

    options = _collect_options(workers, threads_per_worker, memory_per_worker, assignments)
    if profile is not None:
        base_backend, base_options = _api_call(get_profile, profile)
        backend = backend or base_backend
        options = {**base_options, **options}
    if backend is None:
        raise UserError("profile save needs --backend NAME (or --profile to start from).")
    from .api import plan_from

    _api_call(plan_from, backend, None, options, "command line")  # errors name their source
    path = _api_call(save_profile, name, backend, **options)
    click.echo(f"Saved profile {name!r} ({backend}) in {path}.")


@profile.command("list")
def profile_list() -> None:
    """List saved profiles."""
    from .profiles import list_profiles

    saved = _api_call(list_profiles)
    if not saved:
        click.echo("No profiles saved. Create one with `daskdeploy profile save NAME ...`.")
    for name, settings in sorted(saved.items()):
        backend = settings.get("backend", "?") if isinstance(settings, dict) else "?"
        click.echo(f"{name}  ({backend})")


@profile.command("show")
@click.argument("name")
def profile_show(name: str) -> None:
    """Show what deploying profile NAME would start, with every option's source."""
    from .api import plan

    click.echo(_api_call(plan, profile=name).describe())


@profile.command("delete")
@click.argument("name")
def profile_delete(name: str) -> None:
    """Delete profile NAME saved by `profile save`."""
    from .profiles import delete_profile

    path = _api_call(delete_profile, name)
    click.echo(f"Deleted profile {name!r} from {path}.")


def _add_data_commands() -> None:
    try:
        from .datasets.cli import data
    except ImportError:  # pragma: no cover - datasets ship with the package
        return
    cli.add_command(data)


_add_data_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        import dask.config  # noqa: F401  (reads every dask config YAML file)
    except ValueError as exc:  # dask reports a malformed YAML file this way
        click.echo(f"Error: {exc}\nFix or remove that file, then try again.", err=True)
        sys.exit(BAD_INPUT_EXIT)
    cli(prog_name="daskdeploy")
