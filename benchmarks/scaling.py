"""Strong scaling on this machine: daskdeploy ``local`` against Dask's schedulers and a Pool.

Two fixed workloads, each run with k = 1 .. N workers (N = usable cores unless
``--max-workers`` says otherwise) by four methods:

* ``daskdeploy``: ``daskdeploy.deploy("local", workers=k, threads_per_worker=1,
  dashboard=False, quiet=True)``, the work submitted through the returned client;
* ``threads``: Dask's threaded scheduler with k threads;
* ``processes``: Dask's multiprocessing scheduler on a ``ProcessPoolExecutor`` of k
  spawned processes;
* ``pool``: ``multiprocessing.get_context("spawn").Pool(k)`` doing the same work directly,
  no Dask at all: the reference.

The workloads:

* ``gil``: ``tasks`` calls of :func:`common.busy_sum` (a pure-Python loop that holds the GIL
  throughout) built with ``dask.delayed``; one call takes about 0.25 s here.
* ``pi``: Monte Carlo pi exactly as ``examples/pi.py`` computes it with ``dask.array``
  (its ``estimate_pi`` is loaded from the file: one task per chunk, returning a count);
  the Pool calls the example's own chunk function, ``count_inside``, for the same chunks,
  so every method does the same work and must print the same estimate. A chunk is
  18 million points, a task of about 0.1 s, the size Dask's best practices advise
  (``Sizes.chunk_seconds`` records what one took here).

Each timed run gets a freshly started cluster, executor or pool that has already run an
untimed warm-up of both workloads at a tenth of their size; only the compute is timed.
Every repeat visits every k and, at each k, every method, k and methods in rotating order
and the two workloads alternating, so slow drift of the machine hits all of them alike;
medians over repeats are reported.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import importlib.util
import multiprocessing
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from common import busy_sum, calibrate, median, ratio, settle, shippable, usable_cpus

__all__ = ["METHODS", "WORKLOADS", "Sizes", "pi_count", "run"]

METHODS = ("daskdeploy", "threads", "processes", "pool")
WORKLOADS = ("gil", "pi")
BASELINE = "pool"
"""Method whose 1-worker time is the common yardstick of ``speedup_vs_pool1``."""

GIL_TARGET = 1.85
"""Minimum speed-up of daskdeploy with 2 workers over 1 worker on the GIL-bound work."""
PI_TARGET = 1.1
"""Maximum time ratio daskdeploy / Pool on pi with k = N workers, at ~0.1 s tasks."""
PI_CHUNK = 18_000_000
"""Points per pi task: about 0.1 s of NumPy work, the task size Dask advises."""

EXAMPLE_PI = Path(__file__).resolve().parent.parent / "examples" / "pi.py"
TIMEOUT = 300
SLOW_SECONDS = 30.0
"""A (workload, method, k) whose timed run takes longer is not repeated, so that one
pathological case cannot stretch the whole run."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big the two workloads are (fixed for every method and every k)."""

    tasks: int
    """Number of ``busy_sum`` calls of the GIL-bound workload."""
    n: int
    """Loop length of each ``busy_sum`` call."""
    chunks: int
    """Number of pi chunks (tasks)."""
    chunk: int
    """Points per pi chunk."""
    seed: int = 0
    chunk_seconds: float = 0.0
    """Seconds one pi chunk took in this process, measured before the sweep."""

    @property
    def samples(self) -> int:
        """Total number of pi points."""
        return self.chunks * self.chunk

    def warmup(self) -> Sizes:
        """The same task counts at a tenth of the work: starts every process, ships code."""
        return dataclasses.replace(
            self, n=max(1_000, self.n // 10), chunk=max(1_000, self.chunk // 10)
        )


# ----------------------------------------------------------------------- workloads


def pi_count(seed: int, index: int, size: int) -> int:
    """Count the points of pi chunk ``index`` inside the unit circle: examples/pi.py's task.

    Calls the example's own ``count_inside``, the whole work of one of its tasks, so the
    Pool and Dask do the same work and the comparison measures only how it is run.

    Parameters
    ----------
    seed
        Root seed; chunk ``index`` draws from ``SeedSequence(seed, spawn_key=(index,))``.
    index
        Position of the chunk.
    size
        Points in the chunk.

    Returns
    -------
    int
        How many of the ``size`` points satisfy ``x**2 + y**2 <= 1``.
    """
    return _example_pi().count_inside(seed, index, size)


@functools.lru_cache(maxsize=1)
def _example_pi() -> types.ModuleType:
    """examples/pi.py loaded by path, outside ``sys.modules``.

    Outside ``sys.modules`` its functions cannot be pickled by reference, so distributed
    ships them to workers by value, as it would for a script run as ``__main__``.
    """
    spec = importlib.util.spec_from_file_location("_daskdeploy_example_pi", EXAMPLE_PI)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {EXAMPLE_PI}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time_pi_chunk(chunk: int) -> float:
    """Seconds one pi chunk of ``chunk`` points takes in this process (best of three)."""
    best = float("inf")
    for index in range(3):
        t0 = time.perf_counter()
        pi_count(0, index, chunk)
        best = min(best, time.perf_counter() - t0)
    return best


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def choose_sizes(max_workers: int, smoke: bool) -> Sizes:
    """Calibrate both workloads here so that one worker needs a few seconds for each.

    Parameters
    ----------
    max_workers
        Largest k of the sweep: task counts are multiples of it, at least 4 per worker.
    smoke
        Tiny sizes (a smoke run, not a measurement).

    Returns
    -------
    Sizes
        The workload sizes used by every method.
    """
    task_seconds, pi_seconds, chunk = (0.02, 0.05, 200_000) if smoke else (0.25, 3.0, PI_CHUNK)
    tasks = _round_up(max(16, 4 * max_workers), max_workers)
    chunk_seconds = _time_pi_chunk(chunk)
    chunks = max(4 * max_workers, round(pi_seconds / chunk_seconds))
    return Sizes(
        tasks=tasks,
        n=calibrate(task_seconds),
        chunks=_round_up(chunks, max_workers),
        chunk=chunk,
        chunk_seconds=chunk_seconds,
    )


def _load_example_pi() -> Callable[[int, int, int], float]:
    """``estimate_pi`` of examples/pi.py."""
    return _example_pi().estimate_pi


# -------------------------------------------------------------------------- methods


class Runner(Protocol):
    """Runs the two workloads on k workers of one method; returns their results."""

    def gil(self, sizes: Sizes) -> int:
        """Run the GIL-bound tasks; return the sum of their results."""
        ...

    def pi(self, sizes: Sizes) -> float:
        """Estimate pi; return the estimate."""
        ...


@dataclasses.dataclass
class DaskRunner:
    """Runs the workloads through Dask with ``config`` (scheduler, num_workers, pool) set."""

    config: dict[str, Any]
    estimate_pi: Callable[[int, int, int], float]

    def gil(self, sizes: Sizes) -> int:
        import dask

        task = shippable(busy_sum)
        with dask.config.set(self.config):
            parts = [dask.delayed(task, pure=False)(sizes.n) for _ in range(sizes.tasks)]
            return sum(dask.compute(*parts))

    def pi(self, sizes: Sizes) -> float:
        import dask

        with dask.config.set(self.config):
            return self.estimate_pi(sizes.samples, sizes.chunk, sizes.seed)


@dataclasses.dataclass
class PoolRunner:
    """Runs the workloads on a ``multiprocessing.Pool``, one task per call (chunksize 1)."""

    pool: Any

    def gil(self, sizes: Sizes) -> int:
        return sum(self.pool.map(busy_sum, [sizes.n] * sizes.tasks, chunksize=1))

    def pi(self, sizes: Sizes) -> float:
        args = [(sizes.seed, index, sizes.chunk) for index in range(sizes.chunks)]
        inside = sum(self.pool.starmap(pi_count, args, chunksize=1))
        return 4 * inside / sizes.samples


@contextlib.contextmanager
def _daskdeploy(k: int, estimate_pi: Callable[..., float]) -> Iterator[Runner]:
    import daskdeploy

    with daskdeploy.deploy(
        "local", workers=k, threads_per_worker=1, dashboard=False, quiet=True, timeout=TIMEOUT
    ) as client:
        yield DaskRunner({"scheduler": client}, estimate_pi)


@contextlib.contextmanager
def _threads(k: int, estimate_pi: Callable[..., float]) -> Iterator[Runner]:
    yield DaskRunner({"scheduler": "threads", "num_workers": k}, estimate_pi)


@contextlib.contextmanager
def _processes(k: int, estimate_pi: Callable[..., float]) -> Iterator[Runner]:
    from dask.multiprocessing import initialize_worker_process

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        k, mp_context=context, initializer=initialize_worker_process
    ) as executor:
        yield DaskRunner({"scheduler": "processes", "pool": executor}, estimate_pi)


@contextlib.contextmanager
def _pool(k: int, estimate_pi: Callable[..., float]) -> Iterator[Runner]:
    pool = multiprocessing.get_context("spawn").Pool(k)
    try:
        yield PoolRunner(pool)
    finally:
        pool.terminate()
        pool.join()


OPENERS: dict[str, Callable[[int, Callable[..., float]], contextlib.AbstractContextManager[Runner]]]
OPENERS = {"daskdeploy": _daskdeploy, "threads": _threads, "processes": _processes, "pool": _pool}


# ------------------------------------------------------------------------ measuring


def _rotated(items: Sequence[str], shift: int) -> list[str]:
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def _time_session(
    runner: Runner, sizes: Sizes, workloads: Sequence[str], meter: Any
) -> dict[str, dict[str, Any]]:
    """Warm up ``runner`` on ``workloads`` (untimed), then time each once, in that order."""
    calls = {"gil": runner.gil, "pi": runner.pi}
    for workload in workloads:
        calls[workload](sizes.warmup())
    timed: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        gc.collect()
        with meter.interval() as load:
            t0 = time.perf_counter()
            value = calls[workload](sizes)
            seconds = time.perf_counter() - t0
        timed[workload] = {
            "seconds": seconds,
            "value": value,
            "background": load["background_cores"],
        }
    return timed


def _empty_results(ks: Sequence[int]) -> dict[str, dict[str, dict[str, list[Any]]]]:
    return {
        workload: {
            method: {"seconds": [[] for _ in ks], "background_cores": [[] for _ in ks]}
            for method in METHODS
        }
        for workload in WORKLOADS
    }


class _Sweep:
    """Raw results of the sweep, filled one session (method, k, repeat) at a time."""

    def __init__(self, ks: Sequence[int], meter: Any, notes: list[str]) -> None:
        self.ks = list(ks)
        self.meter = meter
        self.notes = notes
        self.raw = _empty_results(ks)
        self.values: dict[str, set[Any]] = {workload: set() for workload in WORKLOADS}
        self.slow: set[tuple[str, str, int]] = set()
        """(workload, method, k) cells measured once only: slower than SLOW_SECONDS."""
        self.estimate_pi = _load_example_pi()

    def session(self, method: str, k: int, sizes: Sizes, order: Sequence[str]) -> None:
        """Start ``method`` with ``k`` workers, warm it up, time the workloads, close it."""
        workloads = [w for w in order if (w, method, k) not in self.slow]
        if not workloads:
            return
        ki = self.ks.index(k)
        try:
            with OPENERS[method](k, self.estimate_pi) as runner:
                timed = _time_session(runner, sizes, workloads, self.meter)
        except Exception as exc:  # one broken method must not sink the others
            self.notes.append(f"scaling: {method} with {k} workers failed: {exc!r}")
            settle()
            return
        for workload, sample in timed.items():
            cell = self.raw[workload][method]
            cell["seconds"][ki].append(sample["seconds"])
            cell["background_cores"][ki].append(sample["background"])
            self.values[workload].add(sample["value"])
            if sample["seconds"] > SLOW_SECONDS:
                self.slow.add((workload, method, k))
                self.notes.append(
                    f"scaling: {workload} on {method} with {k} workers took "
                    f"{sample['seconds']:.0f} s, measured once only"
                )
        settle()


def _measure(ks: Sequence[int], sizes: Sizes, repeats: int, meter: Any, notes: list[str]) -> _Sweep:
    """Every (repeat, k, method) session; k and the methods rotate, the workloads alternate.

    Each repeat visits every k (so drift hits k=1 and k=N alike: speed-ups stay honest)
    and at each k every method.
    """
    sweep = _Sweep(ks, meter, notes)
    for repeat in range(repeats):
        for k in _rotated(ks, repeat):
            for method in _rotated(METHODS, repeat + k):
                sweep.session(method, k, sizes, _rotated(WORKLOADS, repeat + k))
        print(f"  scaling: repeat {repeat + 1}/{repeats} done", file=sys.stderr, flush=True)
    return sweep


def _summarise(
    ks: Sequence[int], cores: int, raw: dict[str, dict[str, list[Any]]]
) -> dict[str, Any]:
    """Medians, speed-ups over the method's own k=1 and over Pool with 1 process."""
    methods: dict[str, Any] = {}
    for method, entry in raw.items():
        medians = [median(times) for times in entry["seconds"]]
        methods[method] = {**entry, "median": medians}
    pool1 = methods[BASELINE]["median"][0]
    for entry in methods.values():
        own1 = entry["median"][0]
        entry["speedup"] = [ratio(own1, m) for m in entry["median"]]
        entry["speedup_vs_pool1"] = [ratio(pool1, m) for m in entry["median"]]
    return {"methods": methods, "ideal": [min(k, cores) for k in ks]}


def _targets(ks: Sequence[int], workloads: dict[str, Any], sizes: Sizes) -> list[dict[str, Any]]:
    """The two targets of this section, in run_all's ``targets`` format."""
    dd_gil = workloads["gil"]["methods"]["daskdeploy"]["speedup"]
    speedup2 = dd_gil[ks.index(2)] if 2 in ks else None
    pi = workloads["pi"]["methods"]
    pi_ratio = ratio(pi["daskdeploy"]["median"][-1], pi[BASELINE]["median"][-1])
    return [
        {
            "name": "scaling: GIL-bound speedup, daskdeploy local 2 workers vs 1",
            "target": f">= {GIL_TARGET}",
            "value": speedup2,
            "met": None if speedup2 is None else speedup2 >= GIL_TARGET,
        },
        {
            "name": f"scaling: pi example time daskdeploy / multiprocessing.Pool at k={ks[-1]}, "
            f"{sizes.chunk_seconds:.2f} s tasks",
            "target": f"<= {PI_TARGET}",
            "value": pi_ratio,
            "met": None if pi_ratio is None else pi_ratio <= PI_TARGET,
        },
    ]


def run(
    *,
    repeats: int,
    smoke: bool,
    meter: Any,
    notes: list[str],
    max_workers: int | None = None,
) -> dict[str, Any]:
    """Measure both workloads for k = 1 .. N workers with every method.

    Parameters
    ----------
    repeats
        Timed runs per (workload, method, k); medians are reported.
    smoke
        Tiny workloads: checks that everything runs, measures nothing.
    meter
        A :class:`common.LoadMeter`: background load during every timed run.
    notes
        Receives a line for every method that failed.
    max_workers
        Largest k (default: the number of usable cores).

    Returns
    -------
    dict
        ``cores``, ``workers`` (the k values), ``methods``, ``sizes``, ``order``, and per
        workload (``workloads.gil``, ``workloads.pi``) per method lists indexed like
        ``workers``: raw ``seconds``, ``background_cores``, ``median``, ``speedup`` (over
        the method's own k=1), ``speedup_vs_pool1``; ``ideal`` = min(k, cores); the pi
        ``estimates`` seen and whether all agree (``consistent``); and ``targets``.
    """
    cores = usable_cpus()
    ks = list(range(1, (max_workers or cores) + 1))
    sizes = choose_sizes(ks[-1], smoke)
    sweep = _measure(ks, sizes, repeats, meter, notes)
    raw, values = sweep.raw, sweep.values
    workloads = {workload: _summarise(ks, cores, raw[workload]) for workload in WORKLOADS}
    workloads["gil"]["expected_value"] = sizes.tasks * sizes.n * (sizes.n - 1) // 2
    workloads["gil"]["correct"] = values["gil"] == {workloads["gil"]["expected_value"]}
    workloads["pi"]["estimates"] = sorted(values["pi"])
    workloads["pi"]["consistent"] = len(values["pi"]) == 1
    if not workloads["gil"]["correct"] or not workloads["pi"]["consistent"]:
        notes.append(f"scaling: wrong or differing results: gil {values['gil']}, pi {values['pi']}")
    return {
        "cores": cores,
        "workers": ks,
        "methods": list(METHODS),
        "baseline": BASELINE,
        "sizes": {**dataclasses.asdict(sizes), "samples": sizes.samples},
        "repeats": repeats,
        "order": (
            "fresh cluster/executor/pool per timed run, warmed up untimed at 1/10 size; "
            "per repeat every k and every method, both in rotating order, the two "
            "workloads alternating; "
            f"a cell slower than {SLOW_SECONDS:g} s is measured once (measured_once)"
        ),
        "measured_once": [list(cell) for cell in sorted(sweep.slow)],
        "workloads": workloads,
        "targets": _targets(ks, workloads, sizes),
    }
