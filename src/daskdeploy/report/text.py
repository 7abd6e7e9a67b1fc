"""The efficiency report as text: the lines ``daskdeploy run --report`` prints."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .efficiency import EfficiencyReport

__all__ = ["format_report"]

_LABEL_WIDTH = 16
_WIDTH = 88


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.2f} h"
    if value >= 120:
        return f"{value / 60:.1f} min"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 0.1:
        return f"{value:.2f} s"
    return f"{value * 1000:.2g} ms"


def _bytes(value: int) -> str:
    from dask.utils import format_bytes

    return format_bytes(value)


def _line(label: str, text: str) -> str:
    return f"  {label:<{_LABEL_WIDTH}}{text}"


def _workers_line(report: EfficiencyReport) -> str:
    counts: dict[int, int] = {}
    for worker in report.workers:
        counts[worker.threads] = counts.get(worker.threads, 0) + 1
    parts = [
        f"{workers} x {threads} thread{'s' if threads != 1 else ''}"
        for threads, workers in sorted(counts.items())
    ]
    text = " + ".join(parts) or "none"
    processes = len({worker.process for worker in report.workers})
    if report.workers and processes != len(report.workers):
        text += f" in {processes} process{'es' if processes != 1 else ''}"
    joined = sum(worker.joined_during for worker in report.workers)
    if joined:
        text += f"; {joined} joined during the run (CPU counted from their start)"
    if report.workers_left:
        text += f"; {report.workers_left} left during the run (not counted)"
    return text


def _memory_line(report: EfficiencyReport) -> str:
    peaks = sorted(worker.peak_memory for worker in report.workers)
    if not peaks:
        return "no workers"
    if len(peaks) == 1:
        text = _bytes(peaks[0])
    else:
        text = f"{_bytes(peaks[-1])} max, {_bytes(peaks[len(peaks) // 2])} median, per worker"
    limits = {worker.memory_limit for worker in report.workers}
    if len(limits) == 1 and next(iter(limits)):
        text += f" (limit {_bytes(next(iter(limits)))} each)"
    return text


def _tasks_line(report: EfficiencyReport) -> str:
    if not report.tasks:
        return "none ran"
    text = f"{report.tasks:,}"
    if report.erred:
        text += f" ({report.erred} failed)"
    if report.mean_task_seconds is not None:
        text += f", {_seconds(report.mean_task_seconds)} each on average"
    if report.busy_fraction is not None:
        text += f"; threads busy in tasks {report.busy_fraction:.0%} of the time"
    return text


def _data_line(report: EfficiencyReport) -> str:
    if report.data_fraction is None:
        return "-"
    parts = [
        f"{action} {_seconds(seconds)}"
        for action, seconds in sorted(report.action_seconds.items())
        if action != "compute" and seconds > 0
    ]
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{report.data_fraction:.1%} of task time{detail}"


def format_report(report: EfficiencyReport) -> str:
    """Render ``report`` as an indented block with a title, figures and hints."""
    title = "CPU-efficiency report" + (f" for {report.label}" if report.label else "")
    wall = _seconds(report.wall_seconds)
    if report.startup_seconds is not None:
        wall += f" since the workers connected (start-up took {_seconds(report.startup_seconds)})"
    efficiency = report.cpu_efficiency
    lines = [
        f"daskdeploy: {title}",
        _line("wall time", wall),
        _line("workers", _workers_line(report)),
        _line(
            "CPU time",
            f"{_seconds(report.cpu_seconds)} used on the workers, of "
            f"{_seconds(report.thread_seconds)} worker-thread time",
        ),
        _line("CPU efficiency", "-" if efficiency is None else f"{efficiency:.1%}"),
        _line("tasks", _tasks_line(report)),
        _line("moving data", _data_line(report)),
        _line("peak memory", _memory_line(report)),
    ]
    for host in report.hosts:
        lines.append(
            _line(
                "host load",
                f"{host.host}: {host.busy_cores:.1f} of {host.cores} cores busy, "
                f"{host.other_cores:.1f} of them by other processes",
            )
        )
    for hint in report.hints:
        lines.extend(
            textwrap.wrap(hint, _WIDTH, initial_indent="  hint: ", subsequent_indent="        ")
        )
    if not report.hints and efficiency is not None:
        lines.append("  (no sign of a problem)")
    return "\n".join(lines)
