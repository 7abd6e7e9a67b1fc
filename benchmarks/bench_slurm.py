"""Benchmark daskdeploy's ``slurm`` backend against a hand-built dask-jobqueue ``SLURMCluster``.

One run, one private SLURM cluster on localhost (:class:`daskdeploy.testing.slurm.LocalSlurm`,
4 nodes x 8 CPUs by default; it needs root and ``apt-get install slurm-wlm munge``)::

    python benchmarks/bench_slurm.py [--workers 2,8,16] [--repeats 3] [--smoke] [--json PATH]

1. **Start-up at scale.** For every N in ``--workers``: ``daskdeploy.deploy("slurm",
   workers=N, quiet=True)`` against the raw library doing the same work,
   ``SLURMCluster(cores=1, processes=1, memory="1GiB", ...)``, ``cluster.scale(N)`` and
   ``Client(cluster).wait_for_workers(N)``. Both clocks start just before the call that
   creates the scheduler and stop at two moments: *jobs running*, when ``squeue`` (polled
   every 50 ms from a thread) first lists all N worker jobs as RUNNING, and *connected*,
   when N workers have connected. The sides alternate, daskdeploy first on odd repeats and
   raw first on even ones. Targets: jobs running <= 0.7x raw at N=16 (one job array
   instead of N ``sbatch`` calls); connected <= 1.0x raw at every N.
2. **Start-up CPU of one worker.** Runs with N=1 (extra ones, one pair per repeat, when
   ``--workers`` lacks 1): right after the worker connects, the user + system CPU seconds
   of its job's process tree, the ``distributed.cli.dask_worker`` process (the nanny) and
   the worker process it spawned. daskdeploy starts workers with ``--no-dashboard``.

The machine's other load distorts the wall-clock figures (not the CPU seconds). With
psutil every timed interval also records how many CPU cores processes *other* than this
one, the SLURM daemons and the jobs used meanwhile; the table warns when that is not
negligible.

This is a benchmark, not a test: it prints a table and writes JSON (raw timings, medians,
ratios, machine information) and never fails on a missed target. It exits with status 2,
saying why, when no local SLURM cluster can run here. :func:`main` returns the JSON's
content, so a smoke test can run ``main(["--smoke", "--json", str(tmp_path / "s.json")])``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from common import LoadMeter, background_note, loadavg, machine_info, median, ratio

__all__ = ["main"]

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "slurm.json"

JOBS_RUNNING_TARGET = 0.7
"""Maximum ratio daskdeploy / raw of the time until all jobs run, at JOBS_RUNNING_TARGET_N."""
JOBS_RUNNING_TARGET_N = 16
CONNECTED_TARGET = 1.0
"""Maximum ratio daskdeploy / raw of the time until all workers are connected, at every N."""

DEFAULT_WORKERS = (2, 8, 16)
DEFAULT_REPEATS = 3
SMOKE_WORKERS = (2,)
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 300.0
"""How long one side may take to connect N workers before the run counts as failed."""
RUNNING_GRACE_SECONDS = 30.0
"""How long after connect the squeue watcher may still take to see every job RUNNING."""

WORKER_MODULE = "distributed.cli.dask_worker"
DD_PREFIX = "dd-"
SIDES = ("daskdeploy", "raw")


@contextlib.contextmanager
def _sigint_kept() -> Iterator[None]:
    """Undo the SIGINT handler that importing dask_jobqueue installs (it calls sys.exit)."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


def _slurm_cluster_class() -> Any:
    with _sigint_kept():
        from dask_jobqueue import SLURMCluster

        import daskdeploy.backends.jobqueue.cluster  # noqa: F401  (imported by deploy: not timed)
    return SLURMCluster


def _unavailable() -> str | None:
    if importlib.util.find_spec("dask_jobqueue") is None:
        return "dask-jobqueue is not installed (pip install 'daskdeploy[slurm]')."
    from daskdeploy.testing.slurm import unavailable_reason

    return unavailable_reason()


@contextlib.contextmanager
def _slurm_environment(env: dict[str, str]) -> Iterator[None]:
    """Point SLURM clients (daskdeploy's and dask-jobqueue's) at the private cluster only.

    ``SLURM_*``/``SBATCH_*``/``SQUEUE_*`` variables from outside (a surrounding job, a
    session's SLURM_CONF) are hidden for the run and restored afterwards.
    """
    prefixes = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_")
    saved = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(prefixes)]:
            del os.environ[key]
        os.environ.update(saved)


# --------------------------------------------------------------------------- helpers


class QueueWatcher:
    """Poll ``squeue`` from a thread until ``want`` jobs of one side are RUNNING.

    Times are ``time.perf_counter()`` values at the *return* of the ``squeue`` call that
    first showed the state: an upper bound, late by at most one poll interval plus one
    ``squeue`` call (both recorded).
    """

    def __init__(
        self,
        slurm: Any,
        want: int,
        belongs: Callable[[dict[str, str]], bool],
        interval: float = POLL_SECONDS,
    ) -> None:
        self.slurm = slurm
        self.want = want
        self.belongs = belongs
        self.interval = interval
        self.t_listed: float | None = None
        self.t_running: float | None = None
        self.squeue_seconds: list[float] = []
        self.errors: list[str] = []
        self.jobs: list[dict[str, str]] = []
        self.timeline: list[list[float]] = []
        """``[time, jobs listed, jobs RUNNING]`` whenever the two counts change."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="squeue-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t_call = time.perf_counter()
            try:
                jobs = self.slurm.jobs()
            except Exception as exc:  # squeue timed out or failed: try again
                self.errors.append(repr(exc))
                jobs = None
            t_done = time.perf_counter()
            self.squeue_seconds.append(t_done - t_call)
            if jobs is not None:
                mine = [job for job in jobs if self.belongs(job)]
                running = sum(job["state"] == "RUNNING" for job in mine)
                if not self.timeline or self.timeline[-1][1:] != [len(mine), running]:
                    self.timeline.append([t_done, len(mine), running])
                if self.t_listed is None and len(mine) >= self.want:
                    self.t_listed = t_done
                if running >= self.want:
                    self.t_running = t_done
                    self.jobs = mine
                    return
            self._stop.wait(max(0.0, self.interval - (t_done - t_call)))

    def wait(self, timeout: float) -> None:
        """Give the thread ``timeout`` s to see every job RUNNING, then stop it."""
        self._thread.join(timeout)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(15)


def _worker_cpu(address: str) -> dict[str, Any]:
    """CPU seconds (user + system) of each worker job's process tree, by scheduler address.

    A tree is a ``python -m distributed.cli.dask_worker <address> ...`` process (the nanny)
    and all its descendants (the worker it spawned); children that already exited count
    through ``children_user``/``children_system``.
    """
    try:
        import psutil
    except ImportError:
        return {"per_worker": [], "processes": 0, "note": "psutil missing"}
    trees = []
    processes = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if address not in cmdline or not any(WORKER_MODULE in arg for arg in cmdline):
            continue
        with contextlib.suppress(psutil.Error):
            used = 0.0
            for member in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = member.cpu_times()
                    used += t.user + t.system + t.children_user + t.children_system
                    processes += 1
            trees.append(used)
    return {"per_worker": sorted(trees), "processes": processes}


def _worker_processes_left(marker: tuple[str, str]) -> int:
    """Count live worker processes of this cluster's jobs (not those of other clusters)."""
    try:
        import psutil
    except ImportError:
        return 0
    name, value = marker
    left = 0
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == "zombie" or not any(WORKER_MODULE in arg for arg in cmdline):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(name) == value:
                left += 1
    return left


def _wait_idle(slurm: Any, marker: tuple[str, str], notes: list[str]) -> None:
    """Wait (untimed) until squeue is empty and no worker process is left, then settle."""
    if not slurm.wait_for_no_jobs(timeout=60):
        jobs = slurm.jobs()
        notes.append(f"jobs still queued 60 s after close, cancelled: {jobs}")
        if jobs:
            slurm.run("scancel", *[job["id"] for job in jobs])
        slurm.wait_for_no_jobs(timeout=30)
    deadline = time.monotonic() + 15
    while _worker_processes_left(marker):
        if time.monotonic() > deadline:
            notes.append("worker processes still running 15 s after their jobs ended")
            break
        time.sleep(0.1)
    gc.collect()
    time.sleep(0.5)


# ------------------------------------------------------------------------ one run


def _is_daskdeploy_job(job: dict[str, str]) -> bool:
    return job["name"].startswith(DD_PREFIX) and job["comment"].startswith("daskdeploy:")


def _is_raw_job(job: dict[str, str]) -> bool:
    return not job["name"].startswith(DD_PREFIX)


class Runner:
    """Starts N workers one way or the other on the private cluster and times it."""

    def __init__(self, slurm: Any, meter: LoadMeter, args: argparse.Namespace, scratch: Path):
        from daskdeploy.testing.slurm import MARKER_VAR

        self.slurm = slurm
        self.marker = (MARKER_VAR, str(slurm.root))
        self.meter = meter
        self.poll = args.poll
        self.timeout = args.timeout
        self.scratch = scratch
        self.notes: list[str] = []
        self._slurm_cluster = _slurm_cluster_class()

    def run(self, side: str, n: int) -> dict[str, Any]:
        """One timed start-up of ``n`` workers by ``side``; closes and waits for an empty queue."""
        if self.slurm.jobs():
            raise RuntimeError(f"the queue is not empty before a run: {self.slurm.jobs()}")
        start = self._start_daskdeploy if side == "daskdeploy" else self._start_raw
        belongs = _is_daskdeploy_job if side == "daskdeploy" else _is_raw_job
        watcher = QueueWatcher(self.slurm, n, belongs, self.poll)
        resources: list[Any] = []
        try:
            with self.meter.interval() as load:
                watcher.start()
                t0 = time.perf_counter()
                address = start(n, resources)
                t_connected = time.perf_counter()
                cpu = _worker_cpu(address)
            watcher.wait(RUNNING_GRACE_SECONDS)
        finally:
            watcher.stop()
            t_close = time.perf_counter()
            for resource in reversed(resources):  # raw: the client, then the cluster
                try:
                    resource.close()
                except Exception as exc:  # close the others anyway; LocalSlurm.stop() cleans up
                    self.notes.append(f"{side} N={n}: closing {type(resource).__name__}: {exc!r}")
            close_s = time.perf_counter() - t_close
            _wait_idle(self.slurm, self.marker, self.notes)
        jobs_running = watcher.t_running - t0 if watcher.t_running is not None else None
        if jobs_running is None:
            self.notes.append(f"{side} N={n}: squeue never showed {n} jobs RUNNING")
        per_worker = cpu["per_worker"]
        return {
            "jobs_running": jobs_running,
            "connected": t_connected - t0,
            "jobs_listed": watcher.t_listed - t0 if watcher.t_listed is not None else None,
            "close": close_s,
            "background_cores": load["background_cores"],
            "squeue_seconds_median": median(watcher.squeue_seconds),
            "squeue_errors": len(watcher.errors),
            "job_ids": [job["id"] for job in watcher.jobs],
            "squeue_timeline": [
                [t - t0, listed, running] for t, listed, running in watcher.timeline
            ],
            "worker_cpu_seconds": per_worker,
            "worker_cpu_seconds_mean": statistics.fmean(per_worker) if per_worker else None,
            "worker_processes": cpu["processes"],
        }

    def _start_daskdeploy(self, n: int, resources: list[Any]) -> str:
        import daskdeploy

        client = daskdeploy.deploy("slurm", workers=n, quiet=True, timeout=self.timeout)
        resources.append(client)
        return client.scheduler.address

    def _start_raw(self, n: int, resources: list[Any]) -> str:
        import dask.config
        from distributed import Client

        # Every distributed server, the scheduler here too, makes a dask-scratch-space in
        # the temporary directory and leaves it there; daskdeploy makes and removes its own.
        with dask.config.set({"temporary-directory": str(self.scratch)}):
            cluster = self._slurm_cluster(
                cores=1,
                processes=1,
                memory="1GiB",
                walltime="00:30:00",
                python=sys.executable,
                local_directory=str(self.scratch),  # not the job's $TMPDIR: it would stay
                scheduler_options={
                    "host": "127.0.0.1",
                    "port": 0,
                    "dashboard_address": "127.0.0.1:0",
                },
                job_extra_directives=["--output=/dev/null"],
            )
        resources.append(cluster)
        cluster.scale(n)
        client = Client(cluster)
        resources.append(client)
        client.wait_for_workers(n, timeout=self.timeout)
        return cluster.scheduler_address


# --------------------------------------------------------------------------- benchmark


def _summarise_scaling(n: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    keys = ("jobs_running", "connected", "jobs_listed", "close", "worker_cpu_seconds_mean")
    medians = {
        side: {key: median([run[key] for run in runs[side]]) for key in keys} for side in SIDES
    }
    ratios = {
        key: ratio(medians["daskdeploy"][key], medians["raw"][key])
        for key in ("jobs_running", "connected")
    }
    paired = {
        key: median(
            [ratio(d[key], r[key]) for d, r in zip(runs["daskdeploy"], runs["raw"], strict=True)]
        )
        for key in ("jobs_running", "connected")
    }
    passed: dict[str, bool | None] = {
        "jobs_running": (
            ratios["jobs_running"] <= JOBS_RUNNING_TARGET
            if n == JOBS_RUNNING_TARGET_N and ratios["jobs_running"] is not None
            else None
        ),
        "connected": ratios["connected"] <= CONNECTED_TARGET
        if ratios["connected"] is not None
        else None,
    }
    late = sum(
        1
        for side in SIDES
        for run in runs[side]
        if run["jobs_running"] is not None and run["jobs_running"] > run["connected"]
    )
    return {
        "workers": n,
        "runs": runs,
        "medians": medians,
        "ratio": ratios,
        "paired_ratio_median": paired,
        "pass": passed,
        "running_seen_after_connect": late,
        "background_cores_median": median(
            [run["background_cores"] for side in SIDES for run in runs[side]]
        ),
    }


def _summarise_cpu(samples: dict[str, list[float]], background: list[float | None]) -> dict:
    medians = {side: median(samples[side]) for side in SIDES}
    return {
        "workers": 1,
        "cpu_seconds": samples,
        "medians": medians,
        "ratio": ratio(medians["daskdeploy"], medians["raw"]),
        "background_cores_median": median(background),
    }


def run_benchmark(slurm: Any, args: argparse.Namespace, meter: LoadMeter) -> dict[str, Any]:
    """Warm up, then time every N on both sides, alternating their order per repeat.

    Returns
    -------
    dict
        ``scaling`` (one entry per N), ``worker_cpu`` and ``notes``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-slurm-raw-") as scratch:
        runner = Runner(slurm, meter, args, Path(scratch))
        if args.warmup:  # untimed: imports, page cache, the controller's first jobs
            for side in SIDES:
                runner.run(side, 1)
            print("  warm-up done (one untimed N=1 run per side)", file=sys.stderr, flush=True)
        scaling: dict[int, dict[str, list[dict[str, Any]]]] = {
            n: {side: [] for side in SIDES} for n in args.workers
        }
        cpu: dict[str, list[float]] = {side: [] for side in SIDES}
        cpu_background: list[float | None] = []
        extra_cpu_run = 1 not in args.workers
        for repeat in range(1, args.repeats + 1):
            order = SIDES if repeat % 2 == 1 else SIDES[::-1]
            for n in [*args.workers, *([1] if extra_cpu_run else [])]:
                for side in order:
                    run = runner.run(side, n)
                    print(
                        f"  repeat {repeat} {side:<10} N={n:<3} jobs running "
                        f"{_fmt(run['jobs_running'])} s, connected {run['connected']:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    if n in scaling:
                        scaling[n][side].append(run)
                    if n == 1 and run["worker_cpu_seconds"]:
                        cpu[side].append(run["worker_cpu_seconds"][0])
                        cpu_background.append(run["background_cores"])
    return {
        "scaling": [_summarise_scaling(n, runs) for n, runs in scaling.items()],
        "worker_cpu": _summarise_cpu(cpu, cpu_background),
        "notes": runner.notes,
    }


# ------------------------------------------------------------------------ reporting


def _slurm_version(slurm: Any) -> str | None:
    result = slurm.run("sinfo", "--version")
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


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
    machine = result["machine"]
    settings = result["settings"]
    cpus = machine["usable_cpus"]
    lines = [
        f"daskdeploy slurm benchmark  ({cpus} CPUs, Python {machine['python']}, "
        f"distributed {machine['distributed']}, dask-jobqueue {machine['dask_jobqueue']}, "
        f"{machine['slurm']})",
        f"LocalSlurm {settings['nodes']} nodes x {settings['cpus_per_node']} CPUs; one worker "
        f"per job (1 core, 1 GiB); squeue polled every {settings['poll_seconds']:g} s",
        "",
        f"1. Start-up of N workers (median of {settings['repeats']} per side): seconds from "
        f"the call until all N jobs",
        "   are RUNNING in squeue, and until N workers are connected",
        f"   {'':>4}  {'--------- jobs RUNNING ---------':<40}"
        f"  {'---------- connected -----------':<40}",
        f"   {'N':>4}  {'daskdeploy':>10}{'raw':>8}{'ratio':>7}  {'target':<13}"
        f"  {'daskdeploy':>10}{'raw':>8}{'ratio':>7}  {'target':<13}",
    ]
    background = []
    for entry in result["scaling"]:
        m, r, ok = entry["medians"], entry["ratio"], entry["pass"]
        if entry["workers"] == JOBS_RUNNING_TARGET_N:
            run_target = f"<= {JOBS_RUNNING_TARGET:.2f} {_mark(ok['jobs_running'])}"
        else:
            run_target = ""
        conn_target = f"<= {CONNECTED_TARGET:.2f} {_mark(ok['connected'])}"
        lines.append(
            f"   {entry['workers']:>4}  {_fmt(m['daskdeploy']['jobs_running']):>10}"
            f"{_fmt(m['raw']['jobs_running']):>8}{_fmt(r['jobs_running']):>7}  {run_target:<13}"
            f"  {_fmt(m['daskdeploy']['connected']):>10}{_fmt(m['raw']['connected']):>8}"
            f"{_fmt(r['connected']):>7}  {conn_target:<13}"
        )
        background.append(entry["background_cores_median"])
    paired = ", ".join(
        f"N={entry['workers']} {_fmt(entry['paired_ratio_median']['jobs_running'])}"
        f" / {_fmt(entry['paired_ratio_median']['connected'])}"
        for entry in result["scaling"]
    )
    lines.append(f"   median of per-pair ratios (jobs RUNNING / connected): {paired}")
    queued = ", ".join(
        f"N={entry['workers']} {_fmt(entry['medians']['daskdeploy']['jobs_listed'])}"
        f" / {_fmt(entry['medians']['raw']['jobs_listed'])}"
        for entry in result["scaling"]
    )
    lines.append(f"   all N jobs in squeue (submitted), daskdeploy / raw s: {queued}")
    late = sum(entry["running_seen_after_connect"] for entry in result["scaling"])
    if late:
        lines.append(
            f"   note: in {late} run(s) squeue showed the jobs RUNNING only after the workers "
            f"had connected (squeue slower than the workers: a busy machine)"
        )
    lines.append("   " + background_note(median(background), cpus))
    cpu = result["worker_cpu"]
    lines += [
        "",
        f"2. Start-up CPU of one worker (N=1; nanny + worker processes, user + system, read "
        f"at connect; median of {len(cpu['cpu_seconds']['daskdeploy'])})",
        f"   daskdeploy {_fmt(cpu['medians']['daskdeploy'])} CPU s, raw "
        f"{_fmt(cpu['medians']['raw'])} CPU s, ratio {_fmt(cpu['ratio'])}"
        f"   (daskdeploy workers run with --no-dashboard)",
        "",
    ]
    for note in result["notes"]:
        lines.append(f"note: {note}")
    lines.append(f"Wall time {result['wall_seconds']:.1f} s; JSON: {result['json_path']}")
    return "\n".join(line.rstrip() for line in lines)


# ----------------------------------------------------------------------------- main


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 2,8,16, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be at least 1, got {text!r}")
    return tuple(dict.fromkeys(counts))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_slurm.py", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=None,
        help=f"comma-separated worker counts N (default "
        f"{','.join(map(str, DEFAULT_WORKERS))}; {','.join(map(str, SMOKE_WORKERS))} "
        f"with --smoke)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed runs per side and N; medians are reported (default {DEFAULT_REPEATS}, "
        "1 with --smoke)",
    )
    parser.add_argument(
        "--smoke",
        "--tiny",
        action="store_true",
        help="a smoke run, not a measurement: N=2 and 1 repeat (about 20-30 s)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed N=1 warm-up run of each side (the first timed run is then cold)",
    )
    parser.add_argument("--nodes", type=int, default=4, help="LocalSlurm nodes (default 4)")
    parser.add_argument(
        "--cpus-per-node", type=int, default=8, help="CPUs each node declares (default 8)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=32000, help="memory each node declares (default 32000)"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL_SECONDS,
        help=f"squeue polling interval in seconds (default {POLL_SECONDS:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_SECONDS,
        help=f"seconds one side may take to connect N workers (default {TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--json",
        "--output",
        dest="json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"output file (default {DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = SMOKE_WORKERS if args.smoke else DEFAULT_WORKERS
    if args.repeats is None:
        args.repeats = 1 if args.smoke else DEFAULT_REPEATS
    if args.repeats < 1 or args.nodes < 1 or args.cpus_per_node < 1 or args.poll <= 0:
        parser.error("--repeats, --nodes and --cpus-per-node must be >= 1, --poll > 0")
    if max(args.workers) > args.nodes * args.cpus_per_node:
        parser.error(
            f"{max(args.workers)} one-core workers do not fit on {args.nodes} nodes x "
            f"{args.cpus_per_node} CPUs at once"
        )
    reason = _unavailable()
    if reason is not None:
        parser.exit(2, f"{parser.prog}: skipped: {reason}\n")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Start a private SLURM cluster, run the benchmark, print the table, write the JSON.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    dict
        ``machine``, ``settings``, ``scaling`` (one entry per N), ``worker_cpu``,
        ``notes``, ``loadavg_before``/``loadavg_after``, ``wall_seconds`` and
        ``json_path``: the JSON file's content.

    Raises
    ------
    SystemExit
        With status 2 when no local SLURM cluster can run here (the reason is printed).
    """
    args = _parse_args(argv)
    from daskdeploy.testing.slurm import MARKER_VAR, LocalSlurm

    _slurm_cluster_class()  # import dask_jobqueue and the backend's module now: not timed
    loadavg_before = loadavg()
    t0 = time.perf_counter()
    slurm = LocalSlurm(nodes=args.nodes, cpus_per_node=args.cpus_per_node, memory_mb=args.memory_mb)
    try:
        slurm.start()
        with _slurm_environment(slurm.env):
            meter = LoadMeter((MARKER_VAR, str(slurm.root)))
            slurm_version = _slurm_version(slurm)
            measured = run_benchmark(slurm, args, meter)
    finally:
        slurm.stop()
    result: dict[str, Any] = {
        "machine": machine_info(slurm=slurm_version),
        "settings": {
            "workers": list(args.workers),
            "repeats": args.repeats,
            "smoke": args.smoke,
            "warmup": args.warmup,
            "nodes": args.nodes,
            "cpus_per_node": args.cpus_per_node,
            "memory_mb": args.memory_mb,
            "poll_seconds": args.poll,
            "timeout_seconds": args.timeout,
            "order": "daskdeploy first on odd repeats, raw first on even ones",
            "timer": "time.perf_counter",
            "background_measured": meter.available,
        },
        "targets": {
            "jobs_running_ratio_max": JOBS_RUNNING_TARGET,
            "jobs_running_target_workers": JOBS_RUNNING_TARGET_N,
            "connected_ratio_max": CONNECTED_TARGET,
        },
        **measured,
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
        "wall_seconds": time.perf_counter() - t0,
        "json_path": str(args.json),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(format_report(result), flush=True)
    return result


if __name__ == "__main__":
    main()
