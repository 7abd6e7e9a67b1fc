"""Benchmark daskdeploy's ``local`` backend against a hand-built ``LocalCluster``.

Two measurements, one run::

    python benchmarks/bench_local.py [--repeats 5] [--tiny] [--json PATH]

1. **Start-up + teardown overhead.** ``daskdeploy.deploy("local", workers=2,
   threads_per_worker=1, quiet=True)`` then ``client.close()``, against the equivalent raw
   ``distributed.LocalCluster`` + ``Client`` (loopback, free ports, dashboard on both sides).
   One untimed warm-up of each, then the two alternate in pairs (AB, BA, AB, ...) so slow
   drift of the machine cancels out. Target: median total daskdeploy / raw <= 1.05.
2. **The GIL lesson.** Sixteen pure-Python CPU-bound tasks on (a) 1 worker x 1 thread,
   (b) 2 workers x 1 thread and (c) 1 worker x 2 threads, all started with
   ``daskdeploy.deploy``, one at a time; only the compute is timed, and the three take
   turns (abc, bca, cab, ...) for the same reason. Target: (b) >= 1.85x faster than
   (a); (c) stays near 1x because the GIL lets one thread at a time run Python code.

Other programs running at the same time distort both results. When psutil is installed
every timed interval also records how many CPU cores *other* processes used meanwhile
("background"); the table warns when that is not negligible.

This is a benchmark, not a test: it prints a table and writes JSON (raw timings, medians,
ratios, background load, machine information) and never fails on a missed target.
:func:`main` returns the same dictionary, so a smoke test can run
``main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "local.json")])``.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["busy_sum", "main"]

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "local.json"

STARTUP_TARGET = 1.05
"""Maximum acceptable ratio of median totals, daskdeploy / raw."""
SPEEDUP_TARGET = 1.85
"""Minimum speed-up of 2 workers x 1 thread over 1 worker x 1 thread."""
THREADS_BAND = (0.8, 1.25)
"""Range of speed-ups of 1 worker x 2 threads that counts as "~1x"."""
BACKGROUND_WARN = 0.2
"""Average CPU cores used by other processes above which the table warns."""

N_TASKS = 16
TASK_SECONDS = 0.25
TINY_TASK_SECONDS = 0.1
DEFAULT_REPEATS = 5
TINY_REPEATS = 2
STARTUP_PAIRS_PER_REPEAT = 3
TINY_STARTUP_PAIRS_PER_REPEAT = 2

GIL_CONFIGS: tuple[tuple[str, int, int], ...] = (
    ("a", 1, 1),
    ("b", 2, 1),
    ("c", 1, 2),
)
"""(label, workers, threads_per_worker) of the GIL comparison; ``a`` is the baseline."""
POOL_CONFIGS: tuple[tuple[str, int], ...] = (("p1", 1), ("p2", 2))
"""(label, processes) of the raw ``multiprocessing.Pool`` reference: this machine's limit."""


def _time_pool(processes: int, n: int, meter: LoadMeter) -> tuple[float, float | None]:
    """Time the same tasks on a warm ``multiprocessing.Pool``: the raw-library reference."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(busy_sum, [1_000] * processes, chunksize=1)  # warm-up: start every process
        with meter.interval() as load:
            t0 = time.perf_counter()
            pool.map(busy_sum, [n] * N_TASKS, chunksize=1)
            elapsed = time.perf_counter() - t0
    return elapsed, load["background_cores"]


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


def _shippable(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``function`` in a form worker processes can unpickle.

    Run as a script, this file is ``__main__`` and Dask ships its functions by value.
    Imported (by a smoke test), workers could not import it, and distributed pickles
    nested functions by reference (it ignores ``cloudpickle.register_pickle_by_value``
    there), so hand out a copy whose globals claim ``__main__``: that one goes by value.
    """
    if function.__module__ == "__main__":
        return function
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    return types.FunctionType(function.__code__, namespace, function.__name__)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _raw_scratch_space() -> Iterator[None]:
    """Give the raw LocalCluster a scratch space that is removed at the end.

    Left to its defaults it keeps ``$TMPDIR/dask-scratch-space`` forever; daskdeploy
    makes and removes its own, so both sides create and use one directory.
    """
    import dask.config

    with (
        tempfile.TemporaryDirectory(prefix="bench-raw-") as path,
        dask.config.set({"temporary-directory": path}),
    ):
        yield


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _settle() -> None:
    """Collect garbage and let exiting worker processes go before the next timed run."""
    gc.collect()
    time.sleep(0.2)


class LoadMeter:
    """Measure the CPU time that processes *other than this one and its children* use.

    ``with meter.interval() as sample:`` fills ``sample["background_cores"]``: system-wide
    busy CPU seconds minus those of this process tree, divided by the wall time. It is
    ``None`` when psutil is missing.
    """

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self._psutil: Any = None
        else:
            self._psutil = psutil
            self._me = psutil.Process()

    @property
    def available(self) -> bool:
        """Whether psutil is installed, so background load can be measured."""
        return self._psutil is not None

    def _system_busy(self) -> float:
        times = self._psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(getattr(times, f) for f in times._fields if f not in ("guest", "guest_nice"))
        return total - idle

    def _own(self) -> float:
        t = os.times()  # this process plus every child that has exited and been reaped
        used = t.user + t.system + t.children_user + t.children_system
        for child in self._me.children(recursive=True):
            with contextlib.suppress(self._psutil.Error):
                ct = child.cpu_times()
                used += ct.user + ct.system
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


def _machine_info() -> dict[str, Any]:
    import dask
    import distributed

    import daskdeploy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "daskdeploy": daskdeploy.__version__,
    }
    with contextlib.suppress(ImportError):
        import psutil

        info["memory_bytes"] = psutil.virtual_memory().total
    return info


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


# --------------------------------------------------------------- 1. start-up overhead


def _run_daskdeploy() -> tuple[float, float]:
    import daskdeploy

    t0 = time.perf_counter()
    client = daskdeploy.deploy("local", workers=2, threads_per_worker=1, quiet=True)
    t1 = time.perf_counter()
    client.close()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def _run_raw() -> tuple[float, float]:
    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
    )
    client = distributed.Client(cluster)
    t1 = time.perf_counter()
    client.close()
    cluster.close()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def bench_startup(pairs: int, meter: LoadMeter) -> dict[str, Any]:
    """Time start-up and teardown of daskdeploy and of a raw LocalCluster, interleaved.

    Parameters
    ----------
    pairs
        Number of timed (daskdeploy, raw) pairs; the order inside a pair alternates.
    meter
        Records the CPU load of other processes during every timed run.

    Returns
    -------
    dict
        Raw timings per side (``start``, ``close``, ``total`` and ``background_cores``
        lists), their medians, the ratio of median totals and the median of the per-pair
        total ratios.
    """
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "daskdeploy": _run_daskdeploy,
        "raw": _run_raw,
    }
    for run in runners.values():  # untimed warm-up: imports, first process spawns
        run()
        _settle()
    raw: dict[str, dict[str, list[Any]]] = {
        side: {"start": [], "close": [], "total": [], "background_cores": []} for side in runners
    }
    for i in range(pairs):
        order = ("daskdeploy", "raw") if i % 2 == 0 else ("raw", "daskdeploy")
        for side in order:
            with meter.interval() as load:
                start, close = runners[side]()
            raw[side]["start"].append(start)
            raw[side]["close"].append(close)
            raw[side]["total"].append(start + close)
            raw[side]["background_cores"].append(load["background_cores"])
            _settle()
    medians = {
        side: {key: _median(values) for key, values in timings.items()}
        for side, timings in raw.items()
    }
    ratios = {
        key: medians["daskdeploy"][key] / medians["raw"][key] for key in ("start", "close", "total")
    }
    paired = [d / r for d, r in zip(raw["daskdeploy"]["total"], raw["raw"]["total"], strict=True)]
    return {
        "pairs": pairs,
        "order": "alternating AB/BA pairs after one untimed warm-up of each side",
        "dashboard": True,
        "timings": raw,
        "medians": medians,
        "ratio": ratios,
        "paired_total_ratio_median": _median(paired),
        "background_cores_median": _median(
            raw["daskdeploy"]["background_cores"] + raw["raw"]["background_cores"]
        ),
        "target_ratio_max": STARTUP_TARGET,
        "pass": ratios["total"] <= STARTUP_TARGET,
    }


# ---------------------------------------------------------------------- 2. the GIL


def calibrate(task_seconds: float) -> int:
    """Return ``n`` such that ``busy_sum(n)`` takes about ``task_seconds`` here.

    Parameters
    ----------
    task_seconds
        Wanted duration of one task, in seconds.

    Returns
    -------
    int
        The loop length, measured in this process (best of three).
    """
    probe = 500_000
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        busy_sum(probe)
        best = min(best, time.perf_counter() - t0)
    return max(1_000, int(probe * task_seconds / best))


def bench_gil(n: int, repeats: int, meter: LoadMeter) -> dict[str, Any]:
    """Time the pure-Python workload on processes versus threads.

    Each repeat visits the three configurations in rotating order (abc, bca, cab, ...).
    Each visit starts a deployment (dashboard off), runs one untimed warm-up task, times
    the compute of ``N_TASKS`` tasks and closes it. Only one cluster is up at a time: on
    a 2-core machine the heartbeats of idle clusters would cost configuration (b) ~5 %.

    Parameters
    ----------
    n
        Loop length of each task (see :func:`calibrate`).
    repeats
        Timed computes per configuration.
    meter
        Records the CPU load of other processes during every timed compute.

    Returns
    -------
    dict
        Per configuration: workers, threads, raw timings, background load, median and
        speed-up over configuration ``a``.
    """
    import dask

    import daskdeploy

    configs: dict[str, dict[str, Any]] = {
        label: {
            "workers": workers,
            "threads_per_worker": threads,
            "timings": [],
            "background_cores": [],
        }
        for label, workers, threads in GIL_CONFIGS
    }
    for label, processes in POOL_CONFIGS:
        configs[label] = {"pool_processes": processes, "timings": [], "background_cores": []}
    labels = list(configs)
    task = _shippable(busy_sum)
    for i in range(repeats):
        shift = i % len(labels)
        for label in labels[shift:] + labels[:shift]:
            entry = configs[label]
            if "pool_processes" in entry:
                elapsed, background = _time_pool(entry["pool_processes"], n, meter)
                entry["timings"].append(elapsed)
                entry["background_cores"].append(background)
                _settle()
                continue
            with daskdeploy.deploy(
                "local",
                workers=entry["workers"],
                threads_per_worker=entry["threads_per_worker"],
                quiet=True,
                dashboard=False,
            ) as client:
                # Warm-up (untimed): ship the function, start the worker threads.
                client.submit(task, 1_000, pure=False).result(timeout=120)
                tasks = [dask.delayed(task, pure=False)(n) for _ in range(N_TASKS)]
                gc.collect()
                with meter.interval() as load:
                    t0 = time.perf_counter()
                    dask.compute(*tasks, scheduler=client)
                    elapsed = time.perf_counter() - t0
            entry["timings"].append(elapsed)
            entry["background_cores"].append(load["background_cores"])
            _settle()
    for entry in configs.values():
        entry["median"] = _median(entry["timings"])
    baseline = configs["a"]["median"]
    for entry in configs.values():
        entry["speedup_vs_a"] = baseline / entry["median"]
    return {
        "tasks": N_TASKS,
        "n": n,
        "repeats": repeats,
        "order": "one cluster at a time, fresh per timed compute; rotating abc, bca, cab, ...",
        "configs": configs,
        "background_cores_median": _median(
            [b for entry in configs.values() for b in entry["background_cores"]]
        ),
        "target_speedup_b_min": SPEEDUP_TARGET,
        "expected_speedup_c": list(THREADS_BAND),
        "pool_speedup": configs["p1"]["median"] / configs["p2"]["median"],
        "b_vs_pool2": configs["b"]["median"] / configs["p2"]["median"],
        "pass_b": configs["b"]["speedup_vs_a"] >= SPEEDUP_TARGET,
        "pass_c": THREADS_BAND[0] <= configs["c"]["speedup_vs_a"] <= THREADS_BAND[1],
    }


# ------------------------------------------------------------------------ reporting


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _background_line(cores: float | None, cpus: int | None) -> str:
    if cores is None:
        return "   background load: not measured (install psutil)"
    line = f"   background load from other processes: {cores:.2f} of {cpus} cores (median)"
    if cores > BACKGROUND_WARN:
        line += "  <- WARNING: machine busy, numbers unreliable"
    return line


def format_report(result: dict[str, Any]) -> str:
    """Render the results as a plain-text table.

    Parameters
    ----------
    result
        The dictionary built by :func:`main`.

    Returns
    -------
    str
        The table, targets and PASS/MISS markers included.
    """
    cpus = result["machine"]["usable_cpus"]
    s = result["startup"]
    m = s["medians"]
    r = s["ratio"]
    lines = [
        f"daskdeploy local benchmark  ({cpus} CPUs, Python {result['machine']['python']}, "
        f"distributed {result['machine']['distributed']})",
        "",
        f"1. Start-up + teardown, 2 workers x 1 thread, dashboard on "
        f"(median of {s['pairs']} interleaved pairs)",
        f"   {'':<12}{'start s':>10}{'close s':>10}{'total s':>10}",
        f"   {'daskdeploy':<12}{m['daskdeploy']['start']:>10.3f}"
        f"{m['daskdeploy']['close']:>10.3f}{m['daskdeploy']['total']:>10.3f}",
        f"   {'raw':<12}{m['raw']['start']:>10.3f}{m['raw']['close']:>10.3f}"
        f"{m['raw']['total']:>10.3f}",
        f"   {'ratio':<12}{r['start']:>10.3f}{r['close']:>10.3f}{r['total']:>10.3f}"
        f"   target total <= {STARTUP_TARGET:.2f}  {_mark(s['pass'])}",
        f"   median of per-pair total ratios: {s['paired_total_ratio_median']:.3f}",
        _background_line(s["background_cores_median"], cpus),
        "",
    ]
    g = result["gil"]
    lines += [
        f"2. GIL: {g['tasks']} pure-Python tasks of busy_sum({g['n']:,}), "
        f"compute only (median of {g['repeats']})",
        f"   {'config':<26}{'time s':>9}{'speedup':>9}   target",
    ]
    targets = {
        "p1": ("raw multiprocessing reference", None),
        "p2": (f"raw limit here: {g['pool_speedup']:.2f}x", None),
        "a": ("baseline", None),
        "b": (f">= {SPEEDUP_TARGET:.2f}x", g["pass_b"]),
        "c": (f"~1x ({THREADS_BAND[0]:g}-{THREADS_BAND[1]:g}x)", g["pass_c"]),
    }
    for label, entry in g["configs"].items():
        if "pool_processes" in entry:
            name = f"({label}) Pool({entry['pool_processes']})"
        else:
            workers, threads = entry["workers"], entry["threads_per_worker"]
            name = (
                f"({label}) {workers} worker{'s' if workers != 1 else ''}"
                f" x {threads} thread{'s' if threads != 1 else ''}"
            )
        text, ok = targets[label]
        mark = "" if ok is None else f"  {_mark(ok)}"
        lines.append(
            f"   {name:<26}{entry['median']:>9.3f}{entry['speedup_vs_a']:>8.2f}x   {text}{mark}"
        )
    lines += [
        f"   (b) vs raw Pool(2) on the same tasks: {g['b_vs_pool2']:.3f}x the time",
        _background_line(g["background_cores_median"], cpus),
        "",
        f"Wall time {result['wall_seconds']:.1f} s; JSON: {result['json_path']}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed computes per GIL configuration (default {DEFAULT_REPEATS}, "
        f"{TINY_REPEATS} with --tiny)",
    )
    parser.add_argument(
        "--startup-pairs",
        type=int,
        default=None,
        help=f"timed start-up pairs (default {STARTUP_PAIRS_PER_REPEAT} x repeats, "
        f"{TINY_STARTUP_PAIRS_PER_REPEAT} x repeats with --tiny)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"{TINY_TASK_SECONDS:g} s tasks and fewer repeats: finishes in seconds",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"output file (default {DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = TINY_REPEATS if args.tiny else DEFAULT_REPEATS
    if args.startup_pairs is None:
        per_repeat = TINY_STARTUP_PAIRS_PER_REPEAT if args.tiny else STARTUP_PAIRS_PER_REPEAT
        args.startup_pairs = per_repeat * args.repeats
    if args.repeats < 1 or args.startup_pairs < 1:
        parser.error("--repeats and --startup-pairs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both benchmarks, print the table, write the JSON and return the results.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    dict
        ``machine``, ``settings``, ``startup`` and ``gil`` sections, ``loadavg_before``
        and ``loadavg_after``, ``wall_seconds`` and ``json_path``: the JSON file's content.
    """
    args = _parse_args(argv)
    task_seconds = TINY_TASK_SECONDS if args.tiny else TASK_SECONDS
    meter = LoadMeter()
    loadavg_before = _loadavg()
    t0 = time.perf_counter()
    with _raw_scratch_space():
        n = calibrate(task_seconds)
        startup = bench_startup(args.startup_pairs, meter)
        gil = bench_gil(n, args.repeats, meter)
    result: dict[str, Any] = {
        "machine": _machine_info(),
        "settings": {
            "repeats": args.repeats,
            "startup_pairs": args.startup_pairs,
            "tiny": args.tiny,
            "task_seconds_target": task_seconds,
            "timer": "time.perf_counter",
            "background_measured": meter.available,
        },
        "startup": startup,
        "gil": gil,
        "loadavg_before": loadavg_before,
        "loadavg_after": _loadavg(),
        "wall_seconds": time.perf_counter() - t0,
        "json_path": str(args.json),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(format_report(result), flush=True)
    return result


if __name__ == "__main__":
    main()
