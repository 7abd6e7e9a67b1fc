"""The scaffolding the local harnesses share: a private root, daemons, start, stop, ``main``.

:class:`DaemonHarness` is the base of :class:`~daskdeploy.testing.slurm.LocalSlurm` and
:class:`~daskdeploy.testing.ssh.LocalSSHHosts`: it makes the root directory, runs the
subclass's start-up with retries on a port or subnet clash, turns a failure into one
message with the tail of the daemons' logs (after stopping everything), stops at
interpreter exit, and is a context manager. :func:`serve` is the body of their
``python -m`` entry points.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from ._system import POLL, die_with_parent, tail

__all__ = ["DaemonHarness", "StartError", "serve"]

_Harness = TypeVar("_Harness", bound="DaemonHarness")


class StartError(Exception):
    """A start-up step failed; the logs of the daemons named in ``daemons`` explain it."""

    def __init__(self, message: str, daemons: list[str]):
        super().__init__(message)
        self.daemons = daemons


class DaemonHarness:
    """Daemons and their files under one private root directory, started and stopped.

    Subclasses set the class attributes and implement :meth:`_unavailable`,
    :meth:`_start` (start everything, raising :class:`StartError` on failure),
    :meth:`_shutdown` (end everything; the root still exists) and :meth:`_log_files`;
    they may extend :meth:`_make_root`, :meth:`_has_state` and :meth:`_forget`.

    Parameters
    ----------
    root : str or os.PathLike, optional
        A directory that must not exist or be empty; default: a fresh
        ``/tmp/<_root_prefix>XXXXXXXX`` at every start.
    """

    #: Name in failure messages, e.g. ``"LocalSlurm"``.
    _label: ClassVar[str]
    #: The message of the RuntimeError raised by :attr:`root` before a start.
    _not_started: ClassVar[str]
    #: Prefix of default roots, in ``/tmp``.
    _root_prefix: ClassVar[str]
    #: Mode of a root that was given (default roots are 0700).
    _root_mode: ClassVar[int] = 0o700
    #: How a daemon is called in "... exited with code N" (``{name}`` is its name).
    _daemon_title: ClassVar[str] = "{name}"
    #: Texts of a failure worth another attempt (another process took a port meanwhile).
    _clashes: ClassVar[tuple[str, ...]] = ("Address already in use",)

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root_arg = Path(os.path.abspath(root)) if root is not None else None
        self._root: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._owner_pid = os.getpid()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties

    @property
    def root(self) -> Path:
        """The directory holding the running harness's files."""
        if self._root is None:
            raise RuntimeError(self._not_started)
        return self._root

    @property
    def running(self) -> bool:
        """True between a successful start and :meth:`stop`."""
        return self._root is not None and bool(self._procs)

    # ------------------------------------------------------------------ to implement

    def _unavailable(self) -> str | None:
        """Why this harness cannot run here, or None."""
        raise NotImplementedError

    def _start(self, deadline: float) -> None:
        """Start everything in :attr:`root` by ``deadline`` (:func:`time.monotonic`)."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """End every process of the harness (the root still exists); bounded waits only."""
        raise NotImplementedError

    def _log_files(self, name: str) -> list[Path]:
        """The files to quote when daemon ``name`` failed (the empty ones are skipped)."""
        raise NotImplementedError

    def _make_root(self, given: Path | None) -> Path:
        """Create the root: ``given``, or a fresh directory in ``/tmp``."""
        if given is None:
            return Path(tempfile.mkdtemp(prefix=self._root_prefix, dir="/tmp"))
        given.mkdir(mode=self._root_mode, parents=True, exist_ok=True)
        return given

    def _has_state(self) -> bool:
        """Whether :meth:`stop` has anything to do."""
        return self._root is not None or bool(self._procs)

    def _forget(self) -> None:
        """Reset what describes the running harness, at the end of :meth:`stop`."""

    # ------------------------------------------------------------------ start

    def start(self: _Harness, timeout: float = 30.0) -> _Harness:
        """Make the root, start everything and wait until it works.

        Parameters
        ----------
        timeout : float
            Upper bound in seconds for the whole start-up (typically well under 1 s).

        Returns
        -------
        DaemonHarness
            ``self``, so that ``harness = Harness().start()`` works.

        Raises
        ------
        RuntimeError
            When the harness cannot run here (the message says what to install), is
            already started, its root is not empty, or something fails or is not ready in
            time. Everything started is stopped and the root removed first; the message
            ends with the tail of the relevant daemon logs. A clash (another process took
            the port meanwhile) is retried twice while time is left.
        """
        with self._lock:
            if self._root is not None:
                raise RuntimeError(f"{self!r} is already started")
            reason = self._unavailable()
            if reason is not None:
                raise RuntimeError(reason)
            given = self._root_arg
            if given is not None and given.exists() and any(given.iterdir()):
                raise RuntimeError(f"root {str(given)!r} exists and is not empty")
            deadline = time.monotonic() + timeout
            attempt = 1
            while True:
                self._root = self._make_root(given)
                atexit.register(self._stop_at_exit)
                try:
                    self._start(deadline)
                except BaseException as exc:
                    message = self._failure_message(exc)
                    self.stop()
                    if not isinstance(exc, Exception):
                        raise
                    clash = any(text in message for text in self._clashes)
                    if clash and attempt < 3 and time.monotonic() < deadline:
                        attempt += 1
                        continue
                    raise RuntimeError(message) from exc
                self._owner_pid = os.getpid()
                return self

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start daemon ``name`` in the root, in its own session, output appended to ``log``.

        It gets SIGTERM when the thread that called this dies (:func:`die_with_parent`).
        """
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._procs[name] = proc
        return proc

    def _check_alive(self) -> None:
        """Raise :class:`StartError` when a daemon has exited."""
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is not None:
                title = self._daemon_title.format(name=name)
                raise StartError(f"{title} exited with code {code}", [name])

    def _wait(
        self, what: str, ready: Callable[[], bool], deadline: float, daemons: list[str]
    ) -> None:
        """Wait until ``ready()``; a dead daemon or the deadline raise :class:`StartError`."""
        while True:
            self._check_alive()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise StartError(f"timed out waiting for {what}", daemons)
            time.sleep(POLL)

    def _failure_message(self, exc: BaseException) -> str:
        message = f"{self._label} failed to start: {exc}"
        if self._root is None:
            return message
        daemons = exc.daemons if isinstance(exc, StartError) else list(self._procs)
        for name in daemons:
            for path in self._log_files(name):
                if path.exists() and path.stat().st_size:
                    message += f"\n--- last lines of {path.name} ---\n{tail(path)}"
        return message

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """End everything and remove the root; idempotent, every wait bounded.

        Also runs at interpreter exit if not called (in the process that started it).
        """
        with self._lock:
            if not self._has_state():
                return
            atexit.unregister(self._stop_at_exit)
            try:
                self._shutdown()
            finally:
                if self._root is not None:
                    shutil.rmtree(self._root, ignore_errors=True)
                self._root = None
                self._procs = {}
                self._forget()

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:  # not in a forked child that exits normally
            self.stop()

    # ------------------------------------------------------------------ context manager

    def __enter__(self: _Harness) -> _Harness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    parser: argparse.ArgumentParser,
    unavailable: str | None,
    start: Callable[[], _Harness],
    announce: Callable[[_Harness], list[str]],
) -> None:
    """Start a harness, print ``announce(it)``, wait for SIGINT/SIGTERM, stop it.

    The body of the harnesses' ``python -m`` entry points. When the harness cannot run
    here the parser exits with status 2 and the reason; a start failure
    (``RuntimeError``/``ValueError``) is printed and exits with status 1.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The entry point's parser, which reports ``unavailable``.
    unavailable : str or None
        Why the harness cannot run here (its ``unavailable_reason()``), or None.
    start : callable
        Starts the harness and returns it.
    announce : callable
        The lines to print once it runs.
    """
    if unavailable is not None:
        parser.exit(2, f"{parser.prog}: error: {unavailable}\n")
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        running = start()
    except (RuntimeError, ValueError) as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    try:
        for line in announce(running):
            print(line, flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        running.stop()
    print("stopped", file=sys.stderr, flush=True)
