"""Process helpers shared by the local test-infrastructure harnesses (stdlib only, Linux)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def is_running(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (dead, waiting to be reaped)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def ancestors() -> set[int]:
    """Return this process and all its ancestors: never kill those."""
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        stat = proc_stat(pid)
        if stat is None:
            break
        pid = stat[1]
    return pids


def wait_not_running(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is gone or a zombie; return those still running at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if is_running(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL)


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
