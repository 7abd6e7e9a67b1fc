"""Adoption's cost: ``daskdeploy run`` of a script that makes no cluster, against before it.

Under ``daskdeploy run`` daskdeploy installs hooks for the clusters and schedulers a
script makes for itself (:mod:`daskdeploy.adoption`). This section checks that a script
that makes none (``examples/pi.py``) pays nothing for them: the same command runs on the
code of this checkout (A) and on the code of the commit just before adoption (B, taken
with ``git archive`` into a temporary directory and put first on ``PYTHONPATH``, so both
use this Python and its packages), alternating A B A B after an untimed warm-up of each
(a smoke run: one run of each, no warm-up).
It also times installing and removing the hooks in this process.

Without git or the repository's history the section is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from common import median, ratio

__all__ = ["run"]

REPO = Path(__file__).resolve().parents[1]
MARKER_FILE = "src/daskdeploy/adoption/__init__.py"
"""The file whose first commit introduced adoption; the baseline is its parent."""
TARGET = 1.03
"""Maximum ratio of median wall times, with adoption / before it."""
RUNS, SMOKE_RUNS = 7, 1
SAMPLES, SMOKE_SAMPLES = 4_000_000, 400_000


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _baseline_source(into: Path) -> str:
    """Extract ``src/`` as it was before adoption into ``into``; return the commit."""
    added = _git("log", "--diff-filter=A", "--format=%H", "--", MARKER_FILE).splitlines()
    if not added:
        raise RuntimeError(f"no commit adds {MARKER_FILE}")
    baseline = _git("rev-parse", f"{added[-1]}^")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", baseline, "src/daskdeploy"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return baseline


def _hooks_microseconds(rounds: int = 200) -> float:
    """Median time to install and remove every adoption hook, in this process."""
    import distributed  # noqa: F401 - imported under `daskdeploy run` already

    from daskdeploy.adoption import hooks

    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        hooks.install()()
        samples.append((time.perf_counter() - t0) * 1e6)
    return median(samples) or 0.0


def run(*, repeats: int, smoke: bool, meter: Any, notes: list[str]) -> dict[str, Any]:
    """Time ``daskdeploy run -n 2 --quiet examples/pi.py`` with and without adoption.

    Returns
    -------
    dict
        ``baseline`` (the commit before adoption), ``command``, ``seconds`` (all runs)
        and ``median`` for ``adopting`` and ``before``, ``ratio``, ``hooks_us`` (install
        plus removal), ``background_cores``, ``target`` and ``targets`` (run_all's format).
    """
    runs = SMOKE_RUNS if smoke else max(RUNS, repeats)
    samples = SMOKE_SAMPLES if smoke else SAMPLES
    script = REPO / "examples" / "pi.py"
    command = [sys.executable, "-m", "daskdeploy", "run", "-n", "2", "--quiet", str(script)]
    command += ["--samples", str(samples)]
    seconds: dict[str, list[float]] = {"adopting": [], "before": []}
    background: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="bench-adoption-") as tmp:
        try:
            baseline = _baseline_source(Path(tmp))
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            reason = f"no baseline to compare with (needs git and the history): {exc!r}"
            notes.append(f"adoption: {reason}")
            return {"error": reason, "targets": []}
        environments = {
            "adopting": dict(os.environ),
            "before": {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")},
        }

        def timed(side: str) -> float:
            t0 = time.perf_counter()
            subprocess.run(
                command, env=environments[side], cwd=tmp, check=True, capture_output=True,
                timeout=300,
            )  # fmt: skip
            return time.perf_counter() - t0

        try:
            for side in seconds if not smoke else ():  # warm-up, untimed (none in a smoke run)
                timed(side)
            for i in range(runs):
                order = ["adopting", "before"] if i % 2 == 0 else ["before", "adopting"]
                with meter.interval() as load:
                    for side in order:
                        seconds[side].append(timed(side))
                background.append(load["background_cores"])
        except subprocess.SubprocessError as exc:
            notes.append(f"adoption: {exc!r}")
    medians = {side: median(values) for side, values in seconds.items()}
    value = ratio(medians["adopting"], medians["before"])
    return {
        "baseline": baseline,
        "command": " ".join(["daskdeploy", *command[3:]]).replace(str(REPO) + "/", ""),
        "runs": runs,
        "seconds": seconds,
        "median": medians,
        "ratio": value,
        "hooks_us": _hooks_microseconds(),
        "background_cores": background,
        "target": TARGET,
        "targets": [
            {
                "name": "adoption: daskdeploy run of a script without a cluster vs before adoption",
                "target": f"<= {TARGET}",
                "value": value,
                "met": None if value is None else value <= TARGET,
            }
        ],
    }
