"""Facts about local processes, from :mod:`psutil`: alive, start, environment, ancestry.

Used to tell whether the process that owns a deployment still runs (a pid alone can be
reused: the start time tells the same process from a newcomer with its pid), to find the
processes a deployment started by the variable they inherited, and to end them.

What works where (psutil comes with distributed, so it is always installed):

* Everywhere psutil runs (Linux, macOS, the BSDs): :func:`is_running` (zombies count as
  gone), :func:`start_ticks` and :func:`same_process`, :func:`ancestors`,
  :func:`children`, :func:`command_line`, :func:`running_processes`, :func:`user_pids`,
  and the POSIX signals of :func:`signal_all`, :func:`wait_gone` and :func:`terminate`.
* :func:`environ` reads another process's environment on Linux and the BSDs (any
  process of this user). macOS answers for this user's processes only where it lets
  one process read another's arguments: it refuses it for programs it protects (SIP,
  possibly the hardened runtime of notarized programs), and then the answer is ``{}``,
  so processes tagged by a variable are not found there. Only Linux is tested.
* :func:`start_ticks` counts clock ticks since boot on Linux, which no change of the wall
  clock can move and which is what earlier versions of daskdeploy recorded; elsewhere it
  counts hundredths of a second since the epoch, as the kernel noted them at the start.
  Either way it is an opaque number, compared only with itself on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import psutil

__all__ = [
    "ProcessFacts",
    "ancestors",
    "children",
    "command_line",
    "environ",
    "is_running",
    "running_processes",
    "same_process",
    "signal_all",
    "start_ticks",
    "terminate",
    "user_pids",
    "wait_gone",
]

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
_LINUX = sys.platform.startswith("linux")


def _process(pid: int) -> psutil.Process | None:
    """The :class:`psutil.Process` of ``pid``, or None when there is none."""
    if pid <= 0:
        return None
    try:
        return psutil.Process(pid)
    except (psutil.Error, OSError):
        return None


def start_ticks(pid: int) -> int | None:
    """A number that tells when ``pid`` started; ``None`` if unknown or gone.

    Two processes that had the same pid one after the other get different numbers; the
    same process gets the same number at every call, from every process.

    Parameters
    ----------
    pid : int
        The process.

    Returns
    -------
    int or None
        On Linux the clock ticks from boot to the start (immune to changes of the wall
        clock, which move psutil's ``create_time``); elsewhere hundredths of a second
        since the epoch.
    """
    if pid <= 0:
        return None
    try:
        if not _LINUX:
            return round(psutil.Process(pid).create_time() * 100)
        # psutil computes create_time as ticks / CLK_TCK + boot time, read from the kernel
        # at that moment (it moves with the wall clock): take the boot time out again.
        for _ in range(3):
            booted = psutil.boot_time()
            started = psutil.Process(pid).create_time()
            if psutil.boot_time() == booted:
                return round((started - booted) * os.sysconf("SC_CLK_TCK"))
    except (psutil.Error, OSError, ValueError):
        return None
    return None


def is_running(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (ended, waiting to be reaped).

    A process of another user that cannot be inspected counts as running.
    """
    process = _process(pid)
    if process is None:
        return False
    try:
        return process.status() not in _GONE
    except psutil.AccessDenied:
        return True
    except (psutil.Error, OSError):
        return False


def same_process(pid: int, ticks: int | None) -> bool:
    """True when ``pid`` runs and is the process that started at ``ticks`` (if known).

    ``ticks`` is what :func:`start_ticks` said about it earlier.
    """
    if pid <= 0 or not is_running(pid):
        return False
    return ticks is None or start_ticks(pid) in (None, ticks)


def ancestors() -> set[int]:
    """This process and all its ancestors: never signal any of them."""
    pids = {os.getpid(), os.getppid()}
    with contextlib.suppress(psutil.Error, OSError):
        pids.update(parent.pid for parent in psutil.Process().parents())
    return {pid for pid in pids if pid > 0}


def children(pid: int, recursive: bool = False) -> list[int]:
    """Pids of the running children of ``pid`` (all its descendants when ``recursive``).

    Zombies are left out; a gone ``pid`` has none. A process whose parent ended was
    adopted by init (or a subreaper) and is no longer anyone's descendant here.
    """
    process = _process(pid)
    if process is None:
        return []
    try:
        found = process.children(recursive=recursive)
    except (psutil.Error, OSError):
        return []
    return [child.pid for child in found if is_running(child.pid)]


def command_line(pid: int) -> str:
    """The arguments of ``pid`` joined by spaces; empty when unreadable or gone."""
    process = _process(pid)
    if process is None:
        return ""
    try:
        return " ".join(process.cmdline()).strip()
    except (psutil.Error, OSError):
        return ""


class ProcessFacts(NamedTuple):
    """What :func:`running_processes` tells of one process."""

    #: The process id.
    pid: int
    #: Its arguments joined by spaces (empty when unreadable).
    command_line: str
    #: Its environment, as :func:`environ` reads it (empty when not asked for).
    environ: dict[str, str]


def running_processes(environment: bool = False) -> Iterator[ProcessFacts]:
    """Every running process of the machine (zombies left out), whoever runs it.

    One pass over the process table: cheaper than asking :func:`command_line` and
    :func:`environ` pid by pid.

    Parameters
    ----------
    environment : bool
        Also read every process's environment (empty where unreadable).

    Yields
    ------
    ProcessFacts
        Pid, command line and (if asked for) environment of each process.
    """
    attrs = ["status", "cmdline", *(["environ"] if environment else [])]
    for process in psutil.process_iter(attrs):
        info = process.info
        if process.pid > 0 and info.get("status") not in _GONE:
            args = " ".join(info.get("cmdline") or ()).strip()
            yield ProcessFacts(process.pid, args, dict(info.get("environ") or {}))


def user_pids() -> Iterator[int]:
    """Pids of the processes that belong to this user (effective uid = our uid)."""
    uid = os.getuid()
    for process in psutil.process_iter(["uids"]):
        uids = process.info.get("uids")
        if uids is not None and uids.effective == uid:
            yield process.pid


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when unreadable or gone).

    On Linux this is the environment at ``exec``: later changes a process makes to its own
    environment are not visible, but its children inherit them. A process that wrote its
    title over its environment block (``setproctitle``, as some daemons do) shows an
    empty one, since psutil stops at the first empty entry; the Python and Dask processes
    a deployment tags do not do that. See the module's notes for the platforms where it
    is always empty.
    """
    process = _process(pid)
    if process is None:
        return {}
    try:
        return dict(process.environ())
    except (psutil.Error, OSError, AttributeError, NotImplementedError):
        return {}


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
