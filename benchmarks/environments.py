"""The real components each backend needs, started once for a whole benchmark run.

``with backends(["local", "slurm", "ssh"], smoke=False, notes=notes) as envs:`` yields a
mapping of backend name to :class:`BackendEnv` for every backend that can run here:

* ``local``: nothing to start;
* ``slurm`` and ``allocation``: one private SLURM cluster on localhost
  (:class:`daskdeploy.testing.slurm.LocalSlurm`), shared by both;
* ``ssh``: one ``sshd`` in each of three network namespaces
  (:class:`daskdeploy.testing.ssh.LocalSSHHosts`): the scheduler goes on the first host,
  one worker on each of the others;
* ``mpi``: nothing to start; MPICH's ``mpiexec`` next to this Python launches the ranks.

A backend whose component cannot run here (not root, SLURM or sshd not installed, no
``mpiexec``, ...) is left out; :func:`skipped` says why. Everything lives under one
temporary directory (dask config, ``TMPDIR`` and ``XDG_CACHE_HOME`` of every subprocess,
data): at the end of the block (also on Ctrl-C, SIGTERM or an exception) every process
carrying the run's marker is killed, the components are stopped and the directory is
removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import LoadMeter

__all__ = [
    "BACKENDS",
    "MARKER_VAR",
    "AllocationEnv",
    "BackendEnv",
    "Backends",
    "LocalEnv",
    "MPIEnv",
    "SSHEnv",
    "SlurmEnv",
    "TrackingLoadMeter",
    "backends",
    "kill_marked",
    "run_command",
    "skipped",
    "terminate",
]

BACKENDS = ("local", "slurm", "allocation", "ssh", "mpi")
"""Every backend this module can prepare, in the order benchmarks visit them."""

MARKER_VAR = "DASKDEPLOY_BENCH_MARKER"
"""Set (to the run's directory) in every subprocess, so leftovers can be found and ended."""

SLURM_NODES = 3
SLURM_CPUS_PER_NODE = 8
SLURM_MEMORY_MB = 32000
ALLOCATION_MEM_PER_CPU_MB = 1500
ALLOCATION_TIME_LIMIT = "00:15:00"
SSH_NAMESPACES = 3
SSH_REMOTE_PATTERN = "distributed.cli.dask_spec"
"""Every remote scheduler and worker of the ssh backend (and of SSHCluster) runs this."""

IDLE_TIMEOUT = 60.0
"""Seconds :meth:`BackendEnv.wait_idle` waits for the backend to have nothing left."""

_SLURM_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_")


# --------------------------------------------------------------------------- processes


def _process_table() -> dict[int, tuple[str, int]]:
    """``{pid: (state, parent pid)}`` of every process, read from ``/proc``."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            table[int(entry)] = (fields[0].decode(), int(fields[1]))
        except (OSError, ValueError, IndexError):
            continue
    return table


def _descendants(table: dict[int, tuple[str, int]]) -> set[int]:
    """Pids of every process below this one in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, (_, parent) in table.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _marked_pids(marker: str, variable: str = MARKER_VAR, foreign: bool = False) -> list[int]:
    """Running (not zombie) processes whose environment has ``variable=marker``.

    With ``foreign``, only those that do not descend from this process: the job tasks
    and ``slurmstepd`` of a LocalSlurm, not its daemons.
    """
    needle = f"{variable}={marker}".encode()
    table = _process_table()
    skip = {os.getpid(), *(_descendants(table) if foreign else ())}
    return [
        pid
        for pid, (state, _) in table.items()
        if state not in ("Z", "X")
        and pid not in skip
        and needle in _read(pid, "environ").split(b"\0")
    ]


def _spawned_children() -> list[int]:
    """Live descendants of this process started by multiprocessing (local workers)."""
    table = _process_table()
    return [
        pid
        for pid in _descendants(table)
        if table[pid][0] not in ("Z", "X") and b"spawn_main" in _read(pid, "cmdline")
    ]


def terminate(find: Callable[[], list[int]], grace: float = 3.0) -> list[int]:
    """SIGTERM the processes ``find()`` returns, SIGKILL those left after ``grace`` s.

    Returns
    -------
    list of int
        The pids ``find()`` returned at first (empty: nothing was running).
    """
    first = find()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        pids = find()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while find() and time.monotonic() < deadline:
            time.sleep(0.05)
    return first


def kill_marked(marker: str, grace: float = 3.0) -> list[int]:
    """:func:`terminate` every process carrying ``MARKER_VAR=marker``; return their pids."""
    return terminate(lambda: _marked_pids(marker), grace)


def _end_group(process: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM ``process``'s session (it leads one), then SIGKILL it after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(
    command: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``command`` in its own session; return (wall seconds, completed process).

    At the timeout, or when this process is interrupted, the whole session gets SIGTERM
    and, 5 s later, SIGKILL. A timed-out command is returned with status 124 and a line
    saying so at the end of its stderr; an interruption is re-raised.
    """
    t0 = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(process)
        out, err = process.communicate()
        elapsed = time.perf_counter() - t0
        err += f"\n[benchmark: timed out after {timeout:g} s and was killed]"
        return elapsed, subprocess.CompletedProcess(command, 124, out, err)
    except BaseException:
        _end_group(process)
        raise
    return time.perf_counter() - t0, subprocess.CompletedProcess(
        command, process.returncode, out, err
    )


# --------------------------------------------------------------------------- load


class TrackingLoadMeter(LoadMeter):
    """A :class:`common.LoadMeter` that also counts marked processes that end early.

    ``LoadMeter`` reads the CPU time of marked processes (SLURM job tasks, which do not
    descend from this process) when an interval starts and ends, so a worker that starts
    and exits within the interval (every run that closes its deployment) would count as
    *background* load. Here a thread samples them every :attr:`POLL` s during the
    interval, and the last sample of each one that has ended counts as own at the end.
    """

    POLL = 0.25

    def __init__(self, marker: tuple[str, str]) -> None:
        super().__init__(marker)
        self._last: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        psutil = self._psutil
        known = {p.pid: p for p in self._me.children(recursive=True)}
        used = {}
        for proc in self._marked(known):
            with contextlib.suppress(psutil.Error):
                ct = proc.cpu_times()
                used[proc.pid] = ct.user + ct.system + ct.children_user + ct.children_system
        return used

    def _own(self) -> float:
        alive = self._sample()
        ended = sum(cpu for pid, cpu in self._last.items() if pid not in alive)
        return super()._own() + ended

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.POLL):
            self._last.update(self._sample())

    @contextlib.contextmanager
    def interval(self) -> Iterator[dict[str, float | None]]:
        """Like :meth:`LoadMeter.interval`, sampling the marked processes meanwhile."""
        if not self.available:
            with super().interval() as sample:
                yield sample
            return
        self._last = {}
        stop = threading.Event()
        poller = threading.Thread(target=self._poll, args=(stop,), daemon=True)
        with super().interval() as sample:
            poller.start()
            try:
                yield sample
            finally:
                stop.set()
                poller.join()
                self._last.update(self._sample())


# --------------------------------------------------------------------------- backends


@dataclasses.dataclass
class BackendEnv:
    """How to use one backend against the components started for this run.

    Attributes
    ----------
    name
        The backend's name, as ``daskdeploy.deploy(name)`` takes it.
    deploy_kwargs
        Keyword arguments for an in-process ``daskdeploy.deploy(name, **deploy_kwargs)``
        (local, slurm, ssh: the connect options); empty where deploy() must run elsewhere
        (allocation: inside a job; mpi: under mpiexec). :meth:`deploy_options` adds a
        worker count (for ssh: a host list).
    env
        Extra environment for subprocesses (``SLURM_CONF``, ``DASK_CONFIG``, ``TMPDIR``,
        ``XDG_CACHE_HOME``, the run's marker); :meth:`subprocess_env` merges it.
    workdir
        A private directory of the run where subprocesses may write.
    marker
        ``(variable, value)`` carried by the component's processes that are not this
        process's descendants (SLURM job tasks, SSH sessions), for ``LoadMeter``.
    """

    name: str
    deploy_kwargs: dict[str, Any]
    env: dict[str, str]
    workdir: Path
    marker: tuple[str, str] | None = None

    def subprocess_env(self) -> dict[str, str]:
        """This process's environment without outside SLURM settings, plus :attr:`env`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_SLURM_PREFIXES)}
        return {**base, **self.env}

    def daskdeploy_run(self, args: list[str], workers: int | None) -> list[str]:
        """``python -m daskdeploy run --backend NAME [-n WORKERS] ARGS``."""
        count = [] if workers is None else ["-n", str(workers)]
        return [sys.executable, "-m", "daskdeploy", "run", "--backend", self.name, *count, *args]

    def cli_command(self, args: list[str], workers: int) -> list[str]:
        """The full command line that runs ``daskdeploy run`` ARGS on ``workers`` workers."""
        return self.daskdeploy_run(args, workers)

    def deploy_options(self, workers: int) -> dict[str, Any]:
        """:attr:`deploy_kwargs` plus what asks for ``workers`` workers of one thread each."""
        return {**self.deploy_kwargs, "workers": workers, "threads_per_worker": 1}

    def run_cli(
        self, args: list[str], workers: int, timeout: float
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Run :meth:`cli_command`; return (wall seconds, completed process).

        The wall time ends when the command has exited; :meth:`wait_idle` (not timed)
        then waits until the backend has nothing left running.
        """
        result = run_command(
            self.cli_command(args, workers), self.subprocess_env(), timeout, self.workdir
        )
        self.wait_idle()
        return result

    def meter(self, default: LoadMeter) -> LoadMeter:
        """``default``, or one that also counts :attr:`marker`'s processes as own load."""
        return default if self.marker is None else TrackingLoadMeter(self.marker)

    def leftovers(self) -> list[str]:
        """What of a finished deployment still runs (processes, jobs); empty when nothing."""
        return [f"pid {pid}" for pid in _marked_pids(self.env[MARKER_VAR])]

    def wait_idle(self, timeout: float = IDLE_TIMEOUT) -> list[str]:
        """Poll :meth:`leftovers` every 50 ms until it is empty or ``timeout`` s pass.

        What is still left at the timeout is ended (:meth:`end_leftovers`), so that the
        next run starts on an idle backend.

        Returns
        -------
        list of str
            What was still left at the timeout (empty: the backend became idle).
        """
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers()
            if not left:
                return left
            if time.monotonic() > deadline:
                self.end_leftovers()
                return left
            time.sleep(0.05)

    def end_leftovers(self) -> None:
        """Kill every process of the run still running."""
        kill_marked(self.env[MARKER_VAR])


@dataclasses.dataclass
class LocalEnv(BackendEnv):
    """The ``local`` backend; in-process deployments' workers count as leftovers too."""

    def leftovers(self) -> list[str]:
        """Worker processes this process spawned, then processes of the run."""
        return [f"pid {pid}" for pid in _spawned_children()] or super().leftovers()

    def end_leftovers(self) -> None:
        """Kill the spawned workers, then every process of the run."""
        terminate(_spawned_children)
        super().end_leftovers()


@dataclasses.dataclass
class SlurmEnv(BackendEnv):
    """The ``slurm`` backend on the run's LocalSlurm; idle means an empty queue."""

    slurm: Any = None

    def leftovers(self) -> list[str]:
        """Jobs still in squeue, job processes still alive, then processes of the run."""
        try:
            jobs = self.slurm.jobs()
        except Exception as exc:  # squeue failed: report it as something left
            return [f"squeue failed: {exc}"]
        if jobs:
            return [f"job {job['id']} {job['state']}" for job in jobs]
        assert self.marker is not None
        variable, root = self.marker
        tasks = _marked_pids(root, variable, foreign=True)
        return [f"job process {pid}" for pid in tasks] or super().leftovers()

    def end_leftovers(self) -> None:
        """Cancel every job, kill the job processes left, then every process of the run."""
        ids = [job["id"] for job in self.slurm.jobs()]
        if ids:
            self.slurm.run("scancel", *ids)
            self.slurm.wait_for_no_jobs(timeout=30)
        assert self.marker is not None
        variable, root = self.marker
        terminate(lambda: _marked_pids(root, variable, foreign=True))
        super().end_leftovers()


@dataclasses.dataclass
class AllocationEnv(SlurmEnv):
    """The ``allocation`` backend: ``daskdeploy run`` inside an ``salloc`` allocation."""

    def salloc(self, tasks: int, command: list[str]) -> list[str]:
        """``salloc`` holding ``tasks`` one-core tasks on one node, running ``command``.

        ``salloc`` returns when ``command`` exits and the allocation is released, so its
        wall time is the user's (``sbatch --wait`` polls at growing intervals instead).
        """
        return [
            shutil.which("salloc") or "salloc",
            "--quiet",
            "-N",
            "1",
            "-n",
            str(tasks),
            f"--mem-per-cpu={ALLOCATION_MEM_PER_CPU_MB}",
            "-t",
            ALLOCATION_TIME_LIMIT,
            "-J",
            "ddbench-allocation",
            *command,
        ]

    def cli_command(self, args: list[str], workers: int) -> list[str]:
        """``salloc -n WORKERS ... python -m daskdeploy run --backend allocation ...``."""
        return self.salloc(workers, self.daskdeploy_run(args, workers))


@dataclasses.dataclass
class SSHEnv(BackendEnv):
    """The ``ssh`` backend on the run's LocalSSHHosts (namespace hosts)."""

    hosts: Any = None

    def host_list(self, workers: int) -> list[str]:
        """Scheduler on the first namespace host, ``workers`` workers spread over the rest."""
        first, *others = self.hosts.hosts
        return [first, *(others[i % len(others)] for i in range(workers))]

    def cli_command(self, args: list[str], workers: int) -> list[str]:
        """``daskdeploy run --backend ssh --option hosts=[...]``: the host list sets workers.

        The connect options come from the run's dask config (``DASK_CONFIG``).
        """
        hosts = f"hosts=[{','.join(self.host_list(workers))}]"
        return self.daskdeploy_run(["--option", hosts, *args], None)

    def deploy_options(self, workers: int) -> dict[str, Any]:
        """:attr:`deploy_kwargs` with a host list for ``workers`` workers of one thread."""
        return {**self.deploy_kwargs, "hosts": self.host_list(workers), "threads_per_worker": 1}

    def leftovers(self) -> list[str]:
        """Remote schedulers and workers still running on the hosts, then marked processes."""
        remote = self.hosts.remote_processes(SSH_REMOTE_PATTERN)
        return [f"remote pid {pid}" for pid in remote] or super().leftovers()

    def end_leftovers(self) -> None:
        """Kill the remote schedulers and workers, then every process of the run."""
        terminate(lambda: self.hosts.remote_processes(SSH_REMOTE_PATTERN))
        super().end_leftovers()


@dataclasses.dataclass
class MPIEnv(BackendEnv):
    """The ``mpi`` backend: ``daskdeploy run --backend mpi`` relaunches under mpiexec."""

    mpiexec: str = "mpiexec"

    def mpiexec_command(self, ranks: int, command: list[str]) -> list[str]:
        """``mpiexec -n RANKS COMMAND`` with the launcher matching this Python's mpi4py."""
        return [self.mpiexec, "-n", str(ranks), *command]


class Backends(dict[str, BackendEnv]):
    """Backend name to :class:`BackendEnv`; :attr:`skipped` names those left out and why."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


def skipped(envs: Backends) -> dict[str, str]:
    """Backend name to the reason it was left out, for the mapping :func:`backends` yields."""
    return dict(getattr(envs, "skipped", {}))


# --------------------------------------------------------------------------- availability


def _slurm_reason() -> str | None:
    from daskdeploy.testing.slurm import unavailable_reason

    return unavailable_reason()


def _jobqueue_reason() -> str | None:
    if importlib.util.find_spec("dask_jobqueue") is None:
        return "dask-jobqueue is not installed (pip install 'daskdeploy[slurm]')"
    return _slurm_reason()


def _ssh_reason() -> str | None:
    if importlib.util.find_spec("asyncssh") is None:
        return "asyncssh is not installed (pip install 'daskdeploy[ssh]')"
    from daskdeploy.testing.ssh import unavailable_reason

    return unavailable_reason()


def _mpi_reason() -> str | None:
    from daskdeploy.testing.mpi import unavailable_reason

    return unavailable_reason()


_REASONS: dict[str, Callable[[], str | None]] = {
    "local": lambda: None,
    "slurm": _jobqueue_reason,  # the raw peer is dask-jobqueue's SLURMCluster
    "allocation": _slurm_reason,
    "ssh": _ssh_reason,
    "mpi": _mpi_reason,
}


# --------------------------------------------------------------------------- the run


class _Run:
    """The run's directory, shared components and the environment every backend gets."""

    def __init__(self, stack: contextlib.ExitStack, notes: list[str]) -> None:
        self.stack = stack
        self.notes = notes
        self.root = Path(tempfile.mkdtemp(prefix="ddbench-"))
        stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        stack.callback(self._sweep)  # before the directory goes (callbacks run LIFO)
        for sub in ("config", "tmp", "cache", "work"):
            (self.root / sub).mkdir()
        self._slurm: Any = None

    @property
    def env(self) -> dict[str, str]:
        """Isolated dask config, temporary and cache directories, and the marker."""
        return {
            "DASK_CONFIG": str(self.root / "config"),
            "TMPDIR": str(self.root / "tmp"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "PYTHONUNBUFFERED": "1",
            MARKER_VAR: str(self.root),
        }

    def _sweep(self) -> None:
        left = kill_marked(str(self.root))
        if left:
            self.notes.append(f"environments: killed {len(left)} process(es) left running")

    def slurm(self) -> Any:
        """The run's LocalSlurm, started at the first call and stopped with the run."""
        if self._slurm is None:
            from daskdeploy.testing.slurm import LocalSlurm

            cluster = LocalSlurm(
                nodes=SLURM_NODES, cpus_per_node=SLURM_CPUS_PER_NODE, memory_mb=SLURM_MEMORY_MB
            ).start()
            self.stack.callback(cluster.stop)
            self._slurm = cluster
        return self._slurm

    def common(self, name: str, **extra: Any) -> dict[str, Any]:
        """The fields every :class:`BackendEnv` shares."""
        return {"name": name, "env": dict(self.env), "workdir": self.root / "work", **extra}


def _local(run: _Run) -> BackendEnv:
    return LocalEnv(**run.common("local", deploy_kwargs={}))


def _slurm_fields(run: _Run, name: str) -> dict[str, Any]:
    from daskdeploy.testing.slurm import MARKER_VAR as SLURM_MARKER

    slurm = run.slurm()
    fields = run.common(name, slurm=slurm, marker=(SLURM_MARKER, str(slurm.root)))
    fields["env"].update(slurm.env)
    return fields


def _slurm_backend(run: _Run) -> BackendEnv:
    return SlurmEnv(deploy_kwargs={}, **_slurm_fields(run, "slurm"))


def _allocation(run: _Run) -> BackendEnv:
    return AllocationEnv(deploy_kwargs={}, **_slurm_fields(run, "allocation"))


def _ssh(run: _Run) -> BackendEnv:
    import yaml

    from daskdeploy.testing.ssh import MARKER_VAR as SSH_MARKER
    from daskdeploy.testing.ssh import LocalSSHHosts

    hosts = LocalSSHHosts(namespaces=SSH_NAMESPACES, loopback=False).start()
    run.stack.callback(hosts.stop)
    options = {"connect_options": hosts.connect_options()}
    config = {"daskdeploy": {"ssh": options}}
    (run.root / "config" / "daskdeploy-ssh.yaml").write_text(yaml.safe_dump(config))
    return SSHEnv(
        deploy_kwargs=dict(options),
        hosts=hosts,
        marker=(SSH_MARKER, str(hosts.root)),
        **run.common("ssh"),
    )


def _mpi(run: _Run) -> BackendEnv:
    from daskdeploy.backends.mpi.launchers import find_mpiexec

    return MPIEnv(deploy_kwargs={}, mpiexec=find_mpiexec() or "mpiexec", **run.common("mpi"))


_STARTERS: dict[str, Callable[[_Run], BackendEnv]] = {
    "local": _local,
    "slurm": _slurm_backend,
    "allocation": _allocation,
    "ssh": _ssh,
    "mpi": _mpi,
}


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` and hide outside SLURM settings; restore afterwards.

    In-process deployments (``deploy("slurm")``, dask-jobqueue) read ``SLURM_CONF`` and
    ``XDG_CACHE_HOME`` from here.
    """
    touched = [k for k in os.environ if k.startswith(_SLURM_PREFIXES)] + list(values)
    saved = {k: os.environ[k] for k in touched if k in os.environ}
    for key in touched:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key in touched:
            os.environ.pop(key, None)
        os.environ.update(saved)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the block, so clean-up runs on it too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def backends(names: list[str], *, smoke: bool, notes: list[str]) -> Iterator[Backends]:
    """Start what the named backends need; stop all of it and remove its files at exit.

    Parameters
    ----------
    names
        Backends wanted, a subset of :data:`BACKENDS` (unknown names are skipped).
    smoke
        A smoke run; the same components start either way (kept for a uniform
        interface with the benchmark sections).
    notes
        Messages for the report are appended here (start failures, leftovers).

    Yields
    ------
    Backends
        A dict of name to :class:`BackendEnv` for every backend that can run; its
        ``skipped`` attribute (also :func:`skipped`) maps the others to the reason.
    """
    envs = Backends()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_interrupts())
        run = _Run(stack, notes)
        environ = {"XDG_CACHE_HOME": run.env["XDG_CACHE_HOME"]}
        for name in names:
            reason = _REASONS[name]() if name in _REASONS else f"unknown backend {name!r}"
            if reason is None:
                try:
                    envs[name] = _STARTERS[name](run)
                except Exception as exc:  # one component failing must not end the run
                    reason = f"could not start its components: {exc}"
            if reason is not None:
                envs.skipped[name] = reason
                notes.append(f"{name}: skipped: {reason}")
                continue
            environ.update({k: v for k, v in envs[name].env.items() if k == "SLURM_CONF"})
        stack.enter_context(_environ(environ))
        yield envs
