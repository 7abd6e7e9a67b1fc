"""How well a run used its workers: a ``seff``-like CPU-efficiency report, with hints.

:class:`EfficiencyMeter` takes a snapshot when it starts (CPU seconds of every worker
process, the scheduler's task-stream cursor) and another when asked for a report; the
difference becomes an :class:`EfficiencyReport`: wall time, workers and threads, CPU
time used on the workers, CPU efficiency (CPU seconds over worker-thread-seconds, as
``seff`` divides by allocated core-seconds), tasks and their mean duration, the share of
time spent moving data, peak memory per worker, and plain-language hints when the
efficiency is low.

It works with any :class:`distributed.Client`; ``deploy(..., report=True)`` and
``daskdeploy run --report`` start one for you and print the report when the deployment
closes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import probes
from .hints import efficiency_hints

__all__ = ["EfficiencyMeter", "EfficiencyReport", "HostLoad", "WorkerUsage"]

_ANSWER_TIMEOUT = 10.0
"""Seconds to wait for the scheduler and workers to answer before giving up on a report."""


@dataclass(frozen=True)
class WorkerUsage:
    """What one worker used during the measured window.

    Attributes
    ----------
    address
        The worker's address.
    threads
        Its threads (task slots).
    seconds
        How long it was connected within the window.
    cpu_seconds
        CPU seconds (user + system) its process used in the window; for a worker that
        joined during the window, since its process started.
    peak_memory
        High-water mark of the process's resident memory, in bytes.
    memory_limit
        The worker's memory limit in bytes (0: none).
    task_seconds
        Seconds its threads spent running tasks.
    tasks
        Tasks it finished.
    process
        ``host:pid`` of its process (workers started as threads share one).
    joined_during
        True if it connected after the window began.
    """

    address: str
    threads: int
    seconds: float
    cpu_seconds: float
    peak_memory: int
    memory_limit: int
    task_seconds: float
    tasks: int
    process: str
    joined_during: bool = False


@dataclass(frozen=True)
class HostLoad:
    """How busy a worker host was during the window, and how much of that was not ours.

    Attributes
    ----------
    host
        Host name.
    cores
        CPUs of the host.
    busy_cores
        Cores kept busy on average by all processes of the host.
    other_cores
        Of those, cores used by processes other than the deployment's workers (the
        client script, other users, other jobs on a shared node).
    """

    host: str
    cores: int
    busy_cores: float
    other_cores: float


@dataclass(frozen=True)
class EfficiencyReport:
    """The figures of one measured window and what they suggest.

    Attributes
    ----------
    wall_seconds
        Length of the window (scheduler clock).
    workers
        Usage of each worker connected at the end of the window.
    tasks
        Tasks finished in the window.
    erred
        Tasks that failed.
    action_seconds
        Seconds summed over tasks per activity: ``compute``, ``transfer`` (fetching
        inputs from other workers), ``disk-read``/``disk-write`` (spilling), ...
    recorded_tasks
        Tasks whose timings are in ``action_seconds`` (fewer than ``tasks`` only when
        the scheduler's bounded task stream dropped some).
    workers_left
        Workers that disconnected during the window; their usage is not counted.
    startup_seconds
        From the ``deploy()`` call until all workers connected, if known.
    large_graph
        Size of the largest task graph distributed warned about (e.g. ``"52.3 MiB"``).
    label
        What was measured, e.g. ``"dd-1a2b3c4d on local"``.
    hosts
        Load of each worker host (Linux hosts only).
    script_clusters
        Clusters and schedulers the script made for itself and kept (``daskdeploy run
        --no-adopt``), as it called them: their work is not in these figures.
    hints
        Plain-language explanations of low efficiency and what to change.
    """

    wall_seconds: float
    workers: tuple[WorkerUsage, ...]
    tasks: int
    erred: int = 0
    action_seconds: Mapping[str, float] = field(default_factory=dict)
    recorded_tasks: int = 0
    workers_left: int = 0
    startup_seconds: float | None = None
    large_graph: str | None = None
    label: str = ""
    hosts: tuple[HostLoad, ...] = ()
    script_clusters: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()

    @property
    def threads(self) -> int:
        """Worker threads at the end of the window."""
        return sum(worker.threads for worker in self.workers)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds used by the worker processes (each process counted once)."""
        by_process = {worker.process: worker.cpu_seconds for worker in self.workers}
        return sum(by_process.values())

    @property
    def thread_seconds(self) -> float:
        """Worker-thread-seconds available: threads x seconds connected, summed."""
        return sum(worker.threads * worker.seconds for worker in self.workers)

    @property
    def cpu_efficiency(self) -> float | None:
        """CPU seconds used over worker-thread-seconds available (``seff``'s figure)."""
        return self.cpu_seconds / self.thread_seconds if self.thread_seconds > 0 else None

    @property
    def task_seconds(self) -> float:
        """Seconds worker threads spent computing tasks."""
        return self.action_seconds.get("compute", 0.0)

    @property
    def busy_fraction(self) -> float | None:
        """Share of the worker-thread-seconds spent computing tasks."""
        return self.task_seconds / self.thread_seconds if self.thread_seconds > 0 else None

    @property
    def mean_task_seconds(self) -> float | None:
        """Mean compute time of a task."""
        return self.task_seconds / self.recorded_tasks if self.recorded_tasks else None

    @property
    def data_seconds(self) -> float:
        """Seconds spent on everything but computing: transfers, (de)serialisation, spilling."""
        return sum(
            seconds for action, seconds in self.action_seconds.items() if action != "compute"
        )

    @property
    def data_fraction(self) -> float | None:
        """Share of the workers' task time spent moving data rather than computing."""
        total = self.task_seconds + self.data_seconds
        return self.data_seconds / total if total > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON), derived figures included."""
        data = asdict(self)
        data["workers"] = [asdict(worker) for worker in self.workers]
        data["action_seconds"] = dict(self.action_seconds)
        data["hints"] = list(self.hints)
        data["hosts"] = [asdict(host) for host in self.hosts]
        for name in (
            "threads",
            "cpu_seconds",
            "thread_seconds",
            "cpu_efficiency",
            "task_seconds",
            "busy_fraction",
            "mean_task_seconds",
            "data_fraction",
        ):
            data[name] = getattr(self, name)
        return data

    def format(self) -> str:
        """The report as lines of text, like ``seff`` prints for a job."""
        from .text import format_report

        return format_report(self)

    def __str__(self) -> str:
        return self.format()


class EfficiencyMeter:
    """Measure what the workers of ``client`` do from :meth:`start` to :meth:`report`.

    Parameters
    ----------
    client
        A connected :class:`distributed.Client`.
    label
        Shown in the report's title, e.g. the deployment id and backend.
    startup_seconds
        Shown in the report: how long the deployment took to start.

    Examples
    --------
    >>> meter = EfficiencyMeter(client).start()      # doctest: +SKIP
    >>> total = big_array.sum().compute()            # doctest: +SKIP
    >>> print(meter.report())                        # doctest: +SKIP
    """

    def __init__(
        self, client: Any, *, label: str = "", startup_seconds: float | None = None
    ) -> None:
        self.client = client
        self.label = label
        self.startup_seconds = startup_seconds
        self._start: dict[str, Any] | None = None
        self._usage: dict[str, dict[str, Any]] = {}
        self._large_graphs: list[str] = []
        self._restore_warnings: Callable[[], None] | None = None
        #: Clusters the script kept for itself (adoption off); named by the report.
        self.script_clusters: list[str] = []

    def start(self) -> EfficiencyMeter:
        """Take the starting snapshot; returns the meter itself."""
        probes.shipped()
        self._start, self._usage = _answer_within(
            _ANSWER_TIMEOUT,
            lambda: (
                self.client.run_on_scheduler(probes.task_stream_start),
                _usage_by_worker(self.client),
            ),
        )
        self._restore_warnings = _watch_large_graph_warnings(self._large_graphs)
        return self

    def stop(self) -> EfficiencyReport:
        """Report on the window since :meth:`start` and stop watching warnings."""
        try:
            return self.report()
        finally:
            if self._restore_warnings is not None:
                self._restore_warnings()
                self._restore_warnings = None

    def report(self) -> EfficiencyReport:
        """Report on the window from :meth:`start` until now.

        Raises
        ------
        RuntimeError
            :meth:`start` was not called.
        TimeoutError
            The scheduler or the workers did not answer within 10 s.
        """
        if self._start is None:
            raise RuntimeError("The meter has not started: call EfficiencyMeter.start() first.")
        start_index = self._start["index"]
        summary, usage = _answer_within(
            _ANSWER_TIMEOUT,
            lambda: (
                self.client.run_on_scheduler(probes.task_stream_summary, start_index=start_index),
                _usage_by_worker(self.client),
            ),
        )
        return build_report(
            started=self._start["time"],
            start_usage=self._usage,
            end_usage=usage,
            summary=summary,
            label=self.label,
            startup_seconds=self.startup_seconds,
            large_graph=max(self._large_graphs, key=_size_of, default=None),
            script_clusters=tuple(self.script_clusters),
        )


def _usage_by_worker(client: Any) -> dict[str, dict[str, Any]]:
    answers = client.run(probes.process_usage, on_error="return")
    return {address: answer for address, answer in answers.items() if isinstance(answer, dict)}


def _answer_within(timeout: float, ask: Callable[[], Any]) -> Any:
    """Run ``ask`` in a helper thread and return its answer, or raise after ``timeout`` s."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = ask()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="daskdeploy-efficiency", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the scheduler and workers did not answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _watch_large_graph_warnings(sink: list[str]) -> Callable[[], None]:
    """Record distributed's "Sending large graph of size X" warnings while still showing them."""
    original = warnings.showwarning

    def showwarning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if text.startswith("Sending large graph of size "):
            sink.append(text[len("Sending large graph of size ") :].split(".\n")[0].rstrip("."))
        original(message, category, *args, **kwargs)

    warnings.showwarning = showwarning

    def restore() -> None:
        if warnings.showwarning is showwarning:
            warnings.showwarning = original

    return restore


def _size_of(text: str) -> float:
    from dask.utils import parse_bytes

    try:
        return float(parse_bytes(text.replace(" ", "")))
    except (ValueError, TypeError):
        return 0.0


def _joins_and_leaves(
    events: list[tuple[float, str, str]], since: float
) -> tuple[dict[str, float], dict[str, float]]:
    joined: dict[str, float] = {}
    left: dict[str, float] = {}
    for stamp, action, address in events:
        if stamp < since:
            continue
        if action == "add-worker":
            joined.setdefault(address, stamp)
        elif action == "remove-worker":
            left[address] = stamp
    return joined, left


def build_report(
    *,
    started: float,
    start_usage: Mapping[str, Mapping[str, Any]],
    end_usage: Mapping[str, Mapping[str, Any]],
    summary: Mapping[str, Any],
    label: str = "",
    startup_seconds: float | None = None,
    large_graph: str | None = None,
    script_clusters: tuple[str, ...] = (),
) -> EfficiencyReport:
    """Turn two snapshots and the scheduler's task summary into an :class:`EfficiencyReport`.

    A pure function of its inputs (see :mod:`daskdeploy.probes` for their shape).
    """
    ended = summary["time"]
    joined, left = _joins_and_leaves(summary.get("events", []), started)
    per_worker_tasks = summary.get("workers", {})
    workers = []
    for address, info in sorted(summary.get("workers_now", {}).items()):
        usage = end_usage.get(address)
        if usage is None:
            continue
        before = start_usage.get(address)
        same_process = before is not None and before["pid"] == usage["pid"]
        cpu = usage["cpu_seconds"] - (before["cpu_seconds"] if same_process else 0.0)
        since = started if same_process else max(joined.get(address, started), started)
        tasks = per_worker_tasks.get(address, {})
        workers.append(
            WorkerUsage(
                address=address,
                threads=int(info["threads"]),
                seconds=max(ended - since, 0.0),
                cpu_seconds=max(cpu, 0.0),
                peak_memory=int(usage["peak_memory"]),
                memory_limit=int(info.get("memory_limit") or 0),
                task_seconds=float(tasks.get("compute", 0.0)),
                tasks=int(tasks.get("tasks", 0)),
                process=f"{usage['host']}:{usage['pid']}",
                joined_during=not same_process,
            )
        )
    current = {worker.address for worker in workers}
    hosts = _host_loads(start_usage, end_usage, workers, max(ended - started, 0.0))
    report = EfficiencyReport(
        wall_seconds=max(ended - started, 0.0),
        workers=tuple(workers),
        tasks=int(summary.get("finished", summary.get("tasks", 0))),
        erred=int(summary.get("erred", 0)),
        action_seconds=dict(summary.get("seconds", {})),
        recorded_tasks=int(summary.get("tasks", 0)),
        workers_left=len(set(left) - current),
        startup_seconds=startup_seconds,
        large_graph=large_graph,
        label=label,
        hosts=hosts,
        script_clusters=script_clusters,
    )
    return _with_hints(report)


def _host_loads(
    start_usage: Mapping[str, Mapping[str, Any]],
    end_usage: Mapping[str, Mapping[str, Any]],
    workers: list[WorkerUsage],
    window: float,
) -> tuple[HostLoad, ...]:
    """Per host: cores busy during the window, and how many of them were not our workers."""
    loads = []
    for host in sorted({usage["host"] for usage in end_usage.values()}):
        pairs = [
            (start_usage[address].get("host_cpu"), usage.get("host_cpu"), usage)
            for address, usage in end_usage.items()
            if usage["host"] == host and address in start_usage
        ]
        pairs = [pair for pair in pairs if pair[0] and pair[1]]
        if not pairs or window <= 0:
            continue
        (busy0, total0), (busy1, total1), usage = pairs[0]
        if total1 <= total0:
            continue
        cores = int(usage.get("host_cores") or 1)
        busy = (busy1 - busy0) / (total1 - total0) * cores
        ours = (
            sum(
                cpu
                for process, cpu in {w.process: w.cpu_seconds for w in workers}.items()
                if process.rsplit(":", 1)[0] == host
            )
            / window
        )
        loads.append(HostLoad(host, cores, busy, max(busy - ours, 0.0)))
    return tuple(loads)


def _with_hints(report: EfficiencyReport) -> EfficiencyReport:
    from dataclasses import replace

    return replace(report, hints=tuple(efficiency_hints(report)))


def started_meter_or_none(client: Any, **kwargs: Any) -> EfficiencyMeter | None:
    """Start a meter, or warn and return ``None`` if the cluster does not answer in time."""
    import logging

    try:
        return EfficiencyMeter(client, **kwargs).start()
    except Exception as exc:
        logging.getLogger(__name__).warning("The CPU-efficiency report is off: %s", exc)
        return None
