"""The commands the SLURM backends add to ``daskdeploy``: ``sbatch`` and ``hostfile``.

``daskdeploy sbatch`` writes (and optionally checks and submits) a batch script that runs
``daskdeploy run --backend allocation``; ``daskdeploy hostfile`` writes the node names of
the job it runs in. :meth:`SlurmBackend.cli_commands
<daskdeploy.backends.slurm.backend.SlurmBackend.cli_commands>` returns them.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ...cli.arguments import SCRIPT, ShortFlagsExplained, script_not_an_option
from ...cli.errors import UserError

if TYPE_CHECKING:
    from ...commands import CommandError
    from .sbatch import SbatchRequest

__all__ = ["COMMANDS", "hostfile", "sbatch"]


class _SbatchCommand(ShortFlagsExplained):
    """``daskdeploy sbatch``: sbatch options it does not interpret go to the header."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from .sbatch_options import pass_through

        own = {
            name: not (param.is_flag or param.count)
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)
        }
        given = list(args)
        converted = pass_through(
            ctx, given, own, self.not_here, lambda flag: self.explain_short_flag(ctx, given, flag)
        )
        return super().parse_args(ctx, converted)


#: Tasks when neither --ntasks nor --ntasks-per-node is given.
DEFAULT_NTASKS = 2


def _tasks_from_per_node(nodes: int | None, directives: tuple[str, ...]) -> int:
    """``--ntasks`` when not given: ``--nodes`` x a passed-through ``--ntasks-per-node``.

    Without it the header would say ``--ntasks=2`` next to ``--ntasks-per-node``, and
    SLURM takes ``--ntasks`` as the total: ``-N 2 --ntasks-per-node=2`` would get 2 tasks.
    """
    for directive in reversed(directives):
        name, _, value = directive.partition("=")
        if name == "--ntasks-per-node" and value.strip('"').isdigit() and int(value.strip('"')):
            return (nodes or 1) * int(value.strip('"'))
    return DEFAULT_NTASKS


#: sbatch's short options that mean something else in daskdeploy, so are not passed on.
NOT_PASSED_ON = {
    "-n": ("--ntasks", "--ntasks {value}"),
    "-o": ("--output", "--output {value}"),
    "-q": ("--qos", "--qos {value}"),
    "-b": ("--begin", "--begin={value}"),
}


@click.command(
    cls=_SbatchCommand,
    not_here=NOT_PASSED_ON,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--nodes",
    "-N",
    type=click.IntRange(min=1),
    metavar="N",
    help="Nodes to spread the tasks over (default: SLURM decides).",
)
@click.option(
    "--ntasks",
    type=click.IntRange(min=1),
    metavar="N",
    help="Tasks of the job; each runs one single-threaded Dask worker per CPU (-c). "
    "(sbatch's -n; in daskdeploy -n means --workers.) Default: 2, or --nodes x "
    "--ntasks-per-node when that is given.",
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
    help="An #SBATCH option written as it is, e.g. --directive=--constraint=skylake; "
    "repeatable. Needed only for an option this command does not know to be sbatch's.",
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
    help="Ask SLURM whether it would accept the job (sbatch --test-only), options passed "
    "through included; exit 1 if not, naming the option it refused.",
)
@click.option(
    "--submit",
    is_flag=True,
    help="Submit the job with sbatch, then print its id and how to watch and cancel it. "
    "Options passed through are checked with sbatch --test-only first.",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the script to PATH instead of printing it (with --submit: submit PATH).",
)
@click.argument("script", type=SCRIPT, callback=script_not_an_option)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def sbatch(
    nodes: int | None,
    ntasks: int | None,
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
    submitted.

    Any other sbatch option before SCRIPT goes into the #SBATCH header as it is, in
    order: --ntasks-per-node=2, --gres=gpu:1, --constraint=skylake, --exclusive,
    --mail-type=END, -C skylake. A long option may be written `--opt value` when sbatch
    takes a value for it; an option this command does not know must be written
    --opt=value (or --directive=--opt for a flag). --check and --submit ask sbatch
    --test-only about them. Not passed on: -n, -o, -q and -b, which mean --workers,
    --option, --quiet and --backend in daskdeploy (write --ntasks, --output, --qos,
    --begin), and options of the sbatch command itself, such as --wrap or --wait.

    The script is printed, to read, edit and submit yourself, unless --save or --submit
    is given. Paths in it are relative to the directory the job is submitted from.
    Everything after SCRIPT is passed to the script.

    \b
    Examples:
      daskdeploy sbatch --ntasks 4 -t 00:30:00 examples/pi.py > pi.sbatch
      sbatch pi.sbatch
      daskdeploy sbatch -N 2 --ntasks 8 -c 4 --mem-per-cpu 2G -p compute --check analysis.py
      daskdeploy sbatch -N 1 --ntasks-per-node=2 --exclusive --gres=gpu:1 --check gpu.py
      daskdeploy sbatch --ntasks 8 --setup 'module load python' --submit analysis.py in.csv
    """
    from .sbatch import SbatchRequest, default_setup, render_sbatch_script

    if setup:
        setup_lines = tuple(line for line in setup if line.strip())
    else:
        setup_lines = default_setup(sys.prefix, sys.base_prefix)
    if ntasks is None:
        ntasks = _tasks_from_per_node(nodes, directive)
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
        _echo_sbatch_check(request, text, err=to_stdout)
    elif submit and request.extra_directives:
        _test_only(request, text)  # name an option sbatch refuses, before submitting
    if submit:
        _submit_and_explain(request, text, save)
    elif save is not None:
        click.echo(f"Wrote {save}. Submit it with: sbatch {shlex.quote(str(save))}")


def _require_sbatch(request: SbatchRequest) -> None:
    """Refuse --check/--submit without sbatch, or with an output directory SLURM lacks."""
    from ...commands import missing_commands

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


def _echo_sbatch_check(request: SbatchRequest, text: str, *, err: bool) -> None:
    """Print SLURM's verdict on the script; fail (exit 1) if it would reject it."""
    try:
        verdict = _test_only(request, text)
    except click.ClickException:
        click.echo("Check: REJECTED", err=err)
        raise
    click.echo(f"Check: accepted. {verdict}".rstrip(), err=err)


def _test_only(request: SbatchRequest, text: str) -> str:
    """SLURM's verdict on the script (sbatch --test-only), or the error that says why not,
    naming the option passed through that sbatch refused."""
    from ...commands import CommandError
    from .sbatch import check_script

    try:
        return check_script(text)
    except CommandError as exc:
        option = _refused_option(request, exc)
        if option is None:
            raise click.ClickException(str(exc)) from None
        said = [
            line
            for line in (exc.result.stderr or exc.result.stdout).strip().splitlines()
            if line.strip() and not line.startswith('Try "sbatch --help"')
        ]
        raise click.ClickException(
            f"sbatch --test-only rejected {option}, passed through to the #SBATCH header:\n"
            + "".join(f"  {line}\n" for line in said)
            + "Fix or leave out that option (`sbatch --help` lists sbatch's options). "
            "Nothing was submitted."
        ) from None


#: At most this many options passed through are tried one by one to find the one refused.
_MOST_TRIED = 8


def _refused_option(request: SbatchRequest, error: CommandError) -> str | None:
    """The option passed through (or --directive) that made sbatch reject the script:
    the one its message names, else the one without which sbatch accepts it."""
    import dataclasses

    from ...commands import CommandError
    from .sbatch import check_script, render_sbatch_script

    options = request.extra_directives
    if not options or error.result is None:
        return None
    said = error.result.stderr + error.result.stdout
    for option in options:
        name = re.split(r"[=\s]", option, maxsplit=1)[0]
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", said):
            return option
    if len(options) > _MOST_TRIED:
        return None
    for index, option in enumerate(options):
        others = options[:index] + options[index + 1 :]
        try:
            check_script(
                render_sbatch_script(dataclasses.replace(request, extra_directives=others))
            )
        except CommandError:
            continue
        return option
    return None


def _submit_and_explain(request: SbatchRequest, text: str, save: Path | None) -> None:
    """Submit the script and say where its output goes and how to watch and cancel it."""
    from ...commands import CommandError
    from .control import parse_walltime
    from .sbatch import output_path, submit_script, workers_summary

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


@click.command()
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

    from ...commands import CommandError
    from . import control

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


#: What the SLURM backends add to the command line.
COMMANDS: tuple[click.Command, ...] = (sbatch, hostfile)
