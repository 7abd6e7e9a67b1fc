"""``daskdeploy up``, ``down``, ``scale``, ``logs`` and ``attach``: named deployments."""

from __future__ import annotations

import time
from typing import Any

import click

from .arguments import PROFILE_IS_NOT_P, ShortFlagsExplained, collect_options, resource_options
from .errors import UserError, api_call

__all__ = ["attach_snippet", "down", "logs", "scale", "up"]


@click.command(cls=ShortFlagsExplained, not_here=PROFILE_IS_NOT_P)
@click.argument("name")
@resource_options
@click.option(
    "--idle-timeout",
    metavar="DURATION",
    help="End it after this long with no client and no task, e.g. 2h or 30m; 0: never "
    "(default: dask config daskdeploy.named.idle_timeout, 1h).",
)
@click.option(
    "--scheduler-in-job",
    is_flag=True,
    help="Run the scheduler in a batch job of the backend's system (sized as one worker "
    "job) instead of here: for sites that forbid long-running processes on login nodes.",
)
def up(
    name: str,
    backend: str | None,
    profile: str | None,
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: tuple[str, ...],
    idle_timeout: str | None,
    scheduler_in_job: bool,
) -> None:
    """Start deployment NAME that keeps running after this command returns.

    Returns once its workers have connected and prints how to attach. Scripts then run
    on it without waiting for workers: `daskdeploy run --attach NAME script.py`, or
    `daskdeploy.deploy(attach="NAME")` in a script or notebook. It ends with `daskdeploy
    down NAME`, after the idle timeout, or at the backend's time limit (a batch job's
    walltime). Its scheduler runs here, in a supervising process with TLS credentials
    only you can read, or with --scheduler-in-job in a batch job of its own.

    \b
    Examples:
      daskdeploy up analysis -n 4
      daskdeploy up big --profile cluster -n 16     # a profile saved for your cluster
      daskdeploy run --attach analysis examples/pi.py
      daskdeploy down analysis
    """
    from ..named.attaching import connect_snippet
    from ..named.starting import up as start

    options = collect_options(workers, threads_per_worker, memory_per_worker, assignments)
    options.pop("quiet", None)
    began = time.monotonic()
    found = api_call(
        start,
        name,
        backend,
        profile=profile,
        idle_timeout=idle_timeout,
        scheduler_in_job=scheduler_in_job,
        options_source="command line",
        **options,
    )
    status = found.status
    click.echo(
        f"{name} is up ({found.id} on {found.backend}, {_count(status.get('workers'), 'worker')}"
        f", {_count(status.get('threads'), 'thread')}) after {time.monotonic() - began:.1f} s."
    )
    click.echo(f"  scheduler  {found.address}")
    if found.dashboard_link:
        click.echo(f"  dashboard  {found.dashboard_link}")
    click.echo(f"  ends       {_ending_text(found)}")
    click.echo(f"  log        daskdeploy logs {name}")
    click.echo("Attach:")
    click.echo(f"  daskdeploy run --attach {name} script.py")
    click.echo(f"  client = daskdeploy.deploy(attach={name!r})   # Python, Jupyter")
    click.echo("Plain distributed (`daskdeploy attach-snippet NAME` prints it again):")
    for line in connect_snippet(found).splitlines():
        click.echo(f"  {line}")
    click.echo(f"End it: daskdeploy down {name}")


def _count(number: int | None, word: str) -> str:
    """``1 worker``, ``2 workers``, ``? workers``."""
    return f"{'?' if number is None else number} {word}{'' if number == 1 else 's'}"


def _ending_text(found: Any) -> str:
    """When ``found`` ends by itself, in words."""
    parts = []
    if found.idle_timeout:
        parts.append(f"after {_duration(found.idle_timeout)} idle")
    if found.ends_at:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.ends_at))
        parts.append(f"at {stamp} (time limit, in {_duration(found.ends_at - time.time())})")
    return " or ".join(parts) or "only with `daskdeploy down` (no idle timeout)"


def _duration(seconds: float) -> str:
    """``45s``, ``30m``, ``2h``, ``1h30m``, ``3d``: a duration, to the minute past one."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{round(hours / 24)}d"


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
def down(names: tuple[str, ...]) -> None:
    """End named deployments and everything they started.

    Works whether the supervising process runs or died (kill -9, a reboot): batch jobs
    are cancelled, processes ended and files removed, as `daskdeploy cleanup` does.

    \b
    Examples:
      daskdeploy down analysis
    """
    from ..named.starting import down as end

    for name in names:
        click.echo(f"Ended {api_call(end, name)}")


@click.command()
@click.argument("name")
@click.argument("workers", type=click.IntRange(min=0))
def scale(name: str, workers: int) -> None:
    """Resize named deployment NAME to WORKERS workers.

    Backends with a fixed set of workers (a list of hosts) refuse, saying so.

    \b
    Examples:
      daskdeploy scale analysis 8
    """
    from ..named.starting import scale as resize

    click.echo(f"{name}: {api_call(resize, name, workers)}")


@click.command(cls=ShortFlagsExplained, not_here={"-n": ("--lines", "--lines {value}")})
@click.argument("name")
@click.option(
    "--lines", type=click.IntRange(min=0), default=0, metavar="N", help="Only the last N lines."
)
def logs(name: str, lines: int) -> None:
    """Print the log of named deployment NAME (its supervisor's output).

    It says how the deployment started, each resize, and why it ended; it is kept
    after the deployment ends, until the next `daskdeploy up NAME`.
    """
    from ..named.names import NAME_PATTERN, log_path

    if not NAME_PATTERN.match(name):
        raise UserError(f"{name!r} is not a deployment name (see `daskdeploy ls`).")
    path = log_path(name)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise click.ClickException(
            f"No log of a deployment named {name!r} ({path} does not exist): see "
            f"`daskdeploy ls` for the names."
        ) from None
    shown = text.splitlines()[-lines:] if lines else text.splitlines()
    click.echo("\n".join(shown))


@click.command("attach-snippet")
@click.argument("name")
def attach_snippet(name: str) -> None:
    """Print Python that connects a plain distributed.Client to deployment NAME."""
    from ..named.attaching import connect_snippet
    from ..named.names import require_running

    click.echo(connect_snippet(api_call(require_running, name)), nl=False)
