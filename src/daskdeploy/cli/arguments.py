"""Arguments and options several commands share: ``--option KEY=VALUE``, the resource flags, SCRIPT.

Backends that add commands (:meth:`daskdeploy.backends.base.Backend.cli_commands`) use
:data:`SCRIPT` and :func:`script_not_an_option` for a script argument followed by the
script's own arguments.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from .errors import UserError

__all__ = [
    "PROFILE_IS_NOT_P",
    "SCRIPT",
    "SHORT_FLAGS",
    "ShortFlagsExplained",
    "collect_options",
    "parse_assignments",
    "parse_option_value",
    "resource_options",
    "script_not_an_option",
    "short_flag_error",
]

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")

#: What each short flag means, in every command that has it: one meaning per letter. A
#: command without one of these flags explains it (:class:`ShortFlagsExplained`) rather
#: than give the letter another meaning.
SHORT_FLAGS: dict[str, str] = {
    "-b": "--backend",
    "-n": "--workers",
    "-o": "--option",
    "-q": "--quiet",
    "-t": "--time",
    "-A": "--account",
    "-J": "--job-name",
    "-N": "--nodes",
    "-c": "--cpus-per-task",
    "-p": "--partition",
    "-h": "--help",
}

#: For commands with ``--profile`` (:func:`resource_options`), which is not ``-p``.
PROFILE_IS_NOT_P = {"-p": ("--profile", "--profile {value} or -b {value}")}

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


def value_after(args: Sequence[str], flag: str) -> str | None:
    """The value given to short ``flag`` in ``args``: ``-p X`` or ``-pX``; ``None`` if none."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag:
            return args[index + 1] if index + 1 < len(args) else None
        if arg.startswith(flag) and not arg.startswith("--"):
            return arg[len(flag) :].lstrip("=") or None
    return None


def short_flag_error(
    ctx: click.Context, flag: str, long_name: str, instead: str
) -> click.UsageError:
    """The usage error for short ``flag``, which this command does not take.

    ``flag`` is one of :data:`SHORT_FLAGS`; ``instead`` is what to write, e.g.
    ``"--profile X or -b X"``. The message adds what ``flag`` means in daskdeploy.
    """
    return click.UsageError(
        f"In `{ctx.command_path}`, {flag} is not {long_name}: write {instead} (daskdeploy's "
        f"{flag} means {SHORT_FLAGS[flag]}).",
        ctx,
    )


class ShortFlagsExplained(click.Command):
    """A command that explains the short flags it does not take instead of "No such option".

    Mix it in before the command class. ``not_here`` maps a short flag to the long option
    the user probably meant and what to write instead, with ``{value}`` for the value
    that followed the flag: ``{"-p": ("--profile", "--profile {value} or -b {value}")}``.
    """

    def __init__(
        self, *args: Any, not_here: Mapping[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        self.not_here = dict(not_here or {})
        super().__init__(*args, **kwargs)

    def explain_short_flag(self, ctx: click.Context, args: Sequence[str], flag: str) -> NoReturn:
        """Raise the usage error for ``flag``, one of :attr:`not_here`."""
        long_name, instead = self.not_here[flag]
        value = value_after(args, flag)
        if value is None:
            metavars = {
                name: param.metavar
                for param in self.params
                for name in param.opts
                if isinstance(param, click.Option)
            }
            value = metavars.get(long_name) or "VALUE"
        raise short_flag_error(ctx, flag, long_name, instead.format(value=shlex.quote(value)))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as click does, explaining a short flag of :attr:`not_here`."""
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            flag = exc.option_name[:2]
            if exc.option_name.startswith("--") or flag not in self.not_here:
                raise
            self.explain_short_flag(ctx, given, flag)


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
        click.option(
            "--profile", metavar="NAME", help="Saved profile to deploy (-b NAME takes one too)."
        ),
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
