"""Arguments and options several commands share: ``--option KEY=VALUE``, the resource flags, SCRIPT.

Backends that add commands (:meth:`daskdeploy.backends.base.Backend.cli_commands`) use
:data:`SCRIPT` and :func:`script_not_an_option` for a script argument followed by the
script's own arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from .errors import UserError

__all__ = [
    "SCRIPT",
    "collect_options",
    "parse_assignments",
    "parse_option_value",
    "resource_options",
    "script_not_an_option",
]

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")

#: Type of a SCRIPT argument; pair it with ``callback=script_not_an_option``.
SCRIPT = click.Path(path_type=Path)


def script_not_an_option(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Catch a misspelt flag before SCRIPT, which would otherwise be taken for the script.

    Commands that pass unknown options after SCRIPT on to the script (``run``, and
    commands backends add) let click accept ``--wokers`` in SCRIPT's place; say it is no
    option, and suggest the right one.
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


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """Turn ``--option KEY=VALUE`` texts into options typed by :func:`parse_option_value`."""
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


def collect_options(
    workers: int | None,
    threads_per_worker: int | None,
    memory_per_worker: str | None,
    assignments: Iterable[str],
    quiet: bool = False,
    report: bool = False,
    adopt: bool | None = None,
) -> dict[str, Any]:
    """The options given by flags and by ``--option``; an option given both ways is an error."""
    options = parse_assignments(assignments)
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


def resource_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--backend``, ``--profile``, ``--workers``, ... and ``--option`` to a command."""
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
