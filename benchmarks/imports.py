"""Import time: ``python -c "import daskdeploy"`` against ``python -c "import distributed"``.

Every run is a fresh interpreter (this one, ``sys.executable``) started in an empty
temporary directory with the same environment, timed from the start of the subprocess to
its exit. An untimed warm-up of each statement fills the page cache first; then the
statements take turns in rotating order and the medians are compared. ``python -c pass``
is timed the same way, so the report also shows the import cost net of interpreter
start-up.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from typing import Any

from common import median, ratio

__all__ = ["STATEMENTS", "run"]

STATEMENTS = {
    "daskdeploy": "import daskdeploy",
    "distributed": "import distributed",
    "python": "pass",
}
"""What each timed interpreter runs; ``python`` is the bare interpreter start-up."""
TARGET = 1.1
"""Maximum ratio of median wall times, daskdeploy / distributed."""
RUNS, SMOKE_RUNS = 9, 1


def _time_statement(statement: str, cwd: str) -> float:
    """Wall time of one fresh interpreter running ``statement``; raises if it fails."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", statement], cwd=cwd, check=True, capture_output=True, timeout=120
    )
    return time.perf_counter() - t0


def run(
    *, repeats: int, smoke: bool, meter: Any, notes: list[str], runs: int | None = None
) -> dict[str, Any]:
    """Time each statement ``runs`` times in fresh interpreters, rotating their order.

    Parameters
    ----------
    repeats
        The run's ``--repeats``: asks for more than the default rounds if larger.
    smoke
        One round (when ``runs`` is not given) and no warm-up: checks that it runs.
    meter
        A :class:`common.LoadMeter`: background load during each round.
    notes
        Receives a line when a statement fails.
    runs
        Timed runs per statement (default: 1 when smoke, else max(9, repeats)).

    Returns
    -------
    dict
        ``runs``, ``statements``, ``seconds`` (all runs) and ``median`` per statement,
        ``net_median`` (minus the bare interpreter's median), ``ratio`` (daskdeploy /
        distributed, whole wall time), ``net_ratio``, ``background_cores``, ``target``
        and ``targets`` (run_all's format).
    """
    runs = runs or (SMOKE_RUNS if smoke else max(RUNS, repeats))
    names = list(STATEMENTS)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    background: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as cwd:
        try:
            for name in names if not smoke else ():  # warm-up, untimed (none in a smoke run)
                _time_statement(STATEMENTS[name], cwd)
            for i in range(runs):
                with meter.interval() as load:
                    for name in names[i % len(names) :] + names[: i % len(names)]:
                        seconds[name].append(_time_statement(STATEMENTS[name], cwd))
                background.append(load["background_cores"])
        except subprocess.SubprocessError as exc:
            notes.append(f"imports: {exc!r}")
    medians = {name: median(values) for name, values in seconds.items()}
    bare = medians["python"]
    net = {
        name: None if medians[name] is None or bare is None else medians[name] - bare
        for name in ("daskdeploy", "distributed")
    }
    value = ratio(medians["daskdeploy"], medians["distributed"])
    return {
        "runs": runs,
        "statements": STATEMENTS,
        "order": ("no warm-up (smoke), " if smoke else "one untimed warm-up each, then ")
        + "rotating order per round",
        "seconds": seconds,
        "median": medians,
        "net_median": net,
        "ratio": value,
        "net_ratio": ratio(net["daskdeploy"], net["distributed"]),
        "background_cores": background,
        "target": TARGET,
        "targets": [
            {
                "name": "imports: python -c 'import daskdeploy' vs 'import distributed'",
                "target": f"<= {TARGET}",
                "value": value,
                "met": None if value is None else value <= TARGET,
            }
        ],
    }
