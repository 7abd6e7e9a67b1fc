"""Running external commands (``sbatch``, ``squeue``, ``srun``, ...) with full diagnostics.

Every external command daskdeploy runs goes through :func:`run_command`: it never waits
without a deadline, and a failure raises :class:`CommandError` carrying the command line,
exit status and both output streams, so the message a user sees says what the tool said.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import DaskDeployError

__all__ = ["CommandError", "CommandResult", "missing_commands", "run_command"]

_TAIL_LINES = 20


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed and how it exited."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def command_line(self) -> str:
        """The command as a shell would show it."""
        return shlex.join(self.args)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.returncode == 0

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines of stderr, or of stdout when stderr is empty."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class CommandError(DaskDeployError, RuntimeError):
    """An external command failed, timed out or could not be started.

    Attributes
    ----------
    result
        The finished command, or ``None`` if it never ran or timed out.
    """

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def missing_commands(names: Sequence[str]) -> list[str]:
    """Return the names in ``names`` that are not on ``PATH``."""
    return [name for name in names if shutil.which(name) is None]


def run_command(
    args: Sequence[str],
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    check: bool = True,
    what: str | None = None,
) -> CommandResult:
    """Run a command to completion within ``timeout`` seconds and capture its output.

    Parameters
    ----------
    args
        Program and arguments; never passed through a shell.
    timeout
        Seconds before the command is killed and :class:`CommandError` raised.
    env
        Extra environment variables on top of this process's environment.
    input_text
        Text written to the command's standard input (none by default).
    check
        Raise :class:`CommandError` when the exit status is not 0.
    what
        Short description for messages, e.g. ``"submitting the worker jobs"``.

    Raises
    ------
    CommandError
        The program is missing, timed out, or (with ``check``) exited non-zero. The message
        holds the command line, exit status and the tail of its output.
    """
    args = tuple(str(arg) for arg in args)
    doing = what or f"running {args[0]}"
    full_env = {**os.environ, **env} if env else None
    try:
        completed = subprocess.run(
            args,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(
            f"{_sentence(doing)} failed: the program {args[0]!r} is not on PATH. Install "
            f"it, or add its directory to PATH (on a cluster often a `module load`); "
            f"`command -v {args[0]}` checks."
        ) from None
    except subprocess.TimeoutExpired:
        raise CommandError(
            f"{_sentence(doing)} did not finish within {timeout:g} s: {shlex.join(args)}"
        ) from None
    result = CommandResult(args, completed.returncode, completed.stdout, completed.stderr)
    if check and not result.ok:
        raise CommandError(
            f"{_sentence(doing)} failed (exit status {result.returncode}): "
            f"{result.command_line}\n{result.output_tail()}",
            result,
        )
    return result
