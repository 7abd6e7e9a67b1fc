"""Helpers shared by the benchmark scripts: load metering, machine facts, statistics.

The scripts in this directory run as plain scripts from any working directory and import
each other as top-level modules (``from common import LoadMeter``); ``run_all.py`` puts
this directory on ``sys.path`` first.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import importlib
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "BACKGROUND_WARN",
    "LoadMeter",
    "background_note",
    "busy_sum",
    "calibrate",
    "loadavg",
    "machine_info",
    "median",
    "ratio",
    "settle",
    "shippable",
    "usable_cpus",
]

BACKGROUND_WARN = 0.2
"""Average CPU cores used by other processes above which a report warns."""

OPTIONAL_VERSIONS = ("dask_jobqueue", "numpy", "psutil", "matplotlib", "mpi4py")
"""Packages whose version :func:`machine_info` records when they are installed."""


# ------------------------------------------------------------------------ statistics


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that are not ``None``; ``None`` when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when either is missing or ``b`` is zero."""
    return a / b if a is not None and b else None


# ---------------------------------------------------------------------- environment


def usable_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the OS has none."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # missing, or broken in a way that does not matter here
        return None


def machine_info(**extra: Any) -> dict[str, Any]:
    """CPU counts, memory, platform and library versions, for a benchmark's JSON.

    Parameters
    ----------
    **extra
        More entries to record (a SLURM version, say); they override computed ones.

    Returns
    -------
    dict
        ``cpu_count``, ``usable_cpus``, ``python``, ``implementation``, ``platform``,
        ``machine``, the versions of dask, distributed and daskdeploy, those of the
        optional packages that are installed, and ``memory_bytes`` with psutil.
    """
    import dask
    import distributed

    import daskdeploy

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "daskdeploy": daskdeploy.__version__,
    }
    for module in OPTIONAL_VERSIONS:
        version = _version(module)
        if version is not None:
            info[module] = version
    with contextlib.suppress(ImportError):
        import psutil

        info["memory_bytes"] = psutil.virtual_memory().total
    info.update(extra)
    return info


def settle(seconds: float = 0.2) -> None:
    """Collect garbage and let exiting processes go before the next timed run."""
    gc.collect()
    time.sleep(seconds)


# ---------------------------------------------------------------------- load meter


class LoadMeter:
    """Measure the CPU time that processes *other than the benchmark's own* use.

    Own means this process and all its descendants, plus, when ``marker`` is given as
    ``(NAME, VALUE)``, every process whose environment has ``NAME=VALUE`` (LocalSlurm
    marks its daemons, ``slurmstepd`` and the job tasks that way, and they are not our
    descendants). ``with meter.interval() as sample:`` fills
    ``sample["background_cores"]``: system-wide busy CPU seconds minus own ones, divided
    by the wall time. It stays ``None`` when psutil is missing.

    Parameters
    ----------
    marker
        Optional environment variable name and value that marks more own processes.
    """

    def __init__(self, marker: tuple[str, str] | None = None) -> None:
        try:
            import psutil
        except ImportError:
            self._psutil: Any = None
        else:
            self._psutil = psutil
            self._me = psutil.Process()
        self._marker = marker

    @property
    def available(self) -> bool:
        """Whether psutil is installed, so background load can be measured."""
        return self._psutil is not None

    def _system_busy(self) -> float:
        times = self._psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(getattr(times, f) for f in times._fields if f not in ("guest", "guest_nice"))
        return total - idle

    def _marked(self, known: dict[int, Any]) -> Iterator[Any]:
        name, value = self._marker or ("", "")
        for proc in self._psutil.process_iter():
            if proc.pid in known or proc.pid == self._me.pid:
                continue
            with contextlib.suppress(self._psutil.Error):
                if proc.environ().get(name) == value:
                    yield proc

    def _own(self) -> float:
        psutil = self._psutil
        t = os.times()  # this process plus every child that has exited and been reaped
        used = t.user + t.system + t.children_user + t.children_system
        procs = {p.pid: p for p in self._me.children(recursive=True)}
        if self._marker is not None:
            procs.update({p.pid: p for p in self._marked(procs)})
        for proc in procs.values():
            with contextlib.suppress(psutil.Error):
                ct = proc.cpu_times()
                # children_*: grandchildren that exited and were reaped by this one
                used += ct.user + ct.system + ct.children_user + ct.children_system
        return used

    @contextlib.contextmanager
    def interval(self) -> Iterator[dict[str, float | None]]:
        """Yield a dict that holds ``background_cores`` once the block has finished."""
        sample: dict[str, float | None] = {"background_cores": None}
        if self._psutil is None:
            yield sample
            return
        busy0, own0, t0 = self._system_busy(), self._own(), time.perf_counter()
        yield sample
        busy1, own1, t1 = self._system_busy(), self._own(), time.perf_counter()
        other = (busy1 - busy0) - (own1 - own0)
        sample["background_cores"] = max(0.0, other) / max(t1 - t0, 1e-9)


def background_note(cores: float | None, cpus: int | None) -> str:
    """One line about the median background load, with a warning when it is too high."""
    if cores is None:
        return "background load: not measured (install psutil)"
    line = f"background load from other processes: {cores:.2f} of {cpus} cores (median)"
    if cores > BACKGROUND_WARN:
        line += "  <- WARNING: machine busy, wall-clock numbers unreliable"
    return line


# ------------------------------------------------------------------------ workloads


def busy_sum(n: int) -> int:
    """Sum ``range(n)`` in a Python loop: CPU-bound and holding the GIL throughout.

    Parameters
    ----------
    n
        How many integers to add.

    Returns
    -------
    int
        ``0 + 1 + ... + (n - 1)``.
    """
    total = 0
    for i in range(n):
        total += i
    return total


def calibrate(task_seconds: float, probe: int = 500_000) -> int:
    """Return ``n`` such that ``busy_sum(n)`` takes about ``task_seconds`` here.

    Parameters
    ----------
    task_seconds
        Wanted duration of one task, in seconds.
    probe
        Loop length of the timing probe (best of three).

    Returns
    -------
    int
        The loop length, at least 1000, measured in this process.
    """
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        busy_sum(probe)
        best = min(best, time.perf_counter() - t0)
    return max(1_000, int(probe * task_seconds / best))


def shippable(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``function`` in a form worker processes can unpickle.

    Run as a script, a benchmark module is ``__main__`` and Dask ships its functions by
    value. Imported (by ``run_all.py`` or a test) it is a top-level module that worker
    processes cannot import, and distributed pickles nested functions by reference, so
    hand out a copy whose globals claim ``__main__``: that one goes by value. The copy
    sees builtins and the modules the function refers to (``np``, say; pickled by name),
    but no other global of its module, so keep shipped functions self-contained.
    """
    if function.__module__ == "__main__":
        return function
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for name in function.__code__.co_names:  # modules it uses (np, ...) go by name
        value = function.__globals__.get(name)
        if isinstance(value, types.ModuleType):
            namespace[name] = value
    clone = types.FunctionType(
        function.__code__,
        namespace,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    clone.__kwdefaults__ = function.__kwdefaults__
    clone.__qualname__ = function.__qualname__
    return clone
