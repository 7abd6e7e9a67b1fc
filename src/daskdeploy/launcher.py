"""Running a launcher (``mpiexec -n N ...``) in the foreground, as if the user had typed it.

``daskdeploy run --backend mpi`` outside an MPI launcher starts ``mpiexec`` with the same
``daskdeploy run`` on every rank and waits for it. Signals sent to daskdeploy (Ctrl-C,
SIGTERM from a job system, SIGHUP) are passed on to the launcher, which passes them to
the ranks; if the launcher is still there ``_KILL_AFTER`` seconds after the first one, it
is killed, which makes MPI launchers kill their ranks. The exit status is the launcher's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from .backends.base import LaunchCommand

__all__ = ["run_launcher"]

_FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_KILL_AFTER = 45.0  # seconds after a forwarded signal before the launcher is killed


def run_launcher(command: LaunchCommand) -> int:
    """Run ``command`` in the foreground and return its exit status (128 + signal if killed).

    Raises
    ------
    OSError
        The launcher could not be started at all.
    """
    environment = {**os.environ, **command.environment}
    process = subprocess.Popen(command.args, env=environment)
    first_signal: list[float] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not first_signal:
            first_signal.append(time.monotonic())
        if process.poll() is None:
            process.send_signal(signum)

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if on_main_thread:
        previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        while True:
            try:
                status = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if first_signal and time.monotonic() - first_signal[0] > _KILL_AFTER:
                    print(
                        f"daskdeploy: {os.path.basename(command.args[0])} did not end within "
                        f"{_KILL_AFTER:g} s of the signal; killing it.",
                        file=sys.stderr,
                        flush=True,
                    )
                    process.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status
