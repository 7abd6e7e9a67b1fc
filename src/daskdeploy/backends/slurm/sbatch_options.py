"""sbatch's own options, which ``daskdeploy sbatch`` passes through to the ``#SBATCH`` header.

``daskdeploy sbatch`` interprets a few sbatch options itself (``--ntasks``, ``--nodes``,
``--cpus-per-task``, ...); every other option before SCRIPT goes into the header as it
is, in order. To tell ``--mail-type END`` (an option and its value) from ``--exclusive
pi.py`` (a flag, then the script), :func:`pass_through` knows which of sbatch's options
take a value (:data:`LONG_OPTIONS`, :data:`SHORT_OPTIONS`, from ``sbatch --help`` and
``man sbatch`` of Slurm 22.05 to 24.11). An option it does not know must be written
``--option=value``, or given with ``--directive``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NoReturn

import click

from .sbatch import _directive_value as directive_value

__all__ = ["LONG_OPTIONS", "NOT_PASSED", "SHORT_OPTIONS", "pass_through"]

NONE, OPTIONAL, REQUIRED = "none", "optional", "required"


def _each(names: str, takes: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), takes)


#: sbatch's long options (without ``--``) and whether each takes a value: ``none`` (a
#: flag), ``optional`` (only as ``--option=value``) or ``required``.
LONG_OPTIONS: dict[str, str] = {
    **_each(
        (
            "contiguous hold ignore-pbs no-requeue overcommit oversubscribe parsable quiet "
            "reboot requeue spread-job test-only use-min-nodes usage verbose version wait help"
        ),
        NONE,
    ),
    **_each("exclusive get-user-env nice no-kill propagate", OPTIONAL),
    **_each(
        (
            "account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters "
            "comment constraint container container-id core-spec cores-per-socket cpu-freq "
            "cpus-per-gpu cpus-per-task deadline delay-boot dependency distribution error "
            "export export-file extra extra-node-info gid gpu-bind gpu-freq gpus "
            "gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint input job-name "
            "kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind "
            "mem-per-cpu mem-per-gpu mincpus network nodefile nodelist nodes ntasks "
            "ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode "
            "output partition power prefer priority profile qos reservation signal "
            "sockets-per-node switches thread-spec threads-per-core time time-min tmp "
            "tres-bind tres-per-task uid wait-all-nodes wckey wrap exclude"
        ),
        REQUIRED,
    ),
}

#: sbatch's short options and the long option each stands for.
SHORT_OPTIONS: dict[str, str] = {
    "a": "array",
    "A": "account",
    "B": "extra-node-info",
    "b": "begin",
    "C": "constraint",
    "c": "cpus-per-task",
    "D": "chdir",
    "d": "dependency",
    "e": "error",
    "F": "nodefile",
    "G": "gpus",
    "H": "hold",
    "h": "help",
    "i": "input",
    "J": "job-name",
    "k": "no-kill",
    "L": "licenses",
    "M": "clusters",
    "m": "distribution",
    "N": "nodes",
    "n": "ntasks",
    "O": "overcommit",
    "o": "output",
    "p": "partition",
    "Q": "quiet",
    "q": "qos",
    "S": "core-spec",
    "s": "oversubscribe",
    "t": "time",
    "u": "usage",
    "V": "version",
    "v": "verbose",
    "W": "wait",
    "w": "nodelist",
    "x": "exclude",
}

#: Options of the sbatch command rather than of the job: not passed to the header, and
#: what to do instead.
NOT_PASSED: dict[str, str] = {
    "wrap": "daskdeploy sbatch writes the script itself",
    "test-only": "--check asks sbatch --test-only",
    "parsable": "--submit prints the job id",
    "wait": "submit the script you --save with `sbatch --wait FILE`",
    "help": "`sbatch --help` lists sbatch's options",
    "usage": "`sbatch --usage` lists sbatch's options",
    "version": "`sbatch --version` prints SLURM's version",
}


def _resolve(name: str) -> tuple[str | None, list[str]]:
    """sbatch's long option ``name`` stands for (sbatch takes unique abbreviations).

    Returns the option (``None`` if unknown or ambiguous) and, if ambiguous, the options
    it could be.
    """
    if name in LONG_OPTIONS:
        return name, []
    candidates = sorted(option for option in LONG_OPTIONS if option.startswith(name))
    if len(candidates) == 1:
        return candidates[0], []
    return None, candidates


def pass_through(
    ctx: click.Context,
    args: Sequence[str],
    own: Mapping[str, bool],
    not_here: Collection[str],
    explain_short_flag: Callable[[str], NoReturn],
) -> list[str]:
    """``args`` with every sbatch option before SCRIPT that is not in ``own`` turned
    into ``--directive=OPTION``, in order.

    Parameters
    ----------
    ctx
        The command's context, for the usage errors.
    args
        The command's arguments: options, SCRIPT, the script's arguments.
    own
        The command's own options (``--ntasks``, ``-N``, ``--directive``, ...), each
        with whether it takes a value.
    not_here, explain_short_flag
        Short flags that mean something else in daskdeploy (``-n``, ``-o``, ``-q``,
        ``-b``), and the function that raises the usage error for one of them.

    Returns
    -------
    list of str
        Arguments for the command's own options: the pass-through options have become
        ``--directive=--gres=gpu:1``, ``--directive=-C skylake``, ... A long option given
        as ``--option value`` is written ``--option=value``, a value with spaces, ``#`` or
        quotes quoted for sbatch.

    Raises
    ------
    click.UsageError
        For an option daskdeploy writes itself under another spelling (``--part=x``),
        a misspelt option of daskdeploy's (``--ntask 4``), an abbreviation of several
        options, an option of the sbatch command rather than of the job (``--wrap``,
        ``--test-only``, ...), a long option not known to take a value and not given as
        ``--option=value``, an unknown short option, or a value missing at the end.
    """
    own_long = sorted(name for name in own if name.startswith("--"))
    result: list[str] = []
    index = 0

    def next_value(option: str) -> str:
        if index + 1 >= len(args):
            raise click.UsageError(f"{option} needs a value: write {option}=VALUE.", ctx)
        return args[index + 1]

    while index < len(args):
        arg = args[index]
        if arg == "--" or arg == "-" or not arg.startswith("-"):
            return result + list(args[index:])  # SCRIPT and the script's arguments
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name in own:
                takes_value = own[name] and not equals
                result += args[index : index + 1 + takes_value]
                index += 1 + takes_value
                continue
            option, candidates = _resolve(name[2:])
            if option is not None and f"--{option}" in own:
                raise click.UsageError(
                    f"{name} is sbatch's --{option}, which daskdeploy sbatch writes itself: "
                    f"write --{option}{equals}{value} in full.",
                    ctx,
                )
            if option in NOT_PASSED:
                raise click.UsageError(
                    f"{name} is an option of the sbatch command, not of the job, so it "
                    f"cannot go into the #SBATCH header: {NOT_PASSED[option]}.",
                    ctx,
                )
            if option is None:
                close = difflib.get_close_matches(name, own_long, n=1, cutoff=0.8)
                if close:  # a misspelt option of daskdeploy's, e.g. --ntask
                    raise click.NoSuchOption(name, possibilities=close, ctx=ctx)
                if candidates:
                    raise click.UsageError(
                        f"{name} could be sbatch's "
                        f"{' or '.join(f'--{candidate}' for candidate in candidates)}: "
                        f"write the option in full.",
                        ctx,
                    )
            if equals:
                result.append(f"--directive={name}={directive_value(value)}")
            elif option is None:
                raise click.UsageError(
                    f"daskdeploy sbatch passes {name} to sbatch, but does not know whether it "
                    f"takes a value: write {name}=VALUE, or --directive={name} for a flag.",
                    ctx,
                )
            elif LONG_OPTIONS[option] == REQUIRED:
                result.append(f"--directive={name}={directive_value(next_value(name))}")
                index += 1
            else:
                result.append(f"--directive={name}")
            index += 1
            continue
        flag = arg[:2]
        if flag in own:
            takes_value = own[flag] and len(arg) == 2
            result += args[index : index + 1 + takes_value]
            index += 1 + takes_value
            continue
        if flag in not_here:
            explain_short_flag(flag)
        option = SHORT_OPTIONS.get(flag[1])
        if option is None:
            raise click.UsageError(
                f"{flag} is not one of sbatch's short options (`sbatch --help` lists them); "
                f"to pass an option as it is, use --directive='{arg} ...'.",
                ctx,
            )
        if f"--{option}" in own:
            raise click.UsageError(
                f"{flag} is sbatch's --{option}, which daskdeploy sbatch writes itself: "
                f"write --{option}.",
                ctx,
            )
        if option in NOT_PASSED:
            raise click.UsageError(
                f"{flag} (sbatch's --{option}) is an option of the sbatch command, not of the "
                f"job, so it cannot go into the #SBATCH header: {NOT_PASSED[option]}.",
                ctx,
            )
        if LONG_OPTIONS[option] == REQUIRED:
            value = arg[2:] or next_value(flag)
            index += len(arg) == 2
            result.append(f"--directive={flag} {directive_value(value)}")
        else:
            result.append(f"--directive={arg}")
        index += 1
    return result
