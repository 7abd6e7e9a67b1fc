"""``daskdeploy backends``: which backends can run here, why not, and their options."""

from __future__ import annotations

from collections.abc import Iterable

import click

__all__ = ["backends"]


@click.command()
@click.option("--options", "show_options", is_flag=True, help="Also list each backend's options.")
def backends(show_options: bool) -> None:
    """List the backends, whether each can run here, and why not."""
    from ..registry import available_backends

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
    from .. import config
    from ..registry import get_backend

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
