"""Process helpers shared by the local test-infrastructure harnesses (Linux).

``is_running`` and ``ancestors`` are daskdeploy's own (:mod:`daskdeploy.processes`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..processes import ancestors, is_running, wait_gone

__all__ = [
    "POLL",
    "ancestors",
    "die_with_parent",
    "is_running",
    "proc_stat",
    "search_path",
    "serve_until_signal",
    "tail",
    "wait_not_running",
    "which",
]

POLL = 0.05
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_LOG_TAIL_LINES = 25


def search_path() -> str:
    """``PATH`` plus the sbin directories, where Debian puts the daemons."""
    parts = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    return os.pathsep.join(parts + [d for d in _SBIN if d not in parts])


def which(name: str) -> str | None:
    """Full path of program ``name`` on :func:`search_path`, or None."""
    return shutil.which(name, path=search_path())


def proc_stat(pid: int) -> tuple[str, int] | None:
    """Return ``(state, ppid)`` of ``pid`` from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_not_running(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is gone or a zombie; return those still running at timeout."""
    return wait_gone(pids, timeout, poll=POLL)


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty)"


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the thread that started us dies.

    Without it, daemons outlive a test run (or a ``python -m daskdeploy.testing...``) that
    was killed with SIGKILL. Linux only; silently skipped elsewhere.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def serve_until_signal(
    start: Callable[[], Any], announce: Callable[[Any], list[str]], stop: Callable[[Any], None]
) -> None:
    """Start something, print ``announce(it)``, wait for SIGINT/SIGTERM, stop it.

    The body of the harnesses' ``python -m`` entry points. A start failure
    (``RuntimeError``/``ValueError``) is printed and exits with status 1.
    """
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
        stop(running)
    print("stopped", file=sys.stderr, flush=True)
