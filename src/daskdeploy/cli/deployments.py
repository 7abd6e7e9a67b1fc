"""``daskdeploy ls`` and ``daskdeploy cleanup``: the live deployments, and ending them."""

from __future__ import annotations

import sys
from typing import Any

import click

from .errors import UserError

__all__ = ["cleanup", "list_deployments"]


@click.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects) for scripts.")
def list_deployments(as_json: bool) -> None:
    """List live deployments: running or orphaned.

    A deployment is found by its record (~/.cache/daskdeploy/deployments), by what its
    backend left elsewhere (batch jobs, processes on remote hosts) or by its local
    processes. STATE is `running` while the process that deployed it lives, `orphaned`
    when that process is gone but something is left (end it with `daskdeploy cleanup`),
    and `unknown` when it ran on another host. Named deployments (`daskdeploy up NAME`)
    show their NAME, `starting`, `ready` or `ending`, and in WHAT their workers, clients
    and idle time (of the idle timeout) and when their time limit ends them.

    \b
    Examples:
      daskdeploy ls
      daskdeploy ls --json > deployments.json
    """
    import json

    from ..orphans import find_deployments

    deployments, problems = find_deployments()
    for problem in problems:
        click.echo(f"daskdeploy: {problem}", err=True)
    if as_json:
        listing = []
        for found in deployments:
            named = _named(found)
            listing.append({**found.to_json(), "named": named.to_json() if named else None})
        click.echo(json.dumps(listing, indent=1))
        return
    if not deployments:
        click.echo("No daskdeploy deployments.")
        return
    rows = [("ID", "NAME", "BACKEND", "STATE", "OWNER", "AGE", "WHAT", "SCHEDULER", "DASHBOARD")]
    for found in deployments:
        host, pid, _ = found.owner
        named = _named(found)
        rows.append(
            (
                found.id,
                named.name if named else "-",
                found.backend,
                named.state if named and named.state != "gone" else found.state,
                f"{host}:{pid}" if pid is not None else "-",
                _age(found.started),
                _named_what(named) if named and named.state != "gone" else found.what(),
                (found.record.scheduler_address if found.record else None) or "-",
                (named.dashboard_link if named else None) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*padded, row[-1]]))


def _named(found: Any) -> Any:
    """The :class:`~daskdeploy.named.NamedDeployment` of ``found``, if it has a name."""
    if found.record is None or not found.record.name:
        return None
    from ..named.names import NamedDeployment

    return NamedDeployment(found.record)


def _named_what(named: Any) -> str:
    """``2 workers, 1 client, idle 5m of 1h, ends 14:30``: a named deployment's status."""
    import time

    status = named.status
    workers, clients = status.get("workers"), status.get("clients")
    parts = [
        f"{workers} worker{'s' if workers != 1 else ''}" if workers is not None else "? workers",
        f"{clients} client{'s' if clients != 1 else ''}" if clients is not None else "",
    ]
    idle = named.idle_seconds
    if status.get("tasks"):
        parts.append(f"{status['tasks']} tasks")
    elif idle is not None:
        limit = f" of {_seconds_text(named.idle_timeout)}" if named.idle_timeout else ""
        parts.append(f"idle {_seconds_text(idle)}{limit}")
    if named.ends_at:
        parts.append("ends " + time.strftime("%H:%M", time.localtime(named.ends_at)))
    return ", ".join(part for part in parts if part)


def _age(started: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: how long ago ``started`` was; ``-`` if unknown."""
    import time

    if started is None:
        return "-"
    return _seconds_text(time.time() - started)


def _seconds_text(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: a duration in its largest whole unit."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.command()
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
    10 s), then its backend ends what it left elsewhere (batch jobs cancelled, processes
    and directories on remote hosts removed), its local processes are ended (SIGTERM,
    SIGKILL after 3 s), and its files deleted. Without IDs, ends every orphaned
    deployment (its owner died, e.g. by kill -9) and leaves running ones alone unless
    --all is given.

    Each deployment's reaper runs `daskdeploy cleanup ID --quiet` by itself when its
    owner dies without tearing down, so this is rarely needed by hand.

    \b
    Examples:
      daskdeploy cleanup                 # end every orphaned deployment
      daskdeploy cleanup dd-3f9a61c2     # end this one, even if it is running
      daskdeploy cleanup --all           # end every deployment of yours here
    """
    from ..orphans import ORPHANED, RUNNING, end_deployment, find_deployments
    from ..records import ID_PATTERN

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
                f"No deployment {', '.join(unknown)} found (no record, batch job or process "
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
