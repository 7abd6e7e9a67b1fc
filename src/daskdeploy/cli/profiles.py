"""``daskdeploy profile``: save cluster settings under a name, list, show and delete them."""

from __future__ import annotations

import click

from .arguments import ShortFlagsExplained, collect_options, resource_options
from .errors import UserError, api_call

__all__ = ["profile"]


@click.group()
def profile() -> None:
    """Save cluster settings under a name and deploy them by that name."""


@profile.command(
    "save",
    cls=ShortFlagsExplained,
    not_here={"-p": ("--profile", "--profile {value}")},
)
@click.argument("name")
@resource_options
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
    from ..profiles import get_profile, save_profile

    options = collect_options(workers, threads_per_worker, memory_per_worker, assignments)
    if profile is not None:
        base_backend, base_options = api_call(get_profile, profile)
        backend = backend or base_backend
        options = {**base_options, **options}
    if backend is None:
        raise UserError("profile save needs --backend NAME (or --profile to start from).")
    from ..api import plan_from

    api_call(plan_from, backend, None, options, "command line")  # errors name their source
    path = api_call(save_profile, name, backend, **options)
    click.echo(f"Saved profile {name!r} ({backend}) in {path}.")


@profile.command("list")
def profile_list() -> None:
    """List saved profiles."""
    from ..profiles import list_profiles

    saved = api_call(list_profiles)
    if not saved:
        click.echo("No profiles saved. Create one with `daskdeploy profile save NAME ...`.")
    for name, settings in sorted(saved.items()):
        backend = settings.get("backend", "?") if isinstance(settings, dict) else "?"
        click.echo(f"{name}  ({backend})")


@profile.command("show")
@click.argument("name")
def profile_show(name: str) -> None:
    """Show what deploying profile NAME would start, with every option's source."""
    from ..api import plan

    click.echo(api_call(plan, profile=name).describe())


@profile.command("delete")
@click.argument("name")
def profile_delete(name: str) -> None:
    """Delete profile NAME saved by `profile save`."""
    from ..profiles import delete_profile

    path = api_call(delete_profile, name)
    click.echo(f"Deleted profile {name!r} from {path}.")
