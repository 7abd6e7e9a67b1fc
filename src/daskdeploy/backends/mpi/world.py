"""Joining the MPI world, and talking inside it without ever blocking forever.

The ranks of an MPI run use MPI itself only to agree on the Dask scheduler's address
and, at the end, on the exit status; Dask's own traffic goes over TCP. Every exchange
here is non-blocking and polled against a deadline: a rank that crashed or never called
``deploy()`` turns into a clear error after ``timeout`` seconds, not a hang in a
collective call.

:func:`join_world` imports mpi4py (the ``mpi`` extra) only when the MPI backend starts.
Under Open MPI's ``mpirun`` it first points mpi4py at Open MPI's library (the mpi4py
wheel supports both MPICH and Open MPI, but prefers the MPICH library of the ``mpich``
wheel, which aborts under ``mpirun``), and afterwards it refuses a world of 1 that the
launcher meant to be larger.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailableError, DeploymentError
from .launchers import MPICH, OPEN_MPI, Launch, find_mpiexec, launch_from_environ, srun_tasks

__all__ = ["World", "join_world"]

logger = logging.getLogger(__name__)

#: Message tags of daskdeploy's exchanges (arbitrary, away from small tags users pick).
TAG_HELLO = 7301  # every rank -> scheduler rank: {"rank", "host"}
TAG_ADDRESS = 7302  # scheduler rank -> every rank: {"address", ...} or {"error"}
TAG_FAILED = 7303  # a worker rank -> the client rank: {"rank", "host", "error"}
TAG_STATUS = 7304  # the client rank -> every rank: exit status (int)

_OPEN_MPI_LIBRARY = "libmpi.so.40"


class World:
    """``MPI.COMM_WORLD`` with deadline-bounded, non-blocking messages.

    Parameters
    ----------
    comm
        The communicator (``mpi4py.MPI.COMM_WORLD``).
    launch
        What the launcher's environment said, for messages.
    """

    def __init__(self, comm: Any, launch: Launch | None) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.size: int = comm.Get_size()
        self.rank: int = comm.Get_rank()
        self.launch = launch
        self._sends: list[Any] = []
        self._receives: dict[tuple[int, int], Any] = {}

    @property
    def library(self) -> str:
        """Name and version of the MPI library, e.g. ``"MPICH Version: 5.0.2"``."""
        text = self._mpi.Get_library_version().replace("\x00", "").strip()
        first_line = text.splitlines()[0] if text else "an unknown MPI library"
        return " ".join(first_line.split(",")[0].split())

    @property
    def family(self) -> str:
        """:data:`~daskdeploy.backends.mpi.launchers.MPICH` or
        :data:`~daskdeploy.backends.mpi.launchers.OPEN_MPI`.
        """
        return OPEN_MPI if "open mpi" in self.library.lower() else MPICH

    # ------------------------------------------------------------------ messages

    def send(self, dest: int, tag: int, payload: Any) -> None:
        """Send ``payload`` to rank ``dest`` without waiting for it to be received."""
        self._sends.append(self.comm.isend(payload, dest=dest, tag=tag))

    def send_to_all(self, tag: int, payload: Any, *, except_ranks: tuple[int, ...] = ()) -> None:
        """Send ``payload`` to every other rank (and none in ``except_ranks``)."""
        for dest in range(self.size):
            if dest != self.rank and dest not in except_ranks:
                self.send(dest, tag, payload)

    def poll(self, tag: int, source: int | None = None) -> Any | None:
        """Return a message with ``tag`` if one has arrived, else ``None``; never waits."""
        key = (-1 if source is None else source, tag)
        request = self._receives.get(key)
        if request is None:
            origin = self._mpi.ANY_SOURCE if source is None else source
            request = self._receives[key] = self.comm.irecv(source=origin, tag=tag)
        arrived, payload = request.test()
        if not arrived:
            return None
        del self._receives[key]
        return payload

    def receive(
        self,
        tag: int,
        timeout: float,
        *,
        source: int | None = None,
        waiting_for: str = "a message",
        still_possible: Callable[[], str | None] | None = None,
        poll_interval: float = 0.01,
    ) -> Any:
        """Wait at most ``timeout`` seconds for a message with ``tag``.

        Raises
        ------
        DeploymentError
            On time-out (naming ``waiting_for``), or as soon as ``still_possible`` returns
            a reason why the message cannot come any more.
        """
        deadline = time.monotonic() + timeout
        while True:
            payload = self.poll(tag, source)
            if payload is not None:
                return payload
            reason = still_possible() if still_possible else None
            if reason:
                raise DeploymentError(f"Gave up waiting for {waiting_for}: {reason}")
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"Rank {self.rank} of {self.size} waited {timeout:g} s for {waiting_for} "
                    f"in vain. Another rank may have failed before calling deploy() (see its "
                    f"output above), or may run different code; every rank must call deploy()."
                )
            time.sleep(poll_interval)

    def flush(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until every message sent was delivered."""
        deadline = time.monotonic() + timeout
        while self._sends:
            self._sends = [request for request in self._sends if not request.test()[0]]
            if not self._sends or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return not self._sends

    def barrier(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for every rank to reach this point."""
        request = self.comm.Ibarrier()
        deadline = time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Cancel the receives still posted, so that MPI can finalize."""
        for request in self._receives.values():
            try:
                request.Cancel()
                request.Free()
            except Exception as exc:  # an already completed request cannot be cancelled
                logger.debug("Cancelling a receive failed: %s", exc)
        self._receives.clear()

    def abort(self, status: int) -> None:
        """End every rank of the world now (``MPI_Abort``); used only when ranks are stuck."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(status)


def _open_mpi_library() -> str | None:
    """Path or name of Open MPI's ``libmpi.so.40`` when it can be loaded, else ``None``."""
    candidates = [Path(prefix) / "lib" / _OPEN_MPI_LIBRARY for prefix in (sys.prefix,)]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    try:
        import ctypes

        ctypes.CDLL(_OPEN_MPI_LIBRARY)
    except OSError:
        return None
    return _OPEN_MPI_LIBRARY


def _choose_library(launch: Launch | None) -> None:
    """Under Open MPI's launcher, make the mpi4py wheel load Open MPI's library."""
    if launch is None or launch.family != OPEN_MPI:
        return
    if "MPI4PY_LIBMPI" in os.environ or "mpi4py.MPI" in sys.modules:
        return
    library = _open_mpi_library()
    if library is None:
        raise BackendUnavailableError(
            f"This process was started by {launch.launcher}, but no Open MPI library "
            f"({_OPEN_MPI_LIBRARY}) can be loaded, so mpi4py would load MPICH's and abort. "
            f"Launch with MPICH's mpiexec ({find_mpiexec() or 'pip install mpich'}), or "
            f"install Open MPI's library (Debian: apt-get install openmpi-bin)."
        )
    os.environ["MPI4PY_LIBMPI"] = library


def join_world(
    launch: Launch | None = None, timeout: float = 60.0, leftovers: tuple[Path, ...] = ()
) -> World:
    """Import mpi4py, join ``COMM_WORLD`` and check it is the world the launcher started.

    Parameters
    ----------
    launch
        What the environment says (default: read it now).
    timeout
        Seconds MPI's start-up may wait for the other ranks. ``MPI_Init`` waits for every
        rank inside C code, where Python can neither time out nor handle a signal; a
        rank that never calls ``deploy()`` would hang the others forever. A watchdog
        process explains that and ends this rank after ``timeout``; the launcher then
        ends the rest.
    leftovers
        Directories the watchdog removes when it has to end this rank.

    Raises
    ------
    BackendUnavailableError
        mpi4py is missing, or the launcher and mpi4py's MPI library do not belong together
        (the world has 1 rank where the launcher started several); the message says which
        launcher to use instead.
    """
    launch = launch if launch is not None else launch_from_environ()
    _choose_library(launch)
    watchdog = None if "mpi4py.MPI" in sys.modules else _start_watchdog(launch, timeout, leftovers)
    try:
        with warnings.catch_warnings():
            # mpi4py's own hint about a mismatched launcher; the check below explains more.
            warnings.filterwarnings("ignore", "suspicious MPI execution environment")
            from mpi4py import MPI
    except BaseException as exc:
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        if isinstance(exc, ImportError):
            raise BackendUnavailableError(
                f"mpi4py cannot be imported ({exc}). Install the MPI extra: pip install "
                f"'daskdeploy[mpi]' (mpi4py and MPICH from PyPI, no compiler needed)."
            ) from exc
        raise
    if watchdog is not None:
        _watchdog_joined(watchdog)
    world = World(MPI.COMM_WORLD, launch)
    expected = launch.size if launch is not None else srun_tasks()
    if world.size == 1 and expected and expected > 1:
        if launch is not None and launch.rank != 0:
            # The launcher's rank 0 explains, once; its status is the run's (MPICH's mpiexec
            # ORs the statuses of all ranks, so these add nothing).
            raise SystemExit(0)
        raise BackendUnavailableError(_mismatch_message(world, launch, expected))
    return world


_WATCHDOG = """\
import os, select, shutil, sys, time
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
joined = False
end = time.monotonic() + seconds
while os.getppid() == parent and (joined or time.monotonic() < end):
    ready = select.select([0], [], [], 0.5)[0]
    if ready:
        if not os.read(0, 64):  # the rank closed the pipe: it ended
            break
        joined = True
for path in sys.argv[4:]:
    shutil.rmtree(path, ignore_errors=True)
if not joined and os.getppid() == parent:
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(parent, 9)
"""


def _start_watchdog(
    launch: Launch | None, timeout: float, leftovers: tuple[Path, ...]
) -> subprocess.Popen[bytes] | None:
    """A process that guards this rank's start-up and cleans up after its end.

    Until :func:`_watchdog_joined` tells it that ``MPI_Init`` returned, it kills this
    rank if the start-up outlasts ``timeout`` seconds, saying why. Afterwards it only
    waits: whenever this rank ends -- normally, or killed by the launcher or by another
    rank's ``MPI_Abort``, which allow no clean-up -- it removes ``leftovers`` (the rank's
    scratch directory).
    """
    rank = launch.rank if launch is not None else "?"
    message = (
        f"daskdeploy: MPI rank {rank}: MPI start-up waited {timeout:g} s for the other ranks "
        f"and is giving up. Every rank must call deploy() (or otherwise start MPI); a rank "
        f"that exits or runs other code first keeps the rest waiting inside MPI_Init. "
        f"Raise the timeout option if the ranks start slowly."
    )
    try:
        return subprocess.Popen(
            [
                *(sys.executable, "-S", "-I", "-c", _WATCHDOG),
                *(str(os.getpid()), str(timeout), message, *map(str, leftovers)),
            ],
            stdin=subprocess.PIPE,
            # Out of the launcher's reach: when it kills this rank's process group, the
            # watchdog notices and still removes the rank's directory.
            start_new_session=True,
        )
    except OSError as exc:  # no watchdog is better than no deployment
        logger.warning("Could not start the MPI start-up watchdog: %s", exc)
        return None


def _watchdog_joined(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog that MPI started; it now only cleans up after this rank."""
    try:
        assert watchdog.stdin is not None
        watchdog.stdin.write(b"joined")
        watchdog.stdin.flush()
    except OSError:  # it has gone already; nothing to guard
        pass
    # The pipe stays open (unreferenced by the Popen's finaliser) until this process
    # ends, which is what the watchdog waits for.
    _kept_open.append(watchdog)


_kept_open: list[subprocess.Popen[bytes]] = []


def _mismatch_message(world: World, launch: Launch | None, expected: int) -> str:
    mpiexec = find_mpiexec()
    if launch is None:
        return (
            f"srun started {expected} tasks, but without MPI: each task joined its own MPI "
            f"world of 1. Start them with `srun --mpi=pmi2 ...` (MPICH, as installed by "
            f"pip install mpich; `srun --mpi=list` shows what your SLURM offers), or use "
            f"deploy('allocation'), which needs no MPI."
        )
    if world.family == MPICH:
        matching = mpiexec or "pip install mpich"
    else:
        matching = "Open MPI's mpirun (Debian: /usr/bin/mpirun.openmpi)"
    override = os.environ.get("MPI4PY_LIBMPI")
    return (
        f"{launch.launcher} started {expected} ranks, but mpi4py joined an MPI world of 1 "
        f"with {world.library}"
        + (f" (chosen by MPI4PY_LIBMPI={override})" if override else "")
        + f". The launcher is {launch.family or 'another MPI'} and the library is "
        f"{world.family}: mixed MPI implementations make every rank start alone. Launch "
        f"with the launcher of {world.family} ({matching}) -- `daskdeploy run --backend "
        f"mpi -n WORKERS script.py` picks the one installed with this Python -- or make "
        f"mpi4py load the launcher's MPI (MPI4PY_LIBMPI)."
    )
