"""Process-wide bookkeeping of live deployments: exit hooks, signals, the ambient deployment.

Every live deployment is registered here until it is torn down. While any is live:

* an ``atexit`` hook tears down whatever is still running when the interpreter exits
  (normal end, uncaught exception, ``sys.exit``, Ctrl-C);
* ``SIGTERM`` and ``SIGHUP`` (whose default action kills Python without running exit
  hooks) raise ``SystemExit(128 + signum)`` in the main thread instead, so ``finally``
  blocks and the exit hook run. A second such signal during teardown kills the process
  at once (worker processes still exit, because they watch their parent). Handlers are
  only installed where none was set by the program, and are restored afterwards.

The *ambient* deployment is the one ``daskdeploy run`` started: ``deploy()`` calls in the
script it runs connect to it instead of starting another.

:func:`exit_status_hint` tells a teardown with what status the program is about to end,
for backends whose other processes should end with the same status (MPI ranks).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .deployment import Deployment

__all__ = [
    "ambient",
    "exit_status_hint",
    "live",
    "register",
    "set_ambient",
    "set_exit_status",
    "unregister",
]

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_live: dict[str, Deployment] = {}
_ambient: Deployment | None = None
_saved_handlers: dict[int, Any] = {}
_atexit_registered = False
_signalled = False
_signal_number: int | None = None
_exit_status: int | None = None
_HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _register_exit_hook(hook: Any) -> None:
    """Run ``hook`` at interpreter exit, before thread pools refuse new work.

    ``atexit`` hooks run after ``concurrent.futures`` has shut its executors down, so a
    teardown there cannot resolve a host name through asyncio (``getaddrinfo`` runs in the
    default executor): closing remote SSH processes and removing their directories failed
    when a script simply ended. ``threading``'s own exit hooks run earlier, while the
    interpreter is still whole; ``atexit`` stays the fallback.
    """
    register_early = getattr(threading, "_register_atexit", None)
    if register_early is not None:
        try:
            register_early(hook)
            return
        except RuntimeError:  # already shutting down
            pass
    atexit.register(hook)


def register(deployment: Deployment) -> None:
    """Track a new deployment; install exit and signal hooks with the first one."""
    global _atexit_registered
    with _lock:
        _live[deployment.id] = deployment
        if not _atexit_registered:
            _register_exit_hook(_teardown_all)
            _atexit_registered = True
        if len(_live) == 1:
            _install_signal_handlers()


def unregister(deployment: Deployment) -> None:
    """Forget a torn-down deployment; restore signal handlers after the last one."""
    global _ambient
    with _lock:
        _live.pop(deployment.id, None)
        if _ambient is deployment:
            _ambient = None
        if not _live:
            _restore_signal_handlers()


def live() -> list[Deployment]:
    """Return the deployments of this process that are not torn down yet."""
    with _lock:
        return list(_live.values())


def set_ambient(deployment: Deployment | None) -> None:
    """Make ``deployment`` the one that ``deploy()`` connects to (``None`` to clear)."""
    global _ambient
    with _lock:
        _ambient = deployment


def ambient() -> Deployment | None:
    """Return the ambient deployment set by ``daskdeploy run``, if any."""
    with _lock:
        return _ambient


def set_exit_status(status: int | None) -> None:
    """Record the status the program will exit with (``daskdeploy run`` knows its script's)."""
    global _exit_status
    _exit_status = status


def exit_status_hint() -> int:
    """The exit status the program is heading for, as well as it can be known now.

    In order: a status recorded with :func:`set_exit_status`; the exception being handled
    or the one that ended the program (130 for Ctrl-C, the code of ``SystemExit``, else 1);
    128 + the number of a handled SIGTERM/SIGHUP; else 0. Inside a ``with deploy()``
    block left by an exception, and at interpreter exit after an uncaught one, the
    exception is visible here.
    """
    if _exit_status is not None:
        return _exit_status
    exc = sys.exc_info()[1] or getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SystemExit):
        from .runner import exit_status

        return exit_status(exc.code) if not isinstance(exc.code, str) else 1
    if exc is not None:
        return 1
    if _signal_number is not None:
        return 128 + _signal_number
    return 0


def _teardown_all() -> None:
    for deployment in reversed(live()):
        with contextlib.suppress(Exception):
            deployment.teardown()


def _on_signal(signum: int, frame: Any) -> None:
    global _signalled, _signal_number
    if _signalled:
        # Second signal while shutting down: stop waiting and die the default way.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _signalled = True
    _signal_number = signum
    logger.info("Received signal %d: tearing down deployments and exiting.", signum)
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _HANDLED_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            _saved_handlers[signum] = signal.signal(signum, _on_signal)


def _restore_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_saved_handlers.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
        del _saved_handlers[signum]
