"""Facts about local processes, read from ``/proc``: alive, start time, environment, ancestry.

Used to tell whether the process that owns a deployment still runs (a pid alone can be
reused: the start time tells the same process from a newcomer with its pid) and to find
the processes a deployment started by the variable they inherited. Linux only; elsewhere
the answers fall back to what :func:`os.kill` can tell, and no environment is readable.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Iterator

__all__ = [
    "ancestors",
    "environ",
    "is_running",
    "same_process",
    "signal_all",
    "start_ticks",
    "terminate",
    "user_pids",
    "wait_gone",
]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is the first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
        return data[data.rindex(b")") + 2 :].decode().split()
    except (OSError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; ``None`` if unknown or gone."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def is_running(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (ended, waiting to be reaped)."""
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[0] not in ("Z", "X")
    if os.path.isdir("/proc"):
        return False
    try:  # no /proc: all that can be known is whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_process(pid: int, ticks: int | None) -> bool:
    """True when ``pid`` runs and is the process that started at ``ticks`` (if known)."""
    if pid <= 0 or not is_running(pid):
        return False
    return ticks is None or start_ticks(pid) in (None, ticks)


def ancestors() -> set[int]:
    """This process and all its ancestors: never signal any of them."""
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        fields = _stat_fields(pid)
        if fields is None:
            if pid == os.getpid():
                pids.add(os.getppid())
            break
        pid = int(fields[1])
    return pids


def user_pids() -> Iterator[int]:
    """Pids of the processes that belong to this user (uid), from ``/proc``."""
    uid = os.getuid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
        except OSError:
            continue
        yield int(entry)


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when unreadable or gone).

    ``/proc/<pid>/environ`` shows the environment at ``exec``; later changes a process
    makes to its own environment are not visible there, but its children inherit them.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:
        return {}
    variables = {}
    for item in data.split(b"\0"):
        name, separator, value = item.partition(b"=")
        if separator:
            variables[name.decode(errors="replace")] = value.decode(errors="replace")
    return variables


def signal_all(pids: Iterable[int], signum: int) -> list[int]:
    """Send ``signum`` to every pid; return those it reached (gone ones are skipped)."""
    reached = []
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue
        reached.append(pid)
    return reached


def wait_gone(pids: Iterable[int], timeout: float, poll: float = 0.05) -> list[int]:
    """Wait until every pid is gone or a zombie; return those still running at ``timeout``."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        pending = [pid for pid in pending if is_running(pid)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(poll)


def terminate(pids: Iterable[int], grace: float) -> tuple[list[int], list[int]]:
    """SIGTERM ``pids``, SIGKILL those still running after ``grace`` seconds.

    Returns
    -------
    tuple of lists
        The pids that ended after SIGTERM and those that needed SIGKILL. A pid still
        running 2 s after SIGKILL (uninterruptible sleep) is in neither.
    """
    reached = signal_all(pids, signal.SIGTERM)
    stubborn = wait_gone(reached, grace)
    killed = signal_all(stubborn, signal.SIGKILL)
    left = set(wait_gone(killed, 2.0))
    return [p for p in reached if p not in stubborn], [p for p in killed if p not in left]
