"""Why a run used its workers poorly, in plain language: the hints of the efficiency report.

Each rule looks at the figures of an :class:`~daskdeploy.report.efficiency.EfficiencyReport`
and, when its pattern shows, says what is happening and what to change. The rules and
their thresholds:

* **the script's own cluster**: under ``daskdeploy run --no-adopt`` the script made its
  own cluster, client or local scheduler, which did the work the report cannot see
  (always said, whatever the efficiency).
* **a crowded host**: a worker host was at least 85 % busy, and processes other than
  the workers used at least a quarter of its cores.
* **threads on GIL-bound code**: a worker process with several threads kept on average
  at least 1.5 of them in tasks, yet used no more than about one core. Pure-Python code
  holds the GIL, so the threads took turns.
* **tasks that wait**: workers were in tasks at least half of the time, but used CPU
  for less than half of that time: I/O, sleep, locks or remote services.
* **tasks too small**: at least 100 tasks of under 5 ms each on average; the scheduler
  spends a few hundred microseconds on every task.
* **idle workers**: workers were in tasks less than half of the time.
* **data movement**: over a quarter of the workers' task time went to transfers,
  (de)serialisation or spilling.
* **large inputs in the graph**: distributed warned that it sent a large graph.

The crowded-host, GIL, waiting and idle rules apply only when the CPU efficiency is below 75 %.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .efficiency import EfficiencyReport, HostLoad

__all__ = ["LOW_EFFICIENCY", "efficiency_hints"]

LOW_EFFICIENCY = 0.75
"""CPU efficiency below which the report looks for a cause."""
_BUSY_THREADS_GIL = 1.5
_CORES_GIL = (0.6, 1.3)
_WAITING_CPU_SHARE = 0.5
_BUSY_ENOUGH = 0.5
_SMALL_TASK_SECONDS = 0.005
_SMALL_TASKS_MIN = 100
_DATA_FRACTION = 0.25
_DATA_SHARE_OF_TIME = 0.05
_CROWDED_BUSY = 0.85
_CROWDED_OTHERS = 0.25


def efficiency_hints(report: EfficiencyReport) -> Iterator[str]:
    """Yield the hints that apply to ``report``, the likeliest cause first."""
    efficiency = report.cpu_efficiency
    low = efficiency is not None and efficiency < LOW_EFFICIENCY
    gil = _gil_bound_processes(report)
    if report.script_clusters:
        yield _own_clusters_hint(report)
        if report.tasks == 0:
            return
    if low and report.tasks == 0:
        yield (
            "No tasks ran on the workers while they were up: the work happened in the "
            "client process (plain NumPy or pandas calls, or dask with scheduler="
            "'threads'/'sync'). Build it with dask collections or dask.delayed and call "
            ".compute() so the workers do it."
        )
        return
    crowded = _crowded_hosts(report) if low else []
    if crowded:
        yield _crowded_hint(crowded)
    waiting = low and not gil and not crowded and _waiting(report)
    if low and gil:
        yield _gil_hint(report, gil)
    elif waiting:
        yield (
            f"Tasks mostly wait instead of computing: the workers were in tasks "
            f"{report.busy_fraction:.0%} of the time but used the CPU for only "
            f"{_cpu_share_of_tasks(report):.0%} of that. Tasks that wait on I/O, sleep, "
            f"locks or remote services run better with more threads per worker "
            f"(threads_per_worker=4 or more), or with fewer, larger reads."
        )
    if _too_small(report):
        yield _too_small_hint(report)
    elif low and not gil and not waiting and (report.busy_fraction or 0.0) < _BUSY_ENOUGH:
        yield _idle_hint(report)
    data = report.data_fraction
    if (
        data is not None
        and data > _DATA_FRACTION
        and report.data_seconds > _DATA_SHARE_OF_TIME * report.thread_seconds
    ):
        yield (
            f"Moving data took {data:.0%} of the workers' task time (transfers between "
            f"workers, (de)serialisation, spilling to disk). Keep data where it is used: "
            f"fewer shuffles, reductions that shrink data early, or more memory per worker "
            f"if it spilled."
        )
    if report.large_graph:
        yield (
            f"Large inputs went into the task graph ({report.large_graph}): the client "
            f"sent them to the scheduler with the tasks. Load data inside tasks "
            f"(dask.delayed(load)(path), dd.read_csv, da.from_zarr) or send it once with "
            f"client.scatter and pass the future."
        )


def _own_clusters_hint(report: EfficiencyReport) -> str:
    names = "; ".join(report.script_clusters[:3])
    more = len(report.script_clusters) - 3
    if more > 0:
        names += f" and {more} more"
    idle = "so no tasks ran on them" if report.tasks == 0 else "and its tasks are not counted"
    return (
        f"The script ran its own Dask set-up ({names}) because adoption was off "
        f"(--no-adopt): that did the work, not this deployment's workers, {idle}. Run "
        f"without --no-adopt to put the script's work on the deployment."
    )


def _crowded_hosts(report: EfficiencyReport) -> list[HostLoad]:
    """Hosts that were nearly full while other processes took a good share of the cores."""
    return [
        host
        for host in report.hosts
        if host.busy_cores >= _CROWDED_BUSY * host.cores
        and host.other_cores >= _CROWDED_OTHERS * host.cores
    ]


def _crowded_hint(hosts: list[HostLoad]) -> str:
    worst = max(hosts, key=lambda host: host.other_cores / host.cores)
    return (
        f"The workers had to share the CPU: on {worst.host}, other processes used "
        f"{worst.other_cores:.1f} of its {worst.cores} cores during the run (the client "
        f"script, other users, or other jobs on a shared node), so tasks waited for a "
        f"core. Ask for fewer workers than free cores, or, on a cluster, for whole "
        f"nodes (--exclusive)."
    )


def _too_small(report: EfficiencyReport) -> bool:
    mean = report.mean_task_seconds
    return mean is not None and mean < _SMALL_TASK_SECONDS and report.tasks >= _SMALL_TASKS_MIN


def _too_small_hint(report: EfficiencyReport) -> str:
    mean = report.mean_task_seconds or 0.0
    return (
        f"Tasks are too small: {report.tasks:,} tasks of {mean * 1000:.2g} ms on "
        f"average. The scheduler spends a few hundred microseconds on every task, so "
        f"tasks under about 100 ms lose much of their time to overhead. Use bigger "
        f"chunks (dask.array chunks, dataframe partitions, bag partition_size) or "
        f"batch many small calls into one delayed function."
    )


def _gil_bound_processes(report: EfficiencyReport) -> list[tuple[str, int, float, float]]:
    """Processes with several threads busy in tasks but about one core of CPU used."""
    threads: dict[str, int] = defaultdict(int)
    task_seconds: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for worker in report.workers:
        threads[worker.process] += worker.threads
        task_seconds[worker.process] += worker.task_seconds
        seconds[worker.process] = max(seconds.get(worker.process, 0.0), worker.seconds)
        cpu[worker.process] = worker.cpu_seconds
    found = []
    for process, count in threads.items():
        if count < 2 or seconds[process] <= 0:
            continue
        busy_threads = task_seconds[process] / seconds[process]
        cores = cpu[process] / seconds[process]
        if busy_threads >= _BUSY_THREADS_GIL and _CORES_GIL[0] <= cores <= _CORES_GIL[1]:
            found.append((process, count, busy_threads, cores))
    return found


def _gil_hint(report: EfficiencyReport, found: list[tuple[str, int, float, float]]) -> str:
    _, threads, busy, cores = max(found, key=lambda item: item[2])
    workers = len({worker.process for worker in report.workers})
    return (
        f"Threads on GIL-bound code: each worker process had {threads} threads in tasks "
        f"({busy:.1f} on average) but used only {cores:.2f} cores. Pure-Python code holds "
        f"the GIL, so threads of one process take turns. Use processes instead: "
        f"{workers * threads} workers x 1 thread (daskdeploy run -n {workers * threads} "
        f"--threads-per-worker 1), or move the hot loop into NumPy/Numba, which release "
        f"the GIL."
    )


def _cpu_share_of_tasks(report: EfficiencyReport) -> float:
    return report.cpu_seconds / report.task_seconds if report.task_seconds > 0 else 0.0


def _waiting(report: EfficiencyReport) -> bool:
    busy = report.busy_fraction
    return (
        busy is not None
        and busy >= _BUSY_ENOUGH
        and _cpu_share_of_tasks(report) < _WAITING_CPU_SHARE
    )


def _idle_hint(report: EfficiencyReport) -> str:
    idle = 1 - (report.busy_fraction or 0.0)
    if report.tasks < report.threads:
        return (
            f"Not enough parallel work: {report.tasks} task{'s' if report.tasks != 1 else ''} "
            f"for {report.threads} worker "
            f"threads, so workers sat idle {idle:.0%} of the time. Split the work into at "
            f"least {2 * report.threads} tasks (smaller chunks or partitions)."
        )
    return (
        f"Workers sat idle {idle:.0%} of the time. Usually the script did work in the "
        f"client between computations (reading files, plotting, calling .compute() in a "
        f"loop one result at a time). Build everything first and compute it together "
        f"(dask.compute(a, b, c)), or ask for fewer workers."
    )
