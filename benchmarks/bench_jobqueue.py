"""Benchmark a job-queue backend of daskdeploy against the raw dask-jobqueue cluster class.

One run, one private batch system on localhost, started by daskdeploy's test harness and
stopped at the end: ``--system slurm`` (:class:`daskdeploy.testing.slurm.LocalSlurm`, 4
nodes x 8 CPUs by default; root and ``apt-get install slurm-wlm munge``) or ``--system
sge`` (:class:`daskdeploy.testing.sge.LocalSGE`, one queue of 16 slots by default; root
and the ``gridengine-*`` packages)::

    python benchmarks/bench_jobqueue.py --system sge [--workers 1,16] [--repeats 3]
                                        [--smoke] [--json PATH]

``benchmarks/bench_slurm.py`` is this script with ``--system slurm``. What differs per
system is one :class:`System` entry in :data:`SYSTEMS` (harness, raw class and its
arguments, the running state's name, how daskdeploy's jobs are told from raw ones,
targets); everything else is shared.

1. **Start-up of N workers.** For every N in ``--workers``: ``daskdeploy.deploy(SYSTEM,
   workers=N, quiet=True)`` against the raw library doing the same work, dask-jobqueue's
   ``SLURMCluster``/``SGECluster(cores=1, processes=1, memory="1GiB", ...)``,
   ``cluster.scale(N)`` and ``Client(cluster).wait_for_workers(N)``. Both clocks start
   just before the call that creates the scheduler and stop at two moments: *jobs
   running*, when the status command (``squeue``, ``qstat``; polled every 50 ms from a
   thread) first lists all N worker jobs as running, and *connected*, when N workers have
   connected. The sides alternate, daskdeploy first on odd repeats and raw first on even
   ones. Targets (daskdeploy / raw, medians):

   * slurm: jobs running <= 0.7 at N=16 (one job array instead of N ``sbatch`` calls);
     connected <= 1.0 at every N;
   * sge: connected <= 1.05 at N=1 (start-up); jobs running and connected <= 1.0 at
     N=16 (scale-up).

2. **Start-up CPU of one worker.** Runs with N=1 (extra ones, one pair per repeat, when
   ``--workers`` lacks 1): right after the worker connects, the user + system CPU seconds
   of its job's process tree, the ``distributed.cli.dask_worker`` process (the nanny) and
   the worker process it spawned. daskdeploy starts workers with ``--no-dashboard``.

The machine's other load distorts the wall-clock figures (not the CPU seconds). With
psutil every timed interval also records how many CPU cores processes *other* than this
one, the batch system's daemons and the jobs used meanwhile; the table warns when that is
not negligible.

This is a benchmark, not a test: it prints a table and writes JSON (raw timings, medians,
ratios, machine information) and never fails on a missed target. It exits with status 2,
saying why, when the private batch system cannot run here. :func:`main` returns the JSON's
content, so a smoke test can run ``main(["--system", "sge", "--smoke", "--json", path])``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import LoadMeter, background_note, loadavg, machine_info, median, ratio

__all__ = ["SYSTEMS", "QueueWatcher", "Runner", "System", "Target", "main"]

RESULTS = Path(__file__).resolve().parent / "results"

DEFAULT_REPEATS = 3
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 300.0
"""How long one side may take to connect N workers before the run counts as failed."""
RUNNING_GRACE_SECONDS = 30.0
"""How long after connect the queue watcher may still take to see every job running."""

WORKER_MODULE = "distributed.cli.dask_worker"
DD_PREFIX = "dd-"
SIDES = ("daskdeploy", "raw")
MEASURES = ("jobs_running", "connected")


# --------------------------------------------------------------------------- systems


@dataclass(frozen=True)
class Target:
    """A target on the ratio daskdeploy / raw of the medians of one measure.

    Attributes
    ----------
    measure
        ``"jobs_running"`` or ``"connected"``.
    ratio_max
        The highest ratio that meets the target.
    workers
        The N it applies to; ``None``: every N.
    """

    measure: str
    ratio_max: float
    workers: int | None = None

    def applies(self, n: int) -> bool:
        return self.workers is None or self.workers == n

    def as_json(self) -> dict[str, Any]:
        return {"measure": self.measure, "ratio_max": self.ratio_max, "workers": self.workers}


@dataclass(frozen=True)
class System:
    """Everything the benchmark does differently on one batch system.

    Attributes
    ----------
    name
        daskdeploy's backend name, the ``--system`` value (``"sge"``).
    title
        How the table names the system (``"SGE"``).
    harness
        The test harness class, ``"module:Class"``; the module also has
        ``unavailable_reason()`` and ``MARKER_VAR``.
    raw_class
        The dask-jobqueue cluster class (``"SGECluster"``).
    status_command, cancel_command
        The commands that list and cancel jobs (``qstat``, ``qdel``).
    running_states
        The states, as the harness's ``jobs()`` gives them, of a running job.
    env_prefixes
        Prefixes of environment variables that steer the system's clients: hidden for
        the run, so only the private system is seen.
    default_workers, smoke_workers
        ``--workers`` without and with ``--smoke``.
    targets
        The ratio targets (see :class:`Target`).
    harness_options
        ``(flag, dest, type, default, help)`` of the harness's size options.
    make_harness
        Builds the (unstarted) harness from the parsed arguments.
    harness_env
        The variables every client of the started harness needs.
    capacity
        How many one-core jobs run at once with these arguments.
    describe_harness
        One line about the harness for the table.
    version_command
        The command whose first output line names the system's version.
    raw_kwargs
        Keyword arguments of the raw class besides the shared ones (scheduler options
        with ``scheduler_host``/``dashboard_address``, job directives).
    is_daskdeploy_job
        Whether a job the harness lists is one of daskdeploy's.
    """

    name: str
    title: str
    harness: str
    raw_class: str
    status_command: str
    cancel_command: str
    running_states: frozenset[str]
    env_prefixes: tuple[str, ...]
    default_workers: tuple[int, ...]
    smoke_workers: tuple[int, ...]
    targets: tuple[Target, ...]
    harness_options: tuple[tuple[str, str, type, Any, str], ...]
    make_harness: Callable[[Any, argparse.Namespace], Any]
    harness_env: Callable[[Any], dict[str, str]]
    capacity: Callable[[argparse.Namespace], int]
    describe_harness: Callable[[dict[str, Any]], str]
    version_command: tuple[str, ...]
    raw_kwargs: dict[str, Any] = field(default_factory=dict)
    is_daskdeploy_job: Callable[[dict[str, str]], bool] = lambda job: job["name"].startswith(
        DD_PREFIX
    )

    def is_raw_job(self, job: dict[str, str]) -> bool:
        return not job["name"].startswith(DD_PREFIX)

    def harness_module(self) -> Any:
        return importlib.import_module(self.harness.partition(":")[0])

    def harness_class(self) -> Any:
        return getattr(self.harness_module(), self.harness.partition(":")[2])

    def marker_var(self) -> str:
        return self.harness_module().MARKER_VAR

    def target(self, measure: str, n: int) -> Target | None:
        return next((t for t in self.targets if t.measure == measure and t.applies(n)), None)

    def harness_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {dest: getattr(args, dest) for _, dest, _, _, _ in self.harness_options}


SLURM = System(
    name="slurm",
    title="SLURM",
    harness="daskdeploy.testing.slurm:LocalSlurm",
    raw_class="SLURMCluster",
    status_command="squeue",
    cancel_command="scancel",
    running_states=frozenset({"RUNNING"}),
    env_prefixes=("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_"),
    default_workers=(2, 8, 16),
    smoke_workers=(2,),
    targets=(Target("jobs_running", 0.7, 16), Target("connected", 1.0)),
    harness_options=(
        ("--nodes", "nodes", int, 4, "LocalSlurm nodes (default 4)"),
        ("--cpus-per-node", "cpus_per_node", int, 8, "CPUs each node declares (default 8)"),
        ("--memory-mb", "memory_mb", int, 32000, "memory each node declares (default 32000)"),
    ),
    make_harness=lambda cls, args: cls(
        nodes=args.nodes, cpus_per_node=args.cpus_per_node, memory_mb=args.memory_mb
    ),
    harness_env=lambda slurm: slurm.env,
    capacity=lambda args: args.nodes * args.cpus_per_node,
    describe_harness=lambda s: f"LocalSlurm {s['nodes']} nodes x {s['cpus_per_node']} CPUs",
    version_command=("sinfo", "--version"),
    raw_kwargs={
        "scheduler_options": {"host": "127.0.0.1", "port": 0, "dashboard_address": "127.0.0.1:0"},
        "job_extra_directives": ["--output=/dev/null"],
    },
    is_daskdeploy_job=lambda job: (
        job["name"].startswith(DD_PREFIX) and job["comment"].startswith("daskdeploy:")
    ),
)

SGE = System(
    name="sge",
    title="SGE",
    harness="daskdeploy.testing.sge:LocalSGE",
    raw_class="SGECluster",
    status_command="qstat",
    cancel_command="qdel",
    running_states=frozenset({"r"}),
    env_prefixes=("SGE_", "__SGE_"),
    default_workers=(1, 16),
    smoke_workers=(2,),
    targets=(
        Target("connected", 1.05, 1),
        Target("jobs_running", 1.0, 16),
        Target("connected", 1.0, 16),
    ),
    harness_options=(
        ("--slots", "slots", int, 16, "slots of the LocalSGE queue all.q (default 16)"),
    ),
    make_harness=lambda cls, args: cls(slots=args.slots),
    harness_env=lambda sge: sge.environ,
    capacity=lambda args: args.slots,
    describe_harness=lambda s: f"LocalSGE queue all.q with {s['slots']} slots",
    version_command=("qstat", "-help"),
    raw_kwargs={
        "scheduler_options": {"host": "127.0.0.1", "port": 0, "dashboard_address": ":0"},
        # dask-jobqueue's SGE jobs run with -cwd -j y: without -o their output would
        # pile up in the current directory as dask-worker.o<id>.
        "job_extra_directives": ["-o /dev/null"],
    },
)

SYSTEMS: dict[str, System] = {system.name: system for system in (SLURM, SGE)}


# --------------------------------------------------------------------------- setup


@contextlib.contextmanager
def _sigint_kept() -> Iterator[None]:
    """Undo the SIGINT handler that importing dask_jobqueue installs (it calls sys.exit)."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


def _raw_cluster_class(system: System) -> Any:
    with _sigint_kept():
        import dask_jobqueue

        import daskdeploy.backends.jobqueue.cluster  # noqa: F401  (imported by deploy: not timed)
    return getattr(dask_jobqueue, system.raw_class)


def _unavailable(system: System) -> str | None:
    if importlib.util.find_spec("dask_jobqueue") is None:
        return f"dask-jobqueue is not installed (pip install 'daskdeploy[{system.name}]')."
    return system.harness_module().unavailable_reason()


@contextlib.contextmanager
def _client_environment(system: System, env: dict[str, str]) -> Iterator[None]:
    """Point the system's clients (daskdeploy's and dask-jobqueue's) at the private one only.

    Variables with the system's prefixes from outside (a surrounding job, a session's
    SLURM_CONF or SGE_ROOT) are hidden for the run and restored afterwards.
    """
    prefixes = system.env_prefixes
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
    """Poll the harness's ``jobs()`` from a thread until ``want`` jobs of one side run.

    Times are ``time.perf_counter()`` values at the *return* of the status call that
    first showed the state: an upper bound, late by at most one poll interval plus one
    call (both recorded).
    """

    def __init__(
        self,
        harness: Any,
        want: int,
        belongs: Callable[[dict[str, str]], bool],
        interval: float = POLL_SECONDS,
        running_states: frozenset[str] = SLURM.running_states,
    ) -> None:
        self.harness = harness
        self.want = want
        self.belongs = belongs
        self.interval = interval
        self.running_states = running_states
        self.t_listed: float | None = None
        self.t_running: float | None = None
        self.call_seconds: list[float] = []
        self.errors: list[str] = []
        self.jobs: list[dict[str, str]] = []
        self.timeline: list[list[float]] = []
        """``[time, jobs listed, jobs running]`` whenever the two counts change."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t_call = time.perf_counter()
            try:
                jobs = self.harness.jobs()
            except Exception as exc:  # the status command timed out or failed: try again
                self.errors.append(repr(exc))
                jobs = None
            t_done = time.perf_counter()
            self.call_seconds.append(t_done - t_call)
            if jobs is not None:
                mine = [job for job in jobs if self.belongs(job)]
                running = sum(job["state"] in self.running_states for job in mine)
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
        """Give the thread ``timeout`` s to see every job running, then stop it."""
        self._thread.join(timeout)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(15)


def _worker_cpu(address: str) -> dict[str, Any]:
    """CPU seconds (user + system) of each worker job's process tree, by scheduler address.

    A tree is a ``python -m distributed.cli.dask_worker <address> ...`` process (the nanny)
    and all its descendants (the worker it spawned or forked: a forked one has the same
    command line and is counted in its nanny's tree only); children that already exited
    count through ``children_user``/``children_system``.
    """
    try:
        import psutil
    except ImportError:
        return {"per_worker": [], "processes": 0, "note": "psutil missing"}

    def is_nanny(cmdline: list[str]) -> bool:
        return address in cmdline and any(WORKER_MODULE in arg for arg in cmdline)

    trees = []
    processes = 0
    for proc in psutil.process_iter(["cmdline"]):
        if not is_nanny(proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(psutil.Error):
            parent = proc.parent()
            if parent is not None and is_nanny(parent.cmdline()):
                continue  # a worker forked by its nanny has the nanny's command line
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
    """Count live worker processes of this system's jobs (not those of other systems)."""
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


def _wait_idle(system: System, harness: Any, marker: tuple[str, str], notes: list[str]) -> None:
    """Wait (untimed) until the queue is empty and no worker process is left, then settle."""
    if not harness.wait_for_no_jobs(timeout=60):
        jobs = harness.jobs()
        notes.append(f"jobs still queued 60 s after close, cancelled: {jobs}")
        if jobs:
            harness.run(system.cancel_command, *[job["id"] for job in jobs])
        harness.wait_for_no_jobs(timeout=30)
    deadline = time.monotonic() + 15
    while _worker_processes_left(marker):
        if time.monotonic() > deadline:
            notes.append("worker processes still running 15 s after their jobs ended")
            break
        time.sleep(0.1)
    gc.collect()
    time.sleep(0.5)


# ------------------------------------------------------------------------ one run


class Runner:
    """Starts N workers one way or the other on the private system and times it.

    ``args`` needs ``poll`` and ``timeout`` (seconds), and may have
    ``raw_worker_extra_args`` (a list for the raw side's ``worker_extra_args``).
    """

    def __init__(
        self, system: System, harness: Any, meter: LoadMeter, args: Any, scratch: Path
    ) -> None:
        self.system = system
        self.harness = harness
        self.marker = (system.marker_var(), str(harness.root))
        self.meter = meter
        self.poll = args.poll
        self.timeout = args.timeout
        self.raw_worker_extra_args = list(getattr(args, "raw_worker_extra_args", None) or [])
        self.scratch = scratch
        self.notes: list[str] = []
        self._raw_cluster = _raw_cluster_class(system)

    def run(self, side: str, n: int) -> dict[str, Any]:
        """One timed start-up of ``n`` workers by ``side``; closes and waits for an empty queue."""
        system, harness = self.system, self.harness
        if harness.jobs():
            raise RuntimeError(f"the queue is not empty before a run: {harness.jobs()}")
        start = self._start_daskdeploy if side == "daskdeploy" else self._start_raw
        belongs = system.is_daskdeploy_job if side == "daskdeploy" else system.is_raw_job
        watcher = QueueWatcher(harness, n, belongs, self.poll, system.running_states)
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
                except Exception as exc:  # close the others anyway; the harness cleans up
                    self.notes.append(f"{side} N={n}: closing {type(resource).__name__}: {exc!r}")
            close_s = time.perf_counter() - t_close
            _wait_idle(system, harness, self.marker, self.notes)
        jobs_running = watcher.t_running - t0 if watcher.t_running is not None else None
        if jobs_running is None:
            self.notes.append(
                f"{side} N={n}: {system.status_command} never showed {n} jobs running"
            )
        per_worker = cpu["per_worker"]
        return {
            "jobs_running": jobs_running,
            "connected": t_connected - t0,
            "jobs_listed": watcher.t_listed - t0 if watcher.t_listed is not None else None,
            "close": close_s,
            "background_cores": load["background_cores"],
            "status_seconds_median": median(watcher.call_seconds),
            "status_errors": len(watcher.errors),
            "job_ids": [job["id"] for job in watcher.jobs],
            "queue_timeline": [
                [t - t0, listed, running] for t, listed, running in watcher.timeline
            ],
            "worker_cpu_seconds": per_worker,
            "worker_cpu_seconds_mean": statistics.fmean(per_worker) if per_worker else None,
            "worker_processes": cpu["processes"],
        }

    def _start_daskdeploy(self, n: int, resources: list[Any]) -> str:
        import daskdeploy

        client = daskdeploy.deploy(self.system.name, workers=n, quiet=True, timeout=self.timeout)
        resources.append(client)
        return client.scheduler.address

    def _start_raw(self, n: int, resources: list[Any]) -> str:
        import dask.config
        from distributed import Client

        extra: dict[str, Any] = {}
        if self.raw_worker_extra_args:
            extra["worker_extra_args"] = self.raw_worker_extra_args
        # Every distributed server, the scheduler here too, makes a dask-scratch-space in
        # the temporary directory and leaves it there; daskdeploy makes and removes its own.
        with dask.config.set({"temporary-directory": str(self.scratch)}):
            cluster = self._raw_cluster(
                cores=1,
                processes=1,
                memory="1GiB",
                walltime="00:30:00",
                python=sys.executable,
                local_directory=str(self.scratch),  # not the job's $TMPDIR: it would stay
                **self.system.raw_kwargs,
                **extra,
            )
        resources.append(cluster)
        cluster.scale(n)
        client = Client(cluster)
        resources.append(client)
        client.wait_for_workers(n, timeout=self.timeout)
        return cluster.scheduler_address


# --------------------------------------------------------------------------- benchmark


def _summarise_scaling(
    system: System, n: int, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    keys = ("jobs_running", "connected", "jobs_listed", "close", "worker_cpu_seconds_mean")
    medians = {
        side: {key: median([run[key] for run in runs[side]]) for key in keys} for side in SIDES
    }
    ratios = {key: ratio(medians["daskdeploy"][key], medians["raw"][key]) for key in MEASURES}
    paired = {
        key: median(
            [ratio(d[key], r[key]) for d, r in zip(runs["daskdeploy"], runs["raw"], strict=True)]
        )
        for key in MEASURES
    }
    passed: dict[str, bool | None] = {}
    targets: dict[str, float | None] = {}
    for key in MEASURES:
        target = system.target(key, n)
        targets[key] = target.ratio_max if target else None
        passed[key] = (
            ratios[key] <= target.ratio_max if target and ratios[key] is not None else None
        )
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
        "min": {side: {key: _extreme(min, runs[side], key) for key in MEASURES} for side in SIDES},
        "max": {side: {key: _extreme(max, runs[side], key) for key in MEASURES} for side in SIDES},
        "ratio": ratios,
        "paired_ratio_median": paired,
        "target": targets,
        "pass": passed,
        "running_seen_after_connect": late,
        "background_cores_median": median(
            [run["background_cores"] for side in SIDES for run in runs[side]]
        ),
    }


def _extreme(pick: Callable[..., float], runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run[key] is not None]
    return pick(values) if values else None


def _summarise_cpu(samples: dict[str, list[float]], background: list[float | None]) -> dict:
    medians = {side: median(samples[side]) for side in SIDES}
    return {
        "workers": 1,
        "cpu_seconds": samples,
        "medians": medians,
        "ratio": ratio(medians["daskdeploy"], medians["raw"]),
        "background_cores_median": median(background),
    }


def run_benchmark(
    system: System, harness: Any, args: argparse.Namespace, meter: LoadMeter
) -> dict[str, Any]:
    """Warm up, then time every N on both sides, alternating their order per repeat.

    Returns
    -------
    dict
        ``scaling`` (one entry per N), ``worker_cpu`` and ``notes``.
    """
    with tempfile.TemporaryDirectory(prefix=f"bench-{system.name}-raw-") as scratch:
        runner = Runner(system, harness, meter, args, Path(scratch))
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
        "scaling": [_summarise_scaling(system, n, runs) for n, runs in scaling.items()],
        "worker_cpu": _summarise_cpu(cpu, cpu_background),
        "notes": runner.notes,
    }


# ------------------------------------------------------------------------ reporting


def _system_version(system: System, harness: Any) -> str | None:
    try:
        result = harness.run(*system.version_command)
    except Exception:  # a version is nice to have, never a reason to fail
        return None
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0].strip() if result.returncode == 0 and text else None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _target_text(entry: dict[str, Any], key: str) -> str:
    target = entry.get("target", {}).get(key)
    return "" if target is None else f"<= {target:.2f} {_mark(entry['pass'][key])}"


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
    system = SYSTEMS[result["system"]]
    machine = result["machine"]
    settings = result["settings"]
    cpus = machine["usable_cpus"]
    status = system.status_command
    running = "RUNNING" if system.name == "slurm" else "running"
    raw_args = settings.get("raw_worker_extra_args") or []
    lines = [
        f"daskdeploy {system.name} benchmark  ({cpus} CPUs, Python {machine['python']}, "
        f"distributed {machine['distributed']}, dask-jobqueue {machine['dask_jobqueue']}, "
        f"{machine.get(system.name) or system.title + ' version unknown'})",
        f"{system.describe_harness(settings)}; one worker per job (1 core, 1 GiB); {status} "
        f"polled every {settings['poll_seconds']:g} s; raw side: dask-jobqueue "
        f"{system.raw_class}" + (f" with worker_extra_args={raw_args}" if raw_args else ""),
        "",
        f"1. Start-up of N workers (median [min-max] of {settings['repeats']} per side): "
        f"seconds from the call until",
        f"   all N jobs are {running} in {status}, and until N workers are connected",
        f"   {'':>4}  {f' jobs {running} ':-^57}  {' connected ':-^57}",
        f"   {'N':>4}  {'daskdeploy':>18}{'raw':>18}{'ratio':>7}  {'target':<12}"
        f"  {'daskdeploy':>18}{'raw':>18}{'ratio':>7}  {'target':<12}",
    ]
    background = []
    for entry in result["scaling"]:
        m, r = entry["medians"], entry["ratio"]
        low, high = entry.get("min", {}), entry.get("max", {})

        def cell(side: str, key: str, m: dict = m, low: dict = low, high: dict = high) -> str:
            spread = ""
            if low and low[side][key] is not None and high[side][key] is not None:
                spread = f" [{low[side][key]:.1f}-{high[side][key]:.1f}]"
            return f"{_fmt(m[side][key])}{spread}"

        row = f"   {entry['workers']:>4}"
        for key in MEASURES:
            row += (
                f"  {cell('daskdeploy', key):>18}{cell('raw', key):>18}{_fmt(r[key]):>7}"
                f"  {_target_text(entry, key):<12}"
            )
        lines.append(row)
        background.append(entry["background_cores_median"])
    paired = ", ".join(
        f"N={entry['workers']} {_fmt(entry['paired_ratio_median']['jobs_running'])}"
        f" / {_fmt(entry['paired_ratio_median']['connected'])}"
        for entry in result["scaling"]
    )
    lines.append(f"   median of per-pair ratios (jobs {running} / connected): {paired}")
    queued = ", ".join(
        f"N={entry['workers']} {_fmt(entry['medians']['daskdeploy']['jobs_listed'])}"
        f" / {_fmt(entry['medians']['raw']['jobs_listed'])}"
        for entry in result["scaling"]
    )
    lines.append(f"   all N jobs in {status} (submitted), daskdeploy / raw s: {queued}")
    late = sum(entry["running_seen_after_connect"] for entry in result["scaling"])
    if late:
        lines.append(
            f"   note: in {late} run(s) {status} showed the jobs {running} only after the "
            f"workers had connected ({status} slower than the workers: a busy machine)"
        )
    lines.append("   " + background_note(median(background), cpus))
    per_n = ", ".join(
        f"N={entry['workers']} {_fmt(entry['background_cores_median'])}"
        for entry in result["scaling"]
    )
    lines.append(f"   background cores per N (median): {per_n}")
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
    before, after = result.get("loadavg_before"), result.get("loadavg_after")
    if before and after:
        lines.append(
            f"Load average (1/5/15 min) before {'/'.join(f'{v:.2f}' for v in before)}, "
            f"after {'/'.join(f'{v:.2f}' for v in after)}"
        )
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


def _default_json(system: System) -> Path:
    return RESULTS / f"{system.name}.json"


def _parser(prog: str, fixed: System | None) -> argparse.ArgumentParser:
    """The command line; with ``fixed``, for that system only (no ``--system``)."""
    systems = [fixed] if fixed else list(SYSTEMS.values())
    description = (__doc__ or "").splitlines()[0]
    if fixed is not None:
        description = (
            f"Benchmark daskdeploy's {fixed.name} backend against a hand-built dask-jobqueue "
            f"{fixed.raw_class}."
        )
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if fixed is None:
        parser.add_argument(
            "--system", required=True, choices=list(SYSTEMS), help="the batch system to measure"
        )

    def per_system(attribute: str) -> str:
        return "; ".join(
            f"{','.join(map(str, getattr(s, attribute)))}"
            + (f" for {s.name}" if fixed is None else "")
            for s in systems
        )

    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=None,
        help=f"comma-separated worker counts N (default {per_system('default_workers')}; "
        f"with --smoke {per_system('smoke_workers')})",
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
        help="a smoke run, not a measurement: N=2 and 1 repeat (about 20-40 s)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed N=1 warm-up run of each side (the first timed run is then cold)",
    )
    for system in systems:
        group = parser.add_argument_group(
            f"{system.harness.partition(':')[2]}"
            + (f" (--system {system.name})" if fixed is None else "")
        )
        for flag, dest, kind, default, text in system.harness_options:
            group.add_argument(flag, dest=dest, type=kind, default=default, help=text)
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL_SECONDS,
        help=f"status command polling interval in seconds (default {POLL_SECONDS:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_SECONDS,
        help=f"seconds one side may take to connect N workers (default {TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--raw-worker-args",
        dest="raw_worker_extra_args",
        default=None,
        metavar="ARGS",
        type=lambda text: text.split(),
        help="worker_extra_args of the raw side, e.g. '--no-dashboard' for workers like "
        "daskdeploy's (default: none, dask-jobqueue's defaults)",
    )
    parser.add_argument(
        "--json",
        "--output",
        dest="json",
        type=Path,
        default=None,
        help="output file (default "
        + "; ".join(
            str(_default_json(s)) + (f" for {s.name}" if fixed is None else "") for s in systems
        )
        + ")",
    )
    return parser


def _parse_args(
    argv: Sequence[str] | None, system: str | None = None, prog: str | None = None
) -> tuple[System, argparse.Namespace]:
    fixed = SYSTEMS[system] if system is not None else None
    parser = _parser(
        prog or ("bench_jobqueue.py" if fixed is None else f"bench_{system}.py"), fixed
    )
    args = parser.parse_args(argv)
    chosen = fixed or SYSTEMS[args.system]
    if args.workers is None:
        args.workers = chosen.smoke_workers if args.smoke else chosen.default_workers
    if args.repeats is None:
        args.repeats = 1 if args.smoke else DEFAULT_REPEATS
    if args.json is None:
        args.json = _default_json(chosen)
    sizes = chosen.harness_settings(args)
    if args.repeats < 1 or args.poll <= 0 or any(value < 1 for value in sizes.values()):
        flags = ", ".join(flag for flag, *_ in chosen.harness_options)
        parser.error(f"--repeats and {flags} must be >= 1, --poll > 0")
    if max(args.workers) > chosen.capacity(args):
        parser.error(
            f"{max(args.workers)} one-core workers do not fit at once on "
            f"{chosen.describe_harness(sizes)}"
        )
    reason = _unavailable(chosen)
    if reason is not None:
        parser.exit(2, f"{parser.prog}: skipped: {reason}\n")
    return chosen, args


def main(
    argv: Sequence[str] | None = None, *, system: str | None = None, prog: str | None = None
) -> dict[str, Any]:
    """Start a private batch system, run the benchmark, print the table, write the JSON.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.
    system
        The batch system, when the command line has no ``--system`` (``bench_slurm.py``).
    prog
        The program name for ``--help`` and errors.

    Returns
    -------
    dict
        ``system``, ``machine``, ``settings``, ``targets``, ``scaling`` (one entry per
        N), ``worker_cpu``, ``notes``, ``loadavg_before``/``loadavg_after``,
        ``wall_seconds`` and ``json_path``: the JSON file's content.

    Raises
    ------
    SystemExit
        With status 2 when the private batch system cannot run here (the reason is
        printed).
    """
    chosen, args = _parse_args(argv, system, prog)
    _raw_cluster_class(chosen)  # import dask_jobqueue and the backend's module now: not timed
    loadavg_before = loadavg()
    t0 = time.perf_counter()
    harness = chosen.make_harness(chosen.harness_class(), args)
    try:
        harness.start()
        with _client_environment(chosen, chosen.harness_env(harness)):
            meter = LoadMeter((chosen.marker_var(), str(harness.root)))
            version = _system_version(chosen, harness)
            measured = run_benchmark(chosen, harness, args, meter)
    finally:
        harness.stop()
    result: dict[str, Any] = {
        "system": chosen.name,
        "machine": machine_info(**{chosen.name: version}),
        "settings": {
            "workers": list(args.workers),
            "repeats": args.repeats,
            "smoke": args.smoke,
            "warmup": args.warmup,
            **chosen.harness_settings(args),
            "poll_seconds": args.poll,
            "timeout_seconds": args.timeout,
            "raw_class": f"dask_jobqueue.{chosen.raw_class}",
            "raw_worker_extra_args": args.raw_worker_extra_args or [],
            "order": "daskdeploy first on odd repeats, raw first on even ones",
            "timer": "time.perf_counter",
            "background_measured": meter.available,
        },
        "targets": [target.as_json() for target in chosen.targets],
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
