"""What the local test-infrastructure harnesses need from this machine (Linux).

Programs (found on ``PATH`` and in the sbin directories, where Debian puts the daemons),
free TCP ports, the tail of a log, and the harnesses' own processes: finding them by a
marker variable, an argument or ancestry, and ending them. Process facts come from
:mod:`daskdeploy.processes` (psutil).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import processes

__all__ = [
    "POLL",
    "die_with_parent",
    "find_processes",
    "free_ports",
    "kill_processes",
    "search_path",
    "tail",
    "unavailable_reason",
    "which",
]

#: Seconds between two looks while waiting for a process, a socket or a file.
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


def unavailable_reason(
    subject: str,
    not_linux: str,
    binaries: Iterable[str],
    install: str,
    more: Callable[[], list[str]] | None = None,
) -> str | None:
    """Say why a harness cannot run here: not Linux, not root, programs missing, ``more``.

    Parameters
    ----------
    subject : str
        What cannot be started, e.g. ``"A local SLURM cluster"``.
    not_linux : str
        The whole answer on a platform other than Linux.
    binaries : iterable of str
        Programs that must be on :func:`search_path`.
    install : str
        The command that installs them, e.g. ``"apt-get install slurm-wlm munge"``.
    more : callable, optional
        Further problems, asked for on Linux only.

    Returns
    -------
    str or None
        ``None`` when nothing is missing, else one sentence naming every problem.
    """
    if not sys.platform.startswith("linux"):
        return not_linux
    problems = []
    if os.geteuid() != 0:
        problems.append(f"it must run as root (this process runs as uid {os.geteuid()})")
    missing = [name for name in binaries if which(name) is None]
    if missing:
        problems.append(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f'(install with "{install}")'
        )
    if more is not None:
        problems += more()
    if not problems:
        return None
    return f"{subject} cannot be started here: " + "; ".join(problems) + "."


def free_ports(count: int) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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
    was killed with SIGKILL. Linux only (``prctl(PR_SET_PDEATHSIG)``); silently skipped
    elsewhere.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def find_processes(
    *,
    marker: tuple[str, str] | None = None,
    argument: str | None = None,
    members: Iterable[int] = (),
    trees: Iterable[int] = (),
) -> dict[int, str]:
    """Running processes of a harness: ``{pid: arguments joined by spaces}``.

    A process belongs to it when its environment holds the variable ``marker`` (name and
    value), its arguments contain ``argument``, it is one of ``members``, or it is one of
    ``trees`` or descends from one. Never this process or its ancestors; never zombies.
    Every process on the machine is looked at, whoever runs it (the harnesses run as root).
    """
    wanted = set(members)
    for root in trees:
        if processes.is_running(root):
            wanted.add(root)
            wanted.update(processes.children(root, recursive=True))
    skip = processes.ancestors()
    found = {}
    for facts in processes.running_processes(environment=marker is not None):
        if facts.pid in skip:
            continue
        if (
            facts.pid in wanted
            or (argument is not None and argument in facts.command_line)
            or (marker is not None and facts.environ.get(marker[0]) == marker[1])
        ):
            found[facts.pid] = facts.command_line
    return found


def kill_processes(find: Callable[[], Iterable[int]], grace: float, kill_wait: float = 3.0) -> None:
    """SIGTERM what ``find()`` returns, SIGKILL it after ``grace`` s; up to three rounds.

    With ``grace`` 0 there is no SIGTERM, only SIGKILL. Every round looks again, for
    processes started meanwhile; every wait is bounded (``kill_wait`` s after SIGKILL).
    """
    for _ in range(3):
        pids = list(find())
        if not pids:
            return
        if grace > 0:
            pids = processes.wait_gone(processes.signal_all(pids, signal.SIGTERM), grace, POLL)
        processes.wait_gone(processes.signal_all(pids, signal.SIGKILL), kill_wait, POLL)
