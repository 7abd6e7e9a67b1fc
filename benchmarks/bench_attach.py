"""Benchmark: ``daskdeploy run --attach`` to a named deployment against a fresh ``daskdeploy run``.

A scientist who iterates (edit, run, look, run again) pays the deployment's start-up on
every fresh ``daskdeploy run``: jobs queue, workers import dask and connect. Attached to a
deployment started once with ``daskdeploy up``, a run pays only for its own Python start,
the TLS connection and the work. One run of this script measures both, in the same run,
on a private SLURM cluster on localhost (:class:`daskdeploy.testing.slurm.LocalSlurm`;
root and ``apt-get install slurm-wlm munge``) or with ``--backend local``::

    python benchmarks/bench_attach.py [--backend slurm] [--workers 2] [--repeats 5]
                                      [--smoke] [--json PATH]

Each repeat times, as wall-clock seconds of the whole command, the pi example
(``examples/pi.py``, unchanged) run both ways, alternating which goes first:

* *fresh*: ``daskdeploy run --backend B -n N -q examples/pi.py ...``;
* *attach*: ``daskdeploy run --attach bench -q examples/pi.py ...`` on a deployment
  ``daskdeploy up bench --backend B -n N`` started once before the first repeat (its
  start-up is reported separately). The first attached run is reported apart too: the
  target is about the second and later ones.

Each run's *start-up* is its wall-clock time minus the example's own ``elapsed:`` (the
computation, the same both ways): Python start, imports, deploying or attaching, and
teardown. Target: attach start-up / fresh start-up <= 0.2 (medians); the whole-run
ratio is reported too, and the floor both pay: a bare ``python -c "import dask.array,
distributed"`` (the raw libraries' import, timed in the same run). Both ways must print
the same answer. The deployment is ended with ``daskdeploy down`` at the end, and the
SLURM cluster stopped.

This is a benchmark, not a test: it prints a table and writes JSON and never fails on a
missed target. It exits with status 2, saying why, when SLURM cannot run here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import LoadMeter, background_note, machine_info, median, ratio

REPO = Path(__file__).resolve().parents[1]
PI = REPO / "examples" / "pi.py"
TARGET = 0.2
NAME = "bench"
#: Marks the processes of this benchmark (supervisor, workers) for the load meter.
MARK = "DASKDEPLOY_BENCH_ATTACH"


def _timed(
    command: list[str], env: dict[str, str], timeout: float = 600
) -> tuple[float, float, str]:
    """Run ``command``; return its wall-clock seconds, the example's own ``elapsed``
    (its computation) and its ``pi ~`` line."""
    began = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    answer = next((line for line in lines if line.startswith("pi ~")), "")
    elapsed = next(float(line.split()[1]) for line in lines if line.startswith("elapsed:"))
    return seconds, elapsed, answer


def _import_floor(env: dict[str, str]) -> float:
    """Seconds a bare ``python -c "import dask.array, distributed"`` takes: every run pays it."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import dask.array, distributed"], env=env, check=True, timeout=120
    )
    return time.perf_counter() - began


def _daskdeploy(*args: str) -> list[str]:
    return [sys.executable, "-m", "daskdeploy", *args]


def measure(backend: str, workers: int, repeats: int, samples: int, env: dict[str, str]) -> dict:
    """Time fresh and attached runs of the pi example; return every figure."""
    pi_args = [str(PI), "--samples", str(samples), "--chunk", str(max(1, samples // 8))]
    began = time.perf_counter()
    up = subprocess.run(
        _daskdeploy("up", NAME, "--backend", backend, "-n", str(workers), "--idle-timeout", "0"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    up_seconds = time.perf_counter() - began
    if up.returncode != 0:
        raise RuntimeError(f"daskdeploy up failed:\n{up.stderr[-2000:]}")
    runs: dict[str, list[tuple[float, float]]] = {"fresh": [], "attach": []}
    answers: set[str] = set()
    meter = LoadMeter(marker=(MARK, env[MARK]))
    attach = _daskdeploy("run", "--attach", NAME, "-q", *pi_args)
    fresh = [*_daskdeploy("run", "--backend", backend, "-n", str(workers), "-q"), *pi_args]
    try:
        with meter.interval() as load:
            first_attach, _, answer = _timed(attach, env)
            answers.add(answer)
            for repeat in range(repeats):
                for side in ("fresh", "attach") if repeat % 2 == 0 else ("attach", "fresh"):
                    seconds, computing, answer = _timed(fresh if side == "fresh" else attach, env)
                    runs[side].append((seconds, computing))
                    answers.add(answer)
    finally:
        subprocess.run(_daskdeploy("down", NAME), env=env, capture_output=True, timeout=300)
    floor = [_import_floor(env) for _ in range(max(3, repeats))]
    wall = {side: [total for total, _ in found] for side, found in runs.items()}
    overhead = {side: [total - busy for total, busy in found] for side, found in runs.items()}
    return {
        "backend": backend,
        "workers": workers,
        "samples": samples,
        "up_seconds": up_seconds,
        "first_attach_seconds": first_attach,
        "fresh_seconds": wall["fresh"],
        "attach_seconds": wall["attach"],
        "fresh_median": median(wall["fresh"]),
        "attach_median": median(wall["attach"]),
        "ratio": ratio(median(wall["attach"]), median(wall["fresh"])),
        "fresh_startup_seconds": overhead["fresh"],
        "attach_startup_seconds": overhead["attach"],
        "fresh_startup_median": median(overhead["fresh"]),
        "attach_startup_median": median(overhead["attach"]),
        "startup_ratio": ratio(median(overhead["attach"]), median(overhead["fresh"])),
        "import_floor_seconds": floor,
        "import_floor_median": median(floor),
        "target": TARGET,
        "same_answer": len(answers) == 1 and "" not in answers,
        "answer": sorted(answers),
        "background_cores": load["background_cores"],
    }


def _table(result: dict[str, Any]) -> str:
    rows = [
        f"backend {result['backend']}, {result['workers']} workers, pi with "
        f"{result['samples']:,} samples",
        f"  daskdeploy up (once)          {result['up_seconds']:6.2f} s",
        f"  first run --attach            {result['first_attach_seconds']:6.2f} s",
        f"  fresh daskdeploy run (median) {result['fresh_median']:6.2f} s  "
        f"{[round(s, 2) for s in result['fresh_seconds']]}",
        f"  run --attach, 2nd+ (median)   {result['attach_median']:6.2f} s  "
        f"{[round(s, 2) for s in result['attach_seconds']]}",
        f"  ratio attach / fresh, whole   {result['ratio']:6.2f}",
        f"  start-up (wall - computing)   fresh {result['fresh_startup_median']:.2f} s, attach "
        f"{result['attach_startup_median']:.2f} s",
        f"  floor: bare import of dask.array, distributed   {result['import_floor_median']:.2f} s "
        f"(paid by both)",
        f"  ratio attach / fresh start-up {result['startup_ratio']:6.2f}   (target <= {TARGET}: "
        f"{'met' if result['startup_ratio'] <= TARGET else 'MISSED'})",
        f"  same answer both ways         {result['same_answer']} {result['answer']}",
    ]
    note = background_note(result["background_cores"], os.cpu_count())
    return "\n".join(rows + ([f"  {note}"] if note else []))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="slurm", choices=("slurm", "local"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20_000_000)
    parser.add_argument("--smoke", action="store_true", help="1 repeat, 2 million samples")
    parser.add_argument("--json", type=Path, help="write the figures here")
    options = parser.parse_args(argv)
    if options.smoke:
        options.repeats, options.samples = 1, 2_000_000
    slurm = None
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache, "PYTHONUNBUFFERED": "1", MARK: cache}
        if options.backend == "slurm":
            from daskdeploy.testing.slurm import LocalSlurm, unavailable_reason

            reason = unavailable_reason()
            if reason:
                print(f"bench_attach: SLURM cannot run here: {reason}", file=sys.stderr)
                sys.exit(2)
            slurm = LocalSlurm(nodes=2, cpus_per_node=8, memory_mb=16000).start()
            env.update(slurm.env)
        try:
            result = measure(
                options.backend, options.workers, options.repeats, options.samples, env
            )
        finally:
            if slurm is not None:
                slurm.stop()
    result["machine"] = machine_info()
    print(_table(result))
    if options.json:
        options.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
