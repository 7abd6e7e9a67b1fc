"""Whether a number of local workers fits this machine, checked before anything starts.

The policy, for a user who typed ``--workers 100000`` by mistake as much as for one who
wants ``--workers 8`` on a 2-core laptop:

* Up to one worker per core is what dask does by default: accepted silently.
* More workers than cores (up to :data:`WORKERS_PER_CORE` per core) is accepted: tasks
  that wait on I/O or sleep use such workers well; the workers then share the cores,
  which ``--report`` shows.
* Beyond that, or when the workers' memory cannot fit (each worker process needs about
  :data:`PROCESS_MEMORY` just to run, and ``memory_per_worker`` times the workers must
  not exceed the machine's memory), the start is refused at once, naming the numbers,
  unless ``oversubscribe=true`` says it is meant.
* Limits of the operating system cannot be overridden: the threads the workers need
  against this user's process limit (``ulimit -u``; threads count), and the connections
  and pipes this process keeps per worker against its open-files limit (``ulimit -n``).

Everything here reads the machine (cores, memory, resource limits) in microseconds;
nothing starts.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from ..errors import OptionError
from ..options import ResolvedOptions

__all__ = ["WORKERS_PER_CORE", "check_fits", "sharing_note"]

#: Workers per core accepted without ``oversubscribe=true``.
WORKERS_PER_CORE = 8
#: Memory a worker process needs with nothing to do (measured: 60 MB resident, 42 MB
#: its own, with distributed 2025.x); a floor, not an estimate of a busy worker.
PROCESS_MEMORY = 64 * 2**20
#: Threads of a worker process besides its task threads (event loop, offload, profiler).
THREADS_BESIDES_TASKS = 3
#: Open files this process holds per worker (the worker's connections, the nanny's pipes).
FILES_PER_WORKER = 8


@dataclass(frozen=True)
class Machine:
    """What this machine offers: cores, memory and this process's limits."""

    cores: int
    total_memory: int
    available_memory: int
    max_user_threads: int | None
    max_open_files: int | None

    @classmethod
    def here(cls) -> Machine:
        """Read them now."""
        import psutil
        from dask.system import CPU_COUNT

        memory = psutil.virtual_memory()
        # root is not held to RLIMIT_NPROC.
        threads = None if os.geteuid() == 0 else _soft_limit(resource.RLIMIT_NPROC)
        return cls(
            CPU_COUNT, memory.total, memory.available, threads, _soft_limit(resource.RLIMIT_NOFILE)
        )


def _soft_limit(which: int) -> int | None:
    soft, _ = resource.getrlimit(which)
    return None if soft == resource.RLIM_INFINITY else soft


def _size(n: float) -> str:
    from dask.utils import format_bytes

    return format_bytes(int(n))


def check_fits(options: ResolvedOptions, workers: int, machine: Machine | None = None) -> None:
    """Refuse ``workers`` local workers of ``options`` when this machine cannot hold them.

    Raises
    ------
    OptionError
        Naming each number that does not fit (cores, memory, process or open-files
        limit) and how to fix it: fewer workers, threads, or ``oversubscribe=true`` for
        the limits that can be overridden.
    """
    machine = machine or Machine.here()
    processes = options["processes"]
    threads = options["threads_per_worker"]
    soft: list[str] = []  # oversubscribe=true overrides these
    hard: list[str] = []
    most = WORKERS_PER_CORE * machine.cores
    if workers > most:
        soft.append(
            f"it has {machine.cores} core(s), and at most {most} workers "
            f"({WORKERS_PER_CORE} per core) start without oversubscribe=true"
        )
    per_worker = options["memory_per_worker"]
    if per_worker and workers * per_worker > machine.total_memory:
        soft.append(
            f"memory_per_worker {_size(per_worker)} x {workers} = "
            f"{_size(workers * per_worker)}, more than the machine's "
            f"{_size(machine.total_memory)} of memory"
        )
    elif processes and workers * PROCESS_MEMORY > machine.available_memory:
        soft.append(
            f"{workers} worker processes need at least {_size(workers * PROCESS_MEMORY)} "
            f"(~{_size(PROCESS_MEMORY)} each), more than the {_size(machine.available_memory)} "
            f"of memory available"
        )
    need_threads = workers * (threads + (THREADS_BESIDES_TASKS if processes else 0))
    if machine.max_user_threads is not None and need_threads > machine.max_user_threads:
        hard.append(
            f"they need at least {need_threads} threads, over this user's limit of "
            f"{machine.max_user_threads} processes and threads (`ulimit -u`)"
        )
    need_files = workers * FILES_PER_WORKER if processes else 0
    if machine.max_open_files is not None and need_files > machine.max_open_files:
        hard.append(
            f"this process would hold about {need_files} open files for them, over its "
            f"limit of {machine.max_open_files} (`ulimit -n`)"
        )
    if options["oversubscribe"]:
        soft = []
    if soft or hard:
        raise OptionError(_refusal(workers, processes, machine, soft, hard))


def _refusal(
    workers: int, processes: bool, machine: Machine, soft: list[str], hard: list[str]
) -> str:
    kind = "worker processes" if processes else "thread workers"
    fixes = [
        f"ask for fewer workers (--workers {machine.cores} gives one per core)",
        "give fewer workers more threads (--threads-per-worker N"
        + (", or --option processes=false)" if processes else ")"),
    ]
    if soft and not hard:
        fixes.append("or, if you mean it, --option oversubscribe=true")
    return (
        f"{workers} local {kind} cannot fit this machine: {'; '.join(soft + hard)}. "
        f"Nothing was started. To fix: {'; '.join(fixes)}."
    )


def sharing_note(workers: int) -> str | None:
    """``"8 workers share 2 cores"`` when there are more workers than cores, else ``None``."""
    from dask.system import CPU_COUNT

    if workers <= CPU_COUNT:
        return None
    return f"{workers} workers share {CPU_COUNT} core(s)"
