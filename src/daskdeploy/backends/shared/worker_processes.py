"""How a nanny starts its worker process: forked from Python that has distributed loaded.

distributed's nanny starts its worker with multiprocessing's ``spawn`` by default: a fresh
interpreter that imports dask, distributed, numpy and tornado again, after the nanny's own
interpreter has just done the same. That second import is most of a worker's start-up CPU
(about 1 CPU-second of the 1.5 a nanny and its worker took here; measured with
``benchmarks/bench_slurm.py``), and on a cluster every worker repeats it against the shared
file system at once. So daskdeploy's workers are forked from a parent that has already
imported it all:

* **A nanny in a process of its own** (batch jobs, ``srun`` tasks, SSH hosts): the nanny
  forks its worker (:func:`nanny_arguments`: distributed's ``fork`` start method, set in
  the nanny by a ``--preload-nanny`` snippet). That process holds nothing but the nanny,
  so the fork copies only what the worker needs anyway, and a restarted worker is forked
  the same way. A forked child inherits the nanny's signal handlers, which point into the
  nanny's event loop: the worker would ignore ``SIGTERM`` (the nanny's memory limit and the
  batch system's ``SIGTERM`` rely on it). The snippet resets them in the child to what a
  fresh interpreter has. Settings that act only when a process starts (distributed's
  ``distributed.nanny.pre-spawn-environ``: ``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``,
  ...) are set before the nanny's Python starts (:func:`environment`), as distributed's
  documentation asks of ``fork``: numpy's BLAS reads its thread count when it loads.
* **Nannies in a process that runs other things too**: the user's own process (the
  ``local`` backend), or a rank of an in-place run that serves several workers (after
  ``MPI_Init``, where a fork is unsafe). Forking that process would copy the user's data,
  threads and client. One forkserver, loaded with distributed only, forks
  every worker of the process instead (:func:`shared_forkserver`).

Nothing here changes what the nanny gives: a dead worker is restarted, the memory limit is
enforced, the spill directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Iterator

__all__ = [
    "NANNY_PRELOAD",
    "environment",
    "environment_command",
    "nanny_arguments",
    "quoted_nanny_arguments",
    "shared_forkserver",
    "worker_command",
]

_START_METHOD_KEY = "distributed.worker.multiprocessing-method"

#: Python run in each nanny process at start (``dask worker --preload-nanny``), given as
#: text so that the hosts need no daskdeploy: fork the worker, and give the forked worker
#: the signal handling of a fresh interpreter (default ``SIGTERM``, ``KeyboardInterrupt``
#: on ``SIGINT``, no wake-up descriptor into the nanny's event loop).
NANNY_PRELOAD = (
    "import dask, os, signal; "
    f'dask.config.set({{"{_START_METHOD_KEY}": "fork"}}); '
    "os.register_at_fork(after_in_child=lambda: ("
    "signal.signal(signal.SIGTERM, signal.SIG_DFL), "
    "signal.signal(signal.SIGINT, signal.default_int_handler), "
    "signal.set_wakeup_fd(-1)))"
)


def worker_command(python: str, *, nanny: bool) -> list[str]:
    """The start of a ``dask worker`` command line that starts workers as described above.

    ``env`` with :func:`environment`, then ``python -m distributed.cli.dask_worker`` and
    ``--nanny`` with :func:`nanny_arguments` (or ``--no-nanny``); the caller appends the
    scheduler, the worker's options and ``worker_extra_args``.
    """
    command = [*environment_command(), python, "-m", "distributed.cli.dask_worker"]
    return command + (["--nanny", *nanny_arguments()] if nanny else ["--no-nanny"])


def nanny_arguments() -> list[str]:
    """``dask worker`` arguments that make the nanny fork its worker (argument list form)."""
    return ["--preload-nanny", NANNY_PRELOAD]


def quoted_nanny_arguments() -> list[str]:
    """:func:`nanny_arguments`, each quoted for a shell command line (job scripts)."""
    return [shlex.quote(argument) for argument in nanny_arguments()]


def environment() -> dict[str, str]:
    """Variables to set before the nanny's Python starts, from dask's configuration.

    distributed's ``distributed.nanny.pre-spawn-environ`` (one BLAS/OpenMP thread per
    worker thread, glibc's memory trimming) set in the nanny's process would come too late
    for a forked worker: the libraries read them when they load.
    """
    import dask.config

    variables = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {str(name): str(value) for name, value in variables.items() if value is not None}


def environment_command() -> list[str]:
    """``env NAME=VALUE ...``: the prefix of a command that starts a nanny."""
    return ["env", *(f"{name}={value}" for name, value in environment().items())]


@contextlib.contextmanager
def shared_forkserver() -> Iterator[None]:
    """While open, nannies of this process start workers from one preloaded forkserver.

    The forkserver starts at once, importing distributed while the scheduler starts;
    every worker (and every restart) is then a fork of it. distributed
    would preload it with every optional package it knows (pandas, ...), imported in this
    process first; only these are loaded here, and the workers import what else their
    tasks use. Deployments
    may overlap: the start method is set when the first opens, and restored, with the
    forkserver stopped, when the last closes, so nothing is left running.
    """
    import multiprocessing

    import dask.config

    global _open_local_deployments, _start_method_before, _socket_directory
    if _open_local_deployments == 0:
        try:
            _socket_directory = _own_multiprocessing_directory()
        except _NoRoomForSocket:  # workers are spawned, as plain Dask does
            yield
            return
        multiprocessing.get_context("forkserver").set_forkserver_preload(_FORKSERVER_PRELOAD)
        _mark_forkserver_preload_set()
        _start_method_before = dask.config.get(_START_METHOD_KEY, default="spawn")
        dask.config.set({_START_METHOD_KEY: "forkserver"})
        # The forkserver imports distributed while this process starts the scheduler.
        threading.Thread(
            target=_start_forkserver, name="daskdeploy-forkserver-start", daemon=True
        ).start()
    _open_local_deployments += 1
    try:
        yield
    finally:
        _open_local_deployments -= 1
        if _open_local_deployments == 0:
            dask.config.set({_START_METHOD_KEY: _start_method_before})
            _stop_forkserver()
            _remove_multiprocessing_directory(_socket_directory)
            _socket_directory = None


#: What the forkserver imports once for all its workers. Not dask.array (0.2 CPU-s per
#: worker at its first array task): importing it delays every deployment's first
#: workers, measured 0.93 s against 0.71 s to start two.
_FORKSERVER_PRELOAD = ["distributed"]

_open_local_deployments = 0
_start_method_before = "spawn"
_socket_directory: str | None = None


class _NoRoomForSocket(Exception):
    """No directory short enough for the forkserver's socket (108 bytes at most)."""


#: Our directory's name: ``daskdeploy-fs-pid<pid>-`` and 8 characters (at most).
_OUR_DIRECTORY_LENGTH = len("/daskdeploy-fs-pid4194304-12345678")
#: Longest parent of our directory: the socket's name (``/listener-`` and 8 characters)
#: must fit in AF_UNIX's 108 bytes.
_SOCKET_DIRECTORY_MAX = 107 - len("/listener-12345678") - _OUR_DIRECTORY_LENGTH


def _own_multiprocessing_directory() -> str | None:
    """Give multiprocessing a directory of ours for the forkserver's socket.

    multiprocessing would make a ``pymp-*`` directory for it, removed only when this
    process exits: in a notebook or a long script, after the deployment closed (if this
    process is killed, the reaper removes ours: ``scratch.forkserver_dirs``). It is made
    in the temporary directory, or in ``/tmp`` when that path is too long for a socket
    (batch systems' ``$TMPDIR`` can be). None when multiprocessing already has one
    (something else in this process made it; it is kept); :class:`_NoRoomForSocket` when
    no short enough place exists.
    """
    import tempfile
    from multiprocessing import process

    from ...scratch import forkserver_dir_prefix

    config = getattr(process.current_process(), "_config", None)
    if config is not None and config.get("tempdir") is not None:
        if len(config["tempdir"]) > _SOCKET_DIRECTORY_MAX + _OUR_DIRECTORY_LENGTH:
            raise _NoRoomForSocket(config["tempdir"])
        return None
    for parent in (tempfile.gettempdir(), "/tmp"):
        if len(parent) <= _SOCKET_DIRECTORY_MAX and os.access(parent, os.W_OK):
            directory = tempfile.mkdtemp(prefix=forkserver_dir_prefix(os.getpid()), dir=parent)
            if config is not None:
                config["tempdir"] = directory
            return directory
    raise _NoRoomForSocket(tempfile.gettempdir())


def _remove_multiprocessing_directory(directory: str | None) -> None:
    import shutil
    from multiprocessing import process

    if directory is None:
        return
    shutil.rmtree(directory, ignore_errors=True)
    config = getattr(process.current_process(), "_config", None)
    if config is not None and config.get("tempdir") == directory:
        config["tempdir"] = None


def _start_forkserver() -> None:
    """Start this process's forkserver now (a worker's start would, later); errors are
    left for that start to report."""
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):
        forkserver.ensure_running()


def _mark_forkserver_preload_set() -> None:
    """Keep distributed from replacing the preload list (it does so once per process)."""
    import distributed.utils

    if hasattr(distributed.utils, "_forkserver_preload_set"):
        distributed.utils._forkserver_preload_set = True


def _stop_forkserver() -> None:
    """Stop this process's forkserver, if one runs, so that nothing is left after close."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop()
