"""A real, self-contained SLURM cluster on localhost.

:class:`LocalSlurm` writes a private munge key and ``slurm.conf`` under a short directory,
starts ``munged``, ``slurmctld`` and one ``slurmd`` per node (Debian's SLURM is built with
``MULTIPLE_SLURMD``, so several nodes share this host) and tears everything down again,
including the ``slurmstepd`` and user processes of jobs still running. It needs root and
the Debian packages ``slurm-wlm`` and ``munge``; :func:`unavailable_reason` says why it cannot
run when it cannot.

The project's fixtures and benchmarks use it, and so can anyone who wants to try the SLURM
backend on a laptop::

    python -m daskdeploy.testing.slurm --nodes 3

prints ``export SLURM_CONF=...`` and keeps the cluster up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..processes import wait_gone
from . import _system
from ._harness import DaemonHarness, StartError, serve
from ._system import POLL as _POLL
from ._system import find_processes, free_ports, kill_processes
from ._system import search_path as _search_path
from ._system import which as _which

__all__ = ["LocalSlurm", "main", "unavailable_reason"]

SERVER_BINARIES = ("slurmctld", "slurmd", "munged", "mungekey")
CLIENT_BINARIES = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
REQUIRED_BINARIES = SERVER_BINARIES + CLIENT_BINARIES

#: Environment variable set (to the cluster's root) in every daemon, every ``slurmstepd``
#: and, through a TaskProlog, every job task, so that :meth:`LocalSlurm.stop` can find them.
MARKER_VAR = "DASKDEPLOY_LOCAL_SLURM"

# Environment variables that steer SLURM client commands; a surrounding SLURM job or user
# settings (SQUEUE_FORMAT, SBATCH_PARTITION, ...) must not leak into the private cluster.
_SLURM_ENV_PREFIXES = (
    "SLURM_",
    "SBATCH_",
    "SALLOC_",
    "SRUN_",
    "SQUEUE_",
    "SINFO_",
    "SCANCEL_",
    "SCONTROL_",
    "SACCT_",
)
_SEP = "\x1f"  # ASCII unit separator: cannot occur in job names, states or comments
_MAX_UNIX_SOCKET = 107  # sun_path is 108 bytes including the trailing NUL


def unavailable_reason() -> str | None:
    """Say why a local SLURM cluster cannot be started on this machine.

    Returns
    -------
    str or None
        ``None`` when :meth:`LocalSlurm.start` can work here; otherwise one sentence naming
        what is missing (root, Linux, or which SLURM and munge programs) and how to install
        them.
    """
    return _system.unavailable_reason(
        "A local SLURM cluster",
        f"A local SLURM cluster needs Linux (this is {sys.platform}).",
        REQUIRED_BINARIES,
        "apt-get install slurm-wlm munge",
    )


# --------------------------------------------------------------------------- processes


def _cluster_processes(root: Path) -> list[int]:
    """Return running processes that belong to the cluster living in ``root``.

    A process belongs to it when its environment carries ``MARKER_VAR=root`` (daemons,
    slurmstepd, job tasks) or one of its arguments is a path under ``root`` (daemons).
    """
    prefix = str(root).rstrip("/") + "/"
    return list(find_processes(marker=(MARKER_VAR, str(root)), argument=prefix))


# --------------------------------------------------------------------------- cluster


class LocalSlurm(DaemonHarness):
    """A real SLURM cluster on localhost: munged, slurmctld and ``nodes`` slurmd daemons.

    Everything (munge key and socket, ``slurm.conf``, controller state, slurmd spools, pid
    files and logs) lives under ``root``, which :meth:`stop` removes. Every daemon runs in
    the foreground (``-D``) as a child process in its own session, so a terminal's Ctrl-C
    does not reach it; :meth:`stop` ends them all, together with every job.

    Parameters
    ----------
    nodes : int
        Number of compute nodes, named ``n1`` ... ``nN``.
    cpus_per_node : int
        CPUs every node declares; may exceed the machine's cores (the nodes oversubscribe).
    memory_mb : int
        ``RealMemory`` of every node in MB; a job asking more ``--mem`` is rejected.
    partition : str
        Name of the single (default) partition holding all nodes.
    root : str or os.PathLike, optional
        A short directory that must not exist or be empty; default: a fresh
        ``/tmp/ddslurm-XXXXXXXX`` at every :meth:`start`. It must be short because munge's
        unix socket path (``root/munge/munge.sock``) must stay under 108 bytes.
    settings : mapping, optional
        More ``slurm.conf`` settings, e.g. ``{"MaxArraySize": 4}`` to make a site's limits
        small enough to test.

    Attributes
    ----------
    partition : str
        The partition name.
    nodes : list of str
        The node names.
    cluster_name : str or None
        The unique ``ClusterName`` of the running cluster.

    Examples
    --------
    >>> with LocalSlurm(nodes=2) as slurm:  # doctest: +SKIP
    ...     slurm.run("sbatch", "--wrap", "sleep 5").stdout
    'Submitted batch job 1\\n'
    """

    _label = "LocalSlurm"
    _not_started = "the LocalSlurm cluster is not started"
    _root_prefix = "ddslurm-"
    _root_mode = 0o711

    def __init__(
        self,
        nodes: int = 3,
        cpus_per_node: int = 8,
        memory_mb: int = 8000,
        partition: str = "debug",
        root: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        if nodes < 1 or cpus_per_node < 1 or memory_mb < 1:
            raise ValueError("nodes, cpus_per_node and memory_mb must be positive")
        if not partition or any(c.isspace() or c in ",=#" for c in partition):
            raise ValueError(f"invalid partition name {partition!r}")
        self.partition = partition
        for key, value in (settings or {}).items():
            if not key.isalnum() or any(c.isspace() for c in str(value)):
                raise ValueError(f"invalid slurm.conf setting {key}={value!r}")
        self.settings = dict(settings or {})
        self.nodes = [f"n{i}" for i in range(1, nodes + 1)]
        self.cpus_per_node = cpus_per_node
        self.memory_mb = memory_mb
        self.cluster_name: str | None = None
        super().__init__(root)
        if self._root_arg is not None:
            socket_path = str(self._root_arg / "munge" / "munge.sock")
            if len(socket_path.encode()) > _MAX_UNIX_SOCKET:
                raise ValueError(
                    f"root {str(self._root_arg)!r} is too long: munge's socket path "
                    f"{socket_path!r} must stay under {_MAX_UNIX_SOCKET + 1} bytes"
                )

    # ------------------------------------------------------------------ properties

    @property
    def conf_path(self) -> Path:
        """Path of the cluster's ``slurm.conf``."""
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment SLURM client commands need: ``{"SLURM_CONF": path}``.

        Without ``SLURM_CONF`` clients fall back to a DNS SRV lookup and fail.
        """
        return {"SLURM_CONF": str(self.conf_path)}

    def __repr__(self) -> str:
        where = str(self._root) if self._root is not None else "stopped"
        return f"<LocalSlurm {self.cluster_name or ''} nodes={self.nodes} {where}>"

    # ------------------------------------------------------------------ clients

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SLURM_ENV_PREFIXES)}
        env["PATH"] = _search_path()
        env.update(self.env)
        return env

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command (``sbatch``, ``squeue``, ...) against this cluster.

        The command sees the caller's environment minus ``SLURM_*``/``SBATCH_*``/``SQUEUE_*``
        (and similar) variables, plus :attr:`env`. It runs in the current directory (where
        ``sbatch`` writes ``slurm-%j.out`` unless told ``-o``).

        Parameters
        ----------
        *args : str
            The command and its arguments, e.g. ``"sbatch", "--wrap", "hostname"``.
        timeout : float
            Seconds before :class:`subprocess.TimeoutExpired` is raised.

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` and ``stderr``; the return code is not checked.
        """
        if not args:
            raise ValueError("run() needs a command")
        command = [_which(args[0]) or args[0], *args[1:]]
        return subprocess.run(
            command,
            env=self._base_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def jobs(self) -> list[dict[str, str]]:
        """List the cluster's active jobs (pending, running, completing, ...).

        Returns
        -------
        list of dict
            One dict per job (array tasks expanded, e.g. id ``7_3``) with keys ``id``,
            ``name``, ``state`` (e.g. ``PENDING``, ``RUNNING``), ``reason`` (``None`` for
            a running job) and ``comment`` (empty when unset). Finished jobs are not listed.

        Raises
        ------
        RuntimeError
            When ``squeue`` fails.
        """
        keys = ("id", "name", "state", "reason", "comment")
        fmt = _SEP.join(("%i", "%j", "%T", "%r", "%k"))
        result = self.run("squeue", "-h", "-r", "-a", "-o", fmt)
        if result.returncode != 0:
            raise RuntimeError(f"squeue failed: {result.stderr.strip()}")
        jobs = []
        for line in result.stdout.splitlines():
            if line.strip():
                values = (line.split(_SEP) + [""] * len(keys))[: len(keys)]
                job = dict(zip(keys, values, strict=True))
                if job["comment"] == "(null)":  # squeue's way of saying "no comment"
                    job["comment"] = ""
                jobs.append(job)
        return jobs

    def _job_ids(self, timeout: float = 10) -> list[str] | None:
        """Active job ids, or None when squeue cannot tell."""
        try:
            result = self.run("squeue", "-h", "-a", "-o", "%i", timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if result.returncode != 0:
            return None
        return result.stdout.split()

    def wait_for_no_jobs(self, timeout: float = 30) -> bool:
        """Wait until ``squeue`` lists no job at all.

        Parameters
        ----------
        timeout : float
            Upper bound in seconds.

        Returns
        -------
        bool
            True when the queue became empty, False at timeout (or when the controller
            never answered).
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ids = self._job_ids(timeout=max(1.0, min(10.0, remaining)))
            if ids == []:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    # ------------------------------------------------------------------ start

    def _write_files(self) -> None:
        root = self.root
        root.chmod(0o711)  # munged wants the socket's directory tree o+x, not writable
        for sub in ("munge", "state", "log", "spool"):
            (root / sub).mkdir(mode=0o711)
        for node in self.nodes:
            (root / "spool" / node).mkdir(mode=0o755)
        key = root / "munge" / "munge.key"
        result = subprocess.run(
            [_which("mungekey") or "mungekey", "--create", "--keyfile", str(key)],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        if result.returncode != 0 or not key.exists():
            raise StartError(f"mungekey failed: {(result.stderr or result.stdout).strip()}", [])
        key.chmod(0o600)

        prolog = root / "taskprolog.sh"
        prolog.write_text(f"#!/bin/sh\necho {shlex.quote(f'export {MARKER_VAR}={root}')}\n")
        prolog.chmod(0o755)
        (root / "plugstack.conf").write_text("")  # ignore /etc/slurm/plugstack.conf.d

        ctld_port, *node_ports = free_ports(1 + len(self.nodes))
        self.cluster_name = f"dd{secrets.token_hex(4)}"
        host = socket.gethostname().split(".")[0] or "localhost"
        lines = [
            "# LocalSlurm cluster written by daskdeploy.testing.slurm",
            f"ClusterName={self.cluster_name}",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root}/munge/munge.sock",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool/%n",
            f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd-%n.pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd-%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"PlugStackConfig={root}/plugstack.conf",
            f"TaskProlog={prolog}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SlurmdParameters=config_overrides",
            "SchedulerParameters=batch_sched_delay=0,bf_interval=1",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "KillWait=5",
            "InactiveLimit=0",
            "MessageTimeout=10",
            "TmpFS=/tmp",
            *(f"{key}={value}" for key, value in self.settings.items()),
        ]
        for node, port in zip(self.nodes, node_ports, strict=True):
            lines.append(
                f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
                f"CPUs={self.cpus_per_node} Sockets=1 CoresPerSocket={self.cpus_per_node} "
                f"ThreadsPerCore=1 RealMemory={self.memory_mb} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={self.partition} Nodes={','.join(self.nodes)} Default=YES "
            "MaxTime=INFINITE State=UP"
        )
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _start_daemon(self, name: str, args: list[str]) -> None:
        env = self._base_env()
        env[MARKER_VAR] = str(self.root)
        command = [_which(args[0]) or args[0], *args[1:]]
        self._spawn(name, command, env, self.root / "log" / f"{name}.out")

    def _log_files(self, name: str) -> list[Path]:
        """The daemon's own log file, else the file holding its stdout/stderr."""
        own, out = self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"
        return [own if own.exists() and own.stat().st_size else out]

    def _unavailable(self) -> str | None:
        return unavailable_reason()

    def _client_ok(self, deadline: float, *args: str) -> str | None:
        remaining = deadline - time.monotonic()
        try:
            result = self.run(*args, timeout=max(0.5, min(3.0, remaining)))
        except subprocess.TimeoutExpired:
            return None
        return result.stdout if result.returncode == 0 else None

    def _nodes_idle(self, deadline: float) -> bool:
        out = self._client_ok(deadline, "sinfo", "-h", "-N", "-o", f"%N{_SEP}%t")
        if out is None:
            return False
        states = dict(line.split(_SEP, 1) for line in out.splitlines() if _SEP in line)
        return all(states.get(node) == "idle" for node in self.nodes)

    def start(self, timeout: float = 30.0) -> LocalSlurm:
        """Write the configuration, start all daemons and wait until every node is idle.

        ``timeout`` (seconds, for the whole start-up), the result (``self``, so that
        ``slurm = LocalSlurm().start()`` works) and the ``RuntimeError`` on failure are
        those of :meth:`DaemonHarness.start <daskdeploy.testing._harness.DaemonHarness.start>`.
        """
        return super().start(timeout)

    def _start(self, deadline: float) -> None:
        root = self.root
        self._write_files()
        sock = root / "munge" / "munge.sock"
        self._start_daemon(
            "munged",
            [
                "munged",
                "--foreground",
                f"--key-file={root}/munge/munge.key",
                f"--socket={sock}",
                f"--pid-file={root}/munge/munged.pid",
                f"--log-file={root}/log/munged.log",
                f"--seed-file={root}/munge/munged.seed",
            ],
        )
        self._wait("munged's socket", sock.exists, deadline, ["munged"])
        self._start_daemon("slurmctld", ["slurmctld", "-D", "-f", str(self.conf_path)])
        self._wait(
            "slurmctld to answer `scontrol ping`",
            lambda: "is UP" in (self._client_ok(deadline, "scontrol", "ping") or ""),
            deadline,
            ["slurmctld"],
        )
        slurmds = [f"slurmd-{node}" for node in self.nodes]
        for name, node in zip(slurmds, self.nodes, strict=True):
            self._start_daemon(name, ["slurmd", "-D", "-f", str(self.conf_path), "-N", node])
        self._wait(
            "all nodes to be idle in sinfo",
            lambda: self._nodes_idle(deadline),
            deadline,
            ["slurmctld", *slurmds],
        )

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop every job and daemon of the cluster and remove ``root``; idempotent.

        Cancels every job, waits (at most 30 s) until the queue is empty so that no
        ``slurmstepd`` survives, asks the controller to shut down (slurmd's follow), stops
        munged, reaps the daemons, SIGKILLs anything of the cluster still running (found
        by :data:`MARKER_VAR` in its environment or by a path under ``root`` in its
        arguments, such as a ``tail -f`` of a log) and removes ``root``. Every wait is
        bounded; it takes ~0.2 s when jobs end promptly on SIGTERM (a job ignoring SIGTERM
        is killed after ``KillWait=5`` s). Also runs at interpreter exit if not called.
        """
        super().stop()

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def _shutdown(self) -> None:
        root = self._root
        slurmds = [name for name in self._procs if name.startswith("slurmd-")]
        grace = 0.0  # without a `scontrol shutdown`, SIGTERM the daemons at once
        if root is not None and self._alive("slurmctld"):
            ids = self._job_ids()
            if ids:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.run("scancel", *ids, timeout=10)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and self._alive("slurmctld"):
                    if not any(self._alive(name) for name in slurmds):
                        break  # nobody left to complete the jobs
                    if self._job_ids(timeout=5) == []:
                        break
                    time.sleep(0.1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.run("scontrol", "shutdown", timeout=10).returncode == 0:
                    grace = 10.0
        slurm = [self._procs[name] for name in ["slurmctld", *slurmds] if name in self._procs]
        self._reap(slurm, grace=grace)
        munged = self._procs.get("munged")
        if munged is not None:
            self._reap([munged], grace=0)
        if root is not None:
            # slurmstepd's and job tasks are not our children (slurmd double-forks them):
            # give them a moment to finish on their own, then SIGKILL whatever is left.
            wait_gone(_cluster_processes(root), 2.0, _POLL)
            kill_processes(lambda: _cluster_processes(root), grace=0, kill_wait=5.0)

    @staticmethod
    def _reap(procs: list[subprocess.Popen[bytes]], grace: float, timeout: float = 5) -> None:
        """Wait ``grace`` s for ``procs`` to exit, SIGTERM, wait ``timeout`` s, SIGKILL, reap."""
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(_POLL)
        for sig_deadline, send in ((timeout, "terminate"), (5.0, "kill")):
            alive = [p for p in procs if p.poll() is None]
            if not alive:
                return
            for p in alive:
                getattr(p, send)()
            deadline = time.monotonic() + sig_deadline
            while any(p.poll() is None for p in alive) and time.monotonic() < deadline:
                time.sleep(_POLL)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    """Run a local SLURM cluster until SIGINT or SIGTERM (``python -m ...testing.slurm``).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--nodes``, ``--cpus-per-node``, ``--memory-mb``,
        ``--partition``; see ``--help``); default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m daskdeploy.testing.slurm",
        description="Run a real SLURM cluster (munged, slurmctld, N slurmd) on localhost "
        "until Ctrl-C. Needs root and `apt-get install slurm-wlm munge`.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--cpus-per-node", type=int, default=8, help="CPUs per node (default 8)")
    parser.add_argument("--memory-mb", type=int, default=8000, help="MB per node (default 8000)")
    parser.add_argument("--partition", default="debug", help="partition name (default debug)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another slurm.conf setting, e.g. MaxArraySize=4 (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.set)

    def announce(cluster: LocalSlurm) -> list[str]:
        return [
            f"export SLURM_CONF={shlex.quote(str(cluster.conf_path))}",
            f"# {len(cluster.nodes)} nodes x {cluster.cpus_per_node} CPUs in partition "
            f"'{cluster.partition}': run the export line in another shell, then e.g. "
            "`sbatch --wrap hostname; squeue`; Ctrl-C here stops the cluster.",
        ]

    serve(
        parser,
        unavailable_reason(),
        lambda: LocalSlurm(
            nodes=args.nodes,
            cpus_per_node=args.cpus_per_node,
            memory_mb=args.memory_mb,
            partition=args.partition,
            settings=settings,
        ).start(),
        announce,
    )


if __name__ == "__main__":
    main()
