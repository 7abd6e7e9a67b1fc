"""A progress bar on the terminal for whatever the deployment is computing.

``daskdeploy run`` cannot see the script's ``dask.compute`` calls, so the bar asks the
scheduler twice a second how many tasks are in each state and draws one line on stderr:

    [##########----------]  52%  1,040/2,000 tasks  0:07  dashboard http://127.0.0.1:8787/status

The bar appears once a computation has run for a second (short ones stay silent), with
the dashboard link on the line or, if the terminal is too narrow, once above it. It is
wiped when no task is left to run and before anything else is written to the guarded
streams (:meth:`ProgressBar.guard`), so the script's own output is never glued to it.
``daskdeploy run`` draws it only when stderr is a terminal.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from .. import probes

__all__ = ["ProgressBar", "render_line", "tasks_left"]

_TO_RUN = ("released", "waiting", "queued", "no-worker", "processing")
"""Task states that still have to run (``released`` only briefly, for new graphs)."""
_BAR_WIDTH = 20


def tasks_left(counts: Mapping[str, int]) -> int:
    """Tasks that still have to run, from the scheduler's counts per state."""
    return sum(counts.get(state, 0) for state in _TO_RUN if state != "released")


def render_line(done: int, total: int, elapsed: float, dashboard: str | None, width: int) -> str:
    """One line of the bar, cut to ``width`` characters.

    Examples
    --------
    >>> render_line(5, 10, 65.0, None, 80)
    '[##########----------]  50%  5/10 tasks  1:05'
    """
    fraction = done / total if total else 0.0
    filled = round(fraction * _BAR_WIDTH)
    minutes, seconds = divmod(int(elapsed), 60)
    line = (
        f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {fraction:4.0%}  "
        f"{done:,}/{total:,} tasks  {minutes}:{seconds:02d}"
    )
    if dashboard and len(line) + len(dashboard) + 12 <= width:
        line += f"  dashboard {dashboard}"
    return line[: max(width, 1)]


class ProgressBar:
    """Draw the progress of the scheduler's computations on a terminal until stopped.

    Parameters
    ----------
    client
        A connected :class:`distributed.Client`.
    stream
        Where to draw (a terminal); stderr by default.
    dashboard
        Link printed at the end of the line when it fits.
    interval
        Seconds between two questions to the scheduler.
    delay
        Seconds a computation must run before the bar appears.
    """

    def __init__(
        self,
        client: Any,
        stream: TextIO,
        *,
        dashboard: str | None = None,
        interval: float = 0.5,
        delay: float = 1.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.dashboard = dashboard
        self.interval = interval
        self.delay = delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="daskdeploy-progress", daemon=True)
        self._lock = threading.RLock()
        self._shown = False
        self._link_shown = False
        self._began: float | None = None
        self._done_before = 0

    def start(self) -> ProgressBar:
        """Start drawing in a background thread; returns the bar itself."""
        probes.shipped()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop drawing and wipe the line."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.wipe()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                counts = self.client.run_on_scheduler(probes.task_state_counts)
            except Exception:  # the cluster is going away: nothing more to show
                return
            self._update(counts)

    def _update(self, counts: Mapping[str, int]) -> None:
        left = tasks_left(counts)
        total = sum(count for state, count in counts.items() if state != "forgotten")
        if left == 0:  # idle: what is in memory now came from earlier computations
            self._began, self._done_before = None, total
            self.wipe()
            return
        if self._began is None:
            self._began = time.monotonic()
        elapsed = time.monotonic() - self._began
        if elapsed < self.delay:
            return
        width = shutil.get_terminal_size((80, 24)).columns - 1
        done_before = min(self._done_before, total - left)
        line = render_line(
            total - left - done_before, total - done_before, elapsed, self.dashboard, width
        )
        with self._lock:
            if self.dashboard and not self._link_shown and self.dashboard not in line:
                self.stream.write(f"\r\x1b[Kdaskdeploy: computing; dashboard {self.dashboard}\n")
            self._link_shown = True
            self.stream.write(f"\r{line}\x1b[K")
            self.stream.flush()
            self._shown = True

    def wipe(self) -> None:
        """Remove the bar from the screen (it comes back at the next update if still busy)."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False

    def guard(self, stream: TextIO) -> TextIO:
        """Wrap ``stream`` so that writing to it first wipes the bar off the line."""
        return _WipingStream(stream, self)


class _WipingStream:
    """A text stream that wipes the progress bar before each write, then writes."""

    def __init__(self, stream: TextIO, bar: ProgressBar) -> None:
        self._stream = stream
        self._bar = bar

    def write(self, text: str) -> int:
        with self._bar._lock:
            if text:
                self._bar.wipe()
            return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
