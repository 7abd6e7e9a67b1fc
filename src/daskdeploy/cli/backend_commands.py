"""What the backends add to the command line: their commands and their ``run`` examples.

Backends are loaded only when needed: a command the command line does not define itself
loads them in registry order until one adds it, and listing every command (``daskdeploy
--help``, a mistyped command, the documentation) or showing the ``run`` examples loads
them all. ``daskdeploy run``, ``ls``, ``profile`` and the others load none for this. A
backend that fails to load, or whose hook fails, adds nothing here; ``daskdeploy
backends`` reports it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, MutableMapping
from functools import cache
from typing import Any

import click

__all__ = [
    "BackendCommands",
    "GroupHelpWithExtras",
    "HelpWithExtras",
    "backend_commands",
    "backend_run_examples",
    "find_backend_command",
    "forget_backends",
]

logger = logging.getLogger(__name__)


def _loaded_backends() -> Iterator[Any]:
    """Every registered backend that loads, in registry order, each loaded when reached."""
    from ..registry import loaded_backends

    return loaded_backends()


class _Loader:
    """The backends' commands, collected backend by backend as far as a lookup needs."""

    def __init__(self) -> None:
        self.commands: dict[str, click.Command] = {}
        self._backends: Iterator[Any] | None = None
        self._done = False

    def _next(self) -> bool:
        """Collect the commands of one more backend; False when none is left."""
        if self._done:
            return False
        if self._backends is None:
            self._backends = _loaded_backends()
        backend = next(self._backends, None)
        if backend is None:
            self._done = True
            return False
        try:
            added = list(backend.cli_commands())
        except Exception as exc:
            logger.warning("Backend %r: its commands failed to load: %s", backend.name, exc)
            return True
        for command in added:
            name = command.name
            if name is not None and self.commands.setdefault(name, command) is not command:
                logger.warning(
                    "Backend %r adds a command %r that another backend added; ignored.",
                    backend.name,
                    name,
                )
        return True

    def find(self, name: str) -> click.Command | None:
        while name not in self.commands and self._next():
            pass
        return self.commands.get(name)

    def everything(self) -> dict[str, click.Command]:
        while self._next():
            pass
        return self.commands


_loader = _Loader()


def backend_commands() -> dict[str, click.Command]:
    """The commands the backends add (:meth:`~daskdeploy.backends.base.Backend.cli_commands`).

    Loads every backend the first time. When two backends add different commands of the
    same name, the first one's is kept and a warning logged; one command object added by
    several backends (e.g. two backends of one platform) appears once.

    Returns
    -------
    dict
        Command name to command, in registry order.
    """
    return _loader.everything()


def find_backend_command(name: str) -> click.Command | None:
    """The command ``name`` a backend adds, loading backends in order only until found."""
    return _loader.find(name)


def forget_backends() -> None:
    """Forget the collected commands and examples (after the registry changed)."""
    global _loader
    _loader = _Loader()
    backend_run_examples.cache_clear()


@cache
def backend_run_examples() -> tuple[str, ...]:
    """The ``daskdeploy run`` command lines of every backend's ``run_examples``, in order."""
    examples: list[str] = []
    for backend in _loaded_backends():
        examples += [line for line in backend.run_examples if line not in examples]
    return tuple(examples)


class BackendCommands(MutableMapping[str, click.Command]):
    """A group's commands: its own, then the backends', loaded on first need.

    Looking up a command the group defines itself loads no backend; looking up another
    name loads backends in registry order until one adds it; listing the commands loads
    them all. The group's own commands win over a backend's command of the same name.
    """

    def __init__(self) -> None:
        self._own: dict[str, click.Command] = {}
        self._warned: set[str] = set()

    def _added(self) -> dict[str, click.Command]:
        added = backend_commands()
        for name in (added.keys() & self._own.keys()) - self._warned:
            if added[name] is not self._own[name]:
                self._warned.add(name)
                logger.warning("A backend adds a command %r, which daskdeploy has; ignored.", name)
        return {name: command for name, command in added.items() if name not in self._own}

    def __getitem__(self, name: str) -> click.Command:
        if name in self._own:
            return self._own[name]
        command = find_backend_command(name)
        if command is None:
            raise KeyError(name)
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._own[name] = command

    def __delitem__(self, name: str) -> None:
        del self._own[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from self._added()

    def __len__(self) -> int:
        return len(self._own) + len(self._added())

    def __contains__(self, name: object) -> bool:
        return name in self._own or (
            isinstance(name, str) and find_backend_command(name) is not None
        )


class HelpWithExtras(click.Command):
    """A command whose help text ends with text made only when the help is shown.

    Parameters
    ----------
    extra_help
        Returns the paragraphs to append (``""`` for none); called each time
        :attr:`help` is read, which is when ``--help`` or the documentation shows it.
    """

    def __init__(self, *args: Any, extra_help: Callable[[], str], **kwargs: Any) -> None:
        self._extra_help = extra_help
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def help(self) -> str | None:
        """The command's own help text, then the extra paragraphs."""
        if self._help is None:
            return None
        extra = self._extra_help()
        return f"{self._help}\n\n{extra}" if extra else self._help

    @help.setter
    def help(self, text: str | None) -> None:
        # Cleaned here, so the indentation of a docstring and of the appended text agree.
        self._help = inspect.cleandoc(text) if text is not None else None


class GroupHelpWithExtras(HelpWithExtras, click.Group):
    """A group whose help text ends with text made only when the help is shown."""
