"""The ``daskdeploy`` command line: a thin click layer over the Python API.

Each command lives in a module of its own (:mod:`.run`, :mod:`.deployments`,
:mod:`.backends`, :mod:`.profiles`); the backends add theirs through
:meth:`~daskdeploy.backends.base.Backend.cli_commands`, loaded only when needed
(:mod:`.backend_commands`).
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from .arguments import parse_option_value
from .backend_commands import BackendCommands, GroupHelpWithExtras
from .backends import backends
from .deployments import cleanup, list_deployments
from .errors import BAD_INPUT_EXIT, UserError
from .named import attach_snippet, down, logs, scale, up
from .profiles import profile
from .run import _progress_bar as _progress_bar  # tests call daskdeploy.cli._progress_bar
from .run import run

__all__ = ["UserError", "cli", "main", "parse_option_value"]


def _backend_list_help() -> str:
    """The closing paragraph of ``daskdeploy --help``: the registered backends."""
    from ..registry import backend_names

    return (
        f"Backends: {', '.join(backend_names())}. `daskdeploy backends` tells which can run "
        f"here, `daskdeploy backends --options` what each accepts."
    )


@click.group(
    cls=GroupHelpWithExtras,
    extra_help=_backend_list_help,
    commands=BackendCommands(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="daskdeploy")
def cli() -> None:
    """Run the same Dask program on a laptop or a cluster, unchanged.

    \b
    Quick start:
      daskdeploy run examples/pi.py                    # local workers, one per core
      daskdeploy run -n 2 --dry-run examples/pi.py     # show what would start
      daskdeploy backends                              # where can this machine run?
      daskdeploy up analysis -n 4                      # start once, keep it running,
      daskdeploy run --attach analysis examples/pi.py  # run scripts on it, no wait,
      daskdeploy down analysis                         # and end it

    \b
    Exit status: `run` exits with the script's own status; 2 means a mistake in
    the command line or configuration (nothing was started), 1 that starting failed.
    """


for _command in (
    run,
    up,
    down,
    scale,
    logs,
    attach_snippet,
    backends,
    list_deployments,
    cleanup,
    profile,
):
    cli.add_command(_command)


def _add_data_commands() -> None:
    try:
        from ..datasets.cli import data
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
