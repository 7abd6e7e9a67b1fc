"""Small functions that run inside the scheduler and the workers, shipped by value.

Remote processes need not have daskdeploy installed (SSH hosts, for example, only need
distributed), so this module is registered with cloudpickle to travel by value: its
functions are serialised with their code instead of as an import path. They may
therefore use only the standard library and distributed, imported inside the function.

Used by :mod:`daskdeploy.report.efficiency` (CPU and memory of worker processes, the task
stream summary), :mod:`daskdeploy.report.progress` (how many tasks are in each state) and
:mod:`daskdeploy.backends.shared.nannies` (closing a nanny from inside it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "close_nanny_soon",
    "process_usage",
    "shipped",
    "summarise_task_records",
    "task_state_counts",
    "task_stream_start",
    "task_stream_summary",
]

_registered = False


def shipped() -> None:
    """Register this module to be pickled by value (idempotent); call before shipping."""
    global _registered
    if not _registered:
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        _registered = True


def close_nanny_soon(timeout: float, reason: str, dask_worker: Any) -> None:
    """Start closing the calling nanny (``client.run(..., nanny=True)``) and return at once.

    Returning first lets the reply reach the scheduler before the nanny closes its
    connections. ``Nanny.close`` gives its worker 0.8 x ``timeout`` to exit, then kills it.
    """
    import asyncio

    task = asyncio.ensure_future(dask_worker.close(timeout=timeout, reason=reason))
    dask_worker._daskdeploy_closing = task  # keep a reference until it is done


def process_usage() -> dict[str, Any]:
    """CPU seconds, peak resident memory and identity of the calling process.

    Returns
    -------
    dict
        ``pid``, ``host``, ``cpu_seconds`` (user + system since the process started),
        ``peak_memory`` (bytes, the high-water mark of resident memory), ``time``, and
        ``host_cpu`` (busy and total CPU seconds of the whole machine so far, as psutil
        reports them; ``None`` where it cannot tell) with ``host_cores``.
    """
    import os
    import resource
    import socket
    import sys
    import time

    usage = resource.getrusage(resource.RUSAGE_SELF)
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    host_cpu = None
    try:  # CPU time of the whole machine, to tell how busy other processes kept it
        import psutil  # installed with distributed

        times = psutil.cpu_times()
        fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        total = sum(getattr(times, name, 0.0) for name in fields)
        idle = times.idle + getattr(times, "iowait", 0.0)
        host_cpu = (total - idle, total)
    except Exception:  # no psutil, or a platform where it cannot tell
        pass
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_memory": int(usage.ru_maxrss * scale),
        "time": time.time(),
        "host_cpu": host_cpu,
        "host_cores": os.cpu_count() or 1,
    }


def task_state_counts(dask_scheduler: Any) -> dict[str, int]:
    """Number of tasks the scheduler knows in each state (``processing``, ``memory``...)."""
    counts: dict[str, int] = {}
    for prefix in list(dask_scheduler.task_prefixes.values()):
        for state, count in list(prefix.states.items()):
            if count:
                counts[state] = counts.get(state, 0) + count
    return counts


def task_stream_start(dask_scheduler: Any) -> dict[str, Any]:
    """Start recording the task stream (if not yet) and return its cursor and the time."""
    import time

    from distributed.diagnostics.task_stream import TaskStreamPlugin

    if TaskStreamPlugin.name not in dask_scheduler.plugins:
        dask_scheduler.add_plugin(TaskStreamPlugin(dask_scheduler))
    plugin = dask_scheduler.plugins[TaskStreamPlugin.name]
    return {"index": plugin.index, "time": time.time()}


def summarise_task_records(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up task-stream records: tasks, seconds per action, per worker.

    Parameters
    ----------
    records
        Records as distributed's task stream keeps them: ``worker``, ``status`` and
        ``startstops``, a list of ``{"action", "start", "stop"}``.

    Returns
    -------
    dict
        ``tasks``, ``erred``, ``seconds`` (action name to seconds summed over tasks) and
        ``workers`` (address to ``{"tasks", "compute"}``).
    """
    tasks = erred = 0
    seconds: dict[str, float] = {}
    workers: dict[str, dict[str, float]] = {}
    for record in records:
        tasks += 1
        erred += record.get("status") == "error"
        worker = workers.setdefault(str(record.get("worker")), {"tasks": 0, "compute": 0.0})
        worker["tasks"] += 1
        for startstop in record.get("startstops", ()):
            duration = max(startstop["stop"] - startstop["start"], 0.0)
            action = str(startstop["action"])
            seconds[action] = seconds.get(action, 0.0) + duration
            if action == "compute":
                worker["compute"] += duration
    return {"tasks": tasks, "erred": erred, "seconds": seconds, "workers": workers}


def task_stream_summary(dask_scheduler: Any, start_index: int) -> dict[str, Any]:
    """Summarise the tasks finished since ``start_index``, with the workers and their events.

    Returns
    -------
    dict
        The :func:`summarise_task_records` figures of the records still held, plus
        ``finished`` (all tasks since the cursor, including records the bounded buffer
        dropped), ``time``, ``workers_now`` (address to threads, memory limit, host) and
        ``events`` (``(time, action, address)`` of workers that joined or left).
    """
    import time

    from distributed.diagnostics.task_stream import TaskStreamPlugin

    plugin = dask_scheduler.plugins.get(TaskStreamPlugin.name)
    if plugin is None:
        summary = summarise_task_records(())
        finished = 0
    else:
        summary = summarise_task_records(plugin.collect(start_index=start_index))
        finished = plugin.index - start_index
    events = [
        (stamp, message.get("action"), message.get("worker"))
        for stamp, message in dask_scheduler.get_events("all")
        if isinstance(message, dict) and message.get("action") in ("add-worker", "remove-worker")
    ]
    workers_now = {
        address: {"threads": state.nthreads, "memory_limit": state.memory_limit}
        for address, state in list(dask_scheduler.workers.items())
    }
    return {
        **summary,
        "finished": finished,
        "time": time.time(),
        "workers_now": workers_now,
        "events": events,
    }
