"""Start-up and teardown of daskdeploy against the raw library doing the same, per backend.

For every backend that :mod:`environments` prepared, 2 workers x 1 thread are started and
closed again by each *side*:

* ``daskdeploy``: ``daskdeploy.deploy(backend)`` with the backend's defaults (TLS with
  fresh credentials on every backend but ``local``);
* ``daskdeploy_plain``: the same with ``tls=False`` (only where TLS is the default, not
  in smoke runs, and in the first :data:`PLAIN_REPEATS` repeats only): the like-for-like
  comparison with the raw peers, which use plain TCP;
* ``raw``: the raw peer (:data:`RAW_PEERS`): ``LocalCluster``, dask-jobqueue's
  ``SLURMCluster``, distributed's ``SSHCluster``, dask-mpi under ``mpiexec``, or the
  hand-written ``dask scheduler --scheduler-file`` + ``srun dask worker`` recipe inside an
  allocation.

*start* runs from the call that creates the deployment until both workers are connected
(for ``mpi`` and ``allocation``, measured inside the job or the client rank from the top
of the script, so imports count on both sides); *close* from the close call until nothing
is left: processes gone, jobs gone from ``squeue``, remote processes gone. ``daskdeploy``
and ``raw`` get one untimed warm-up each (not in smoke runs), then the sides take turns in
alternating order (ABC, CBA, ...). All sides serve the scheduler's dashboard on 127.0.0.1
and run workers without one.

Run as a script, this file is the probe that runs inside ``mpiexec`` and ``salloc``:
``python startup.py --probe MODE OUT.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import LoadMeter, median, ratio, settle
from environments import (
    IDLE_TIMEOUT,
    AllocationEnv,
    BackendEnv,
    Backends,
    MPIEnv,
    SSHEnv,
    run_command,
    skipped,
)

__all__ = ["RAW_PEERS", "TARGET", "WORKERS", "run"]

WORKERS = 2
TARGET = 1.05
"""Maximum ratio of median totals (start + close), daskdeploy / raw."""
TARGETS = {"slurm": 1.0, "ssh": 1.0}
"""Backends held to a tighter ratio than :data:`TARGET` (issue 21: no slower than raw)."""


def target_of(backend: str) -> float:
    """The start + close ratio ``backend`` must stay within."""
    return TARGETS.get(backend, TARGET)


TIMEOUT = 120.0
"""Seconds one side may take to start its workers (and a probe job to finish)."""
KEYS = ("start", "close", "total")
WARM_UP = ("daskdeploy", "raw")
"""Sides with an untimed first run; daskdeploy_plain runs the code daskdeploy warmed up."""
PLAIN_REPEATS = 3
"""Timed runs of daskdeploy_plain at most (in the first repeats): it costs a third of the
time, and TLS turned out to matter little except on ssh."""
SETTLE_SECONDS = 0.2
"""Pause after every run (none in smoke runs)."""

RAW_PEERS = {
    "local": "LocalCluster",
    "slurm": "dask_jobqueue.SLURMCluster",
    "ssh": "distributed.deploy.ssh.SSHCluster",
    "mpi": "dask_mpi.initialize under mpiexec",
    "allocation": "dask scheduler --scheduler-file + srun dask worker",
}
PLAIN_WARNING = "without TLS (tls=False)"
"""Part of the warning daskdeploy prints for every deployment on plain TCP."""
SECURITY = {"daskdeploy": "backend default", "daskdeploy_plain": "tcp (tls=False)", "raw": "tcp"}

Side = Callable[[], dict[str, Any]]
"""One timed start-up and close: returns at least ``start`` and ``close`` seconds."""


# ------------------------------------------------------------------- in-process sides


def _timed(env: BackendEnv, start: Callable[[list[Any]], Any]) -> dict[str, Any]:
    """Time ``start(resources)`` until WORKERS are connected, then the close.

    ``start`` appends whatever must be closed to ``resources`` (closed last-first) and
    returns a client. The close counts until :meth:`BackendEnv.leftovers` is empty.
    """
    resources: list[Any] = []
    try:
        t0 = time.perf_counter()
        client = start(resources)
        client.wait_for_workers(WORKERS, timeout=TIMEOUT)
        started = time.perf_counter() - t0
    except BaseException as exc:
        _close_all(resources)
        if isinstance(exc, Exception):  # not on Ctrl-C: the environments clean up then
            env.wait_idle()
        raise
    t_close = time.perf_counter()
    errors = _close_all(resources)
    left = env.wait_idle()
    closed = time.perf_counter() - t_close
    if errors:
        raise RuntimeError(f"closing failed: {errors[0]!r}") from errors[0]
    return {"start": started, "close": closed, **({"left": left} if left else {})}


def _close_all(resources: list[Any]) -> list[Exception]:
    """Close every resource, the last first, even when one fails; return the failures."""
    errors = []
    for resource in reversed(resources):
        try:
            resource.close()
        except Exception as exc:  # close the others anyway; wait_idle shows what is left
            errors.append(exc)
    return errors


@contextlib.contextmanager
def _without_plain_tcp_warning() -> Iterator[None]:
    """Drop daskdeploy's warning about ``tls=False`` (asked for here) from stderr."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        kept = [line for line in captured.getvalue().splitlines() if PLAIN_WARNING not in line]
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)


def _deploy(env: BackendEnv, **options: Any) -> Side:
    """``daskdeploy.deploy(env.name, ...)`` in this process."""
    import daskdeploy

    quieted = _without_plain_tcp_warning if options.get("tls") is False else contextlib.nullcontext

    def start(resources: list[Any]) -> Any:
        settings = {**env.deploy_options(WORKERS), **options}
        with quieted():
            client = daskdeploy.deploy(env.name, quiet=True, timeout=TIMEOUT, **settings)
        resources.append(client)
        return client

    return lambda: _timed(env, start)


def _raw(env: BackendEnv, make_cluster: Callable[[], Any]) -> Side:
    """A raw cluster object from ``make_cluster()`` and a ``Client`` on it."""
    from distributed import Client

    def start(resources: list[Any]) -> Any:
        cluster = make_cluster()
        resources.append(cluster)
        client = Client(cluster)
        resources.append(client)
        return client

    return lambda: _timed(env, start)


def _local_cluster(scratch: Path) -> Callable[[], Any]:
    import dask.config
    import distributed

    def make() -> Any:
        # distributed's default scratch space ($TMPDIR/dask-scratch-space) outlives the run
        with dask.config.set({"temporary-directory": str(scratch)}):
            return distributed.LocalCluster(
                n_workers=WORKERS,
                threads_per_worker=1,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
            )

    return make


def _slurm_raw(env: BackendEnv, scratch: Path) -> Side:
    """dask-jobqueue's SLURMCluster with bench_slurm.py's settings, ``scale(2)``."""
    import dask.config

    from bench_slurm import Runner

    settings = types.SimpleNamespace(poll=0.05, timeout=TIMEOUT)
    runner = Runner(env.slurm, LoadMeter(), settings, scratch)  # type: ignore[attr-defined]

    def start(resources: list[Any]) -> Any:
        # Workers without a dashboard, as daskdeploy's (dask worker's default serves one).
        with dask.config.set({"jobqueue.slurm.worker-extra-args": ["--no-dashboard"]}):
            runner._start_raw(WORKERS, resources)
        return resources[-1]

    return lambda: _timed(env, start)


def _ssh_cluster(env: SSHEnv, scratch: Path) -> Callable[[], Any]:
    from distributed.deploy.ssh import SSHCluster

    from daskdeploy.testing.ssh import INTERFACE

    # The namespace hosts have no default route: bind their interface, as daskdeploy does.
    common = {"interface": INTERFACE, "local_directory": str(scratch)}

    def make() -> Any:
        return SSHCluster(
            hosts=env.host_list(WORKERS),
            connect_options=env.deploy_kwargs["connect_options"],
            worker_options={"nthreads": 1, "death_timeout": 60, **common},
            scheduler_options={"port": 0, "dashboard_address": "127.0.0.1:0", **common},
            remote_python=sys.executable,
            silence_logs="warning",  # as daskdeploy does; else every remote line is logged
        )

    return make


# ------------------------------------------------------------------- job / rank sides


def _probe_side(env: BackendEnv, mode: str, wrap: Callable[[list[str]], list[str]]) -> Side:
    """Run this file as a probe under ``wrap`` (mpiexec, salloc) and read its times back.

    *start* is measured inside the probe; *close* from the probe's close call (wall clock)
    until the launcher has exited and the backend has nothing left.
    """

    def side() -> dict[str, Any]:
        out = Path(tempfile.mkstemp(suffix=".json", dir=env.workdir)[1])
        try:
            probe = [sys.executable, __file__, "--probe", mode, str(out)]
            wall, result = run_command(wrap(probe), env.subprocess_env(), TIMEOUT + 60, env.workdir)
            left = env.wait_idle()
            ended = time.time()
            if result.returncode != 0 or not out.stat().st_size:
                raise RuntimeError(f"probe exited {result.returncode}: {_tail(result.stderr)}")
            times = json.loads(out.read_text())
        finally:
            out.unlink(missing_ok=True)
        return {
            "start": times["start"],
            "close": ended - times["t_close"],
            "wall": wall,
            **({"left": left} if left else {}),
        }

    return side


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _probe_sides(env: BackendEnv, plain: bool) -> dict[str, Side]:
    """The sides of ``mpi`` (under ``mpiexec -n 4``) or ``allocation`` (in ``salloc -n 2``)."""
    if isinstance(env, MPIEnv):
        ranks = WORKERS + 2  # rank 0 scheduler, rank 1 the client (the script), then workers

        def wrap(probe: list[str]) -> list[str]:
            return env.mpiexec_command(ranks, probe)
    else:
        assert isinstance(env, AllocationEnv)

        def wrap(probe: list[str]) -> list[str]:
            return env.salloc(WORKERS, probe)

    modes = {"daskdeploy": "daskdeploy", "daskdeploy_plain": "daskdeploy-tcp", "raw": "raw"}
    if not plain:
        del modes["daskdeploy_plain"]
    return {side: _probe_side(env, f"{env.name}-{mode}", wrap) for side, mode in modes.items()}


def _in_process_sides(env: BackendEnv, plain: bool, scratch: Path) -> dict[str, Side]:
    sides = {"daskdeploy": _deploy(env)}
    if plain:
        sides["daskdeploy_plain"] = _deploy(env, tls=False)
    if isinstance(env, SSHEnv):
        sides["raw"] = _raw(env, _ssh_cluster(env, scratch))
    elif env.name == "slurm":
        sides["raw"] = _slurm_raw(env, scratch)
    else:
        sides["raw"] = _raw(env, _local_cluster(scratch))
    return sides


def _tls_by_default(env: BackendEnv) -> bool:
    import daskdeploy

    try:
        return bool(daskdeploy.plan(env.name, **env.deploy_options(WORKERS)).options["tls"])
    except Exception:  # allocation and mpi cannot be planned outside a job or launcher
        return env.name != "local"


def _sides(env: BackendEnv, plain: bool, scratch: Path) -> dict[str, Side]:
    """Every side for ``env``: daskdeploy, daskdeploy_plain (with ``plain``) and raw."""
    if isinstance(env, (MPIEnv, AllocationEnv)):
        return _probe_sides(env, plain)
    return _in_process_sides(env, plain, scratch)


# ------------------------------------------------------------------------ measuring


def _measure(side: Side, meter: LoadMeter, pause: float) -> dict[str, Any]:
    """One timed run with the background load meanwhile; a failure becomes ``error``.

    Afterwards, ``pause`` s for exiting processes to go (see ``common.settle``).
    """
    with meter.interval() as load:
        try:
            run = side()
        except Exception as exc:  # record it, keep benchmarking the other runs
            run = {"start": None, "close": None, "error": f"{type(exc).__name__}: {exc}"}
    settle(pause)
    return {**run, "background_cores": load["background_cores"]}


def _order(sides: list[str], repeat: int) -> list[str]:
    return sides if repeat % 2 == 0 else sides[::-1]


def _bench_backend(
    env: BackendEnv, sides: dict[str, Side], repeats: int, smoke: bool, meter: LoadMeter
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    pause = 0.0 if smoke else SETTLE_SECONDS
    if not smoke:
        for name in WARM_UP:  # untimed: imports, page cache, first jobs
            _measure(sides[name], meter, pause)
    for repeat in range(repeats):
        present = [name for name in sides if name != "daskdeploy_plain" or repeat < PLAIN_REPEATS]
        for name in _order(present, repeat):
            runs[name].append(_measure(sides[name], meter, pause))
            _progress(env.name, name, repeat, runs[name][-1])
    return runs


def _progress(backend: str, side: str, repeat: int, run: dict[str, Any]) -> None:
    if run.get("error"):
        text = f"error: {run['error']}"
    else:
        text = f"start {run['start']:.2f} s, close {run['close']:.2f} s"
    print(f"  startup {backend:<10} {side:<16} #{repeat + 1}: {text}", file=sys.stderr, flush=True)


def _summarise(name: str, runs: dict[str, list[dict[str, Any]]], tls: bool) -> dict[str, Any]:
    medians = {}
    for side, side_runs in runs.items():
        ok = [run for run in side_runs if run.get("start") is not None]
        medians[side] = {
            "start": median([run["start"] for run in ok]),
            "close": median([run["close"] for run in ok]),
            "total": median([run["start"] + run["close"] for run in ok]),
        }
    versus = {key: ratio(medians["daskdeploy"][key], medians["raw"][key]) for key in KEYS}
    security = {"daskdeploy": "tls" if tls else "tcp", "daskdeploy_plain": "tcp", "raw": "tcp"}
    entry: dict[str, Any] = {
        "raw_peer": RAW_PEERS[name],
        "workers": WORKERS,
        "runs": runs,
        "medians": medians,
        "ratio": versus,
        "target": target_of(name),
        "pass": versus["total"] is not None and versus["total"] <= target_of(name),
        "security": {side: security[side] for side in runs},
        "background_cores_median": median(
            [run["background_cores"] for side in runs.values() for run in side]
        ),
    }
    if "daskdeploy_plain" in runs:
        plain = {key: ratio(medians["daskdeploy_plain"][key], medians["raw"][key]) for key in KEYS}
        entry["ratio_plain"] = plain
        entry["pass_plain"] = plain["total"] is not None and plain["total"] <= TARGET
    return entry


NOTES = {
    "plain": "daskdeploy with its default TLS, raw peer on plain TCP; ratio_plain and "
    "pass_plain compare daskdeploy tls=False with the raw peer",
    "tls": "daskdeploy with its default TLS against a raw peer on plain TCP",
    "tcp": "both sides on plain TCP",
    "dashboard": "scheduler dashboard on 127.0.0.1 on every side, workers without one",
    "probe": "start timed inside the client rank / the job from the probe script's first "
    "line (imports count on both sides); close from the close call until the launcher "
    "has exited and nothing is left",
    "allocation": "the raw recipe runs `dask scheduler` / `dask worker` as python -m "
    "distributed.cli.dask_scheduler / dask_worker (the same code, without the dask CLI's "
    "plugin loading)",
    "slurm": "raw SLURMCluster with bench_slurm.py's settings plus --no-dashboard workers; "
    "daskdeploy submits one job array",
    "smoke": "smoke: 1 run per side, no warm-up, no tls=False side",
}


def _backend_notes(name: str, runs: dict[str, list[dict[str, Any]]], tls: bool) -> str:
    security = "plain" if "daskdeploy_plain" in runs else "tls" if tls else "tcp"
    keys = [security, "dashboard"]
    keys += ["probe"] if name in ("mpi", "allocation") else []
    keys += [name] if name in NOTES else []
    keys += ["smoke"] if len(runs["raw"]) == 1 and "daskdeploy_plain" not in runs else []
    notes = [NOTES[key] for key in keys]
    errors = [run["error"] for side in runs.values() for run in side if run.get("error")]
    if errors:
        notes.append(f"{len(errors)} failed run(s), first: {errors[0]}")
    left = [run["left"] for side in runs.values() for run in side if run.get("left")]
    if left:
        notes.append(f"{len(left)} run(s) left something {IDLE_TIMEOUT:g} s after close: {left[0]}")
    return "; ".join(notes)


def run(
    envs: Backends, *, repeats: int, smoke: bool, meter: LoadMeter, notes: list[str]
) -> dict[str, Any]:
    """Time start-up and teardown of every side on every prepared backend.

    Parameters
    ----------
    envs
        What :func:`environments.backends` yielded.
    repeats
        Timed runs per side (1 with ``smoke``; daskdeploy_plain at most
        :data:`PLAIN_REPEATS`).
    smoke
        One run per side, no warm-up and no ``tls=False`` side: checks the code path.
    meter
        Records the CPU load of other processes during every run.
    notes
        Messages for the report are appended here.

    Returns
    -------
    dict
        ``backends`` (per backend: ``raw_peer``, ``workers``, ``runs`` (per side a list
        of ``start``, ``close``, ``background_cores`` and, for probes, ``wall``; or
        ``error``), ``medians`` (per side ``start``, ``close``, ``total``), ``ratio``
        (daskdeploy / raw), ``pass`` (``ratio.total`` <= ``target``), ``security`` (per
        side), ``background_cores_median``, ``notes`` and, where TLS is the default and
        not in smoke runs, ``ratio_plain`` and ``pass_plain`` (daskdeploy tls=False / raw)),
        ``skipped``, ``target``, ``repeats``, ``smoke`` and ``order``.
    """
    repeats = 1 if smoke else repeats
    results: dict[str, Any] = {}
    left_out = skipped(envs)
    with _scratch() as scratch:
        for name, env in envs.items():
            tls = _tls_by_default(env)
            try:
                sides = _sides(env, not smoke and tls, scratch)
            except Exception as exc:  # a raw peer that cannot be built: skip the backend
                left_out[name] = f"cannot set up the sides: {type(exc).__name__}: {exc}"
                notes.append(f"startup: {name}: {left_out[name]}")
                continue
            runs = _bench_backend(env, sides, repeats, smoke, env.meter(meter))
            results[name] = _summarise(name, runs, tls)
            results[name]["notes"] = _backend_notes(name, runs, tls)
    return {
        "backends": results,
        "skipped": left_out,
        "target": TARGET,
        "repeats": repeats,
        "smoke": smoke,
        "order": "one untimed warm-up of daskdeploy and raw, then alternating ABC, CBA, ..."
        if not smoke
        else "smoke: one run per side",
    }


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """A scratch directory for the raw peers' workers, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ddbench-startup-") as path:
        yield Path(path)


# -------------------------------------------------------------------------- the probe


def _probe_mpi_raw() -> tuple[Any, Callable[[], None]]:
    import dask_mpi
    from distributed import Client

    dask_mpi.initialize(nthreads=1, interface="lo", dashboard_address="127.0.0.1:0")
    client = Client()  # only rank 1 gets here; the others serve until it exits
    return client, client.close  # dask-mpi's atexit hook then ends the other ranks


def _probe_daskdeploy(backend: str, **options: Any) -> tuple[Any, Callable[[], None]]:
    import daskdeploy

    client = daskdeploy.deploy(backend, quiet=True, timeout=TIMEOUT, **options)
    return client, client.close


def _probe_allocation_raw() -> tuple[Any, Callable[[], None]]:
    """The hand-written recipe: scheduler here, ``srun`` one worker per task."""
    from distributed import Client

    scheduler_file = Path(os.environ["TMPDIR"], f"scheduler-{os.getpid()}.json")
    on_file = ["--scheduler-file", str(scheduler_file)]
    scheduler_args = [*on_file, "--port", "0", "--dashboard-address", "127.0.0.1:0"]
    worker_args = [*on_file, "--nthreads", "1", "--no-dashboard"]
    python = [sys.executable, "-m"]
    scheduler = subprocess.Popen([*python, "distributed.cli.dask_scheduler", *scheduler_args])
    srun = ["srun", f"--ntasks={WORKERS}"]
    workers = subprocess.Popen([*srun, *python, "distributed.cli.dask_worker", *worker_args])
    deadline = time.monotonic() + TIMEOUT
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    client = Client(scheduler_file=str(scheduler_file), timeout=TIMEOUT)

    def close() -> None:
        client.shutdown()  # the scheduler, and with it the workers
        for process in (workers, scheduler):
            process.wait(timeout=TIMEOUT)
        scheduler_file.unlink(missing_ok=True)

    return client, close


PROBES: dict[str, Callable[[], tuple[Any, Callable[[], None]]]] = {
    "mpi-raw": _probe_mpi_raw,
    "mpi-daskdeploy": lambda: _probe_daskdeploy("mpi"),
    "mpi-daskdeploy-tcp": lambda: _probe_daskdeploy("mpi", tls=False),
    "allocation-raw": _probe_allocation_raw,
    "allocation-daskdeploy": lambda: _probe_daskdeploy("allocation"),
    "allocation-daskdeploy-tcp": lambda: _probe_daskdeploy("allocation", tls=False),
}
"""What the probe starts, by mode: returns a client and the function that closes it all."""


def _probe(mode: str, out: str) -> None:
    """Start, wait for WORKERS, close; write start seconds and close wall time to ``out``."""
    t0 = time.perf_counter()
    client, close = PROBES[mode]()
    client.wait_for_workers(WORKERS, timeout=TIMEOUT)
    started = time.perf_counter() - t0
    t_close = time.time()
    close()
    Path(out).write_text(json.dumps({"start": started, "t_close": t_close}))


if __name__ == "__main__" and sys.argv[1:2] == ["--probe"]:
    _probe(*sys.argv[2:4])
