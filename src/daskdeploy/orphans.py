"""Finding live deployments and ending them from another process.

A deployment leaves three kinds of traces that another process can find:

* its **record** (:mod:`daskdeploy.records`), written by the owner while it is live;
* its **SLURM jobs**, named with the deployment id and commented ``daskdeploy:<id>``;
* its **local processes**, which inherit the variable ``DASKDEPLOY_DEPLOYMENT_ID`` (set
  by :func:`tag_processes` while the deployment starts and runs; read here from
  ``/proc/<pid>/environ``, this user's processes only), together with
  ``DASKDEPLOY_DEPLOYMENT_OWNER`` (``host:pid:start-ticks`` of the owner).

:func:`find_deployments` merges them (``daskdeploy ls``); :func:`end_deployment` ends
one (``daskdeploy cleanup``): the owner first (SIGTERM, so its own teardown runs), then
the SLURM jobs, the local processes, the processes and directories on SSH hosts, and the
files (credentials, scheduler file, scratch directories, job output, the record). Every
step has a deadline; failures are collected, never raised, and the report says what
was ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import processes, records
from .commands import CommandError, run_command
from .records import ID_PATTERN, DeploymentRecord
from .scratch import PREFIX as SCRATCH_PREFIX
from .scratch import shared_cache_dir

__all__ = [
    "OWNER_VARIABLE",
    "TAG_VARIABLE",
    "CleanupReport",
    "LiveDeployment",
    "end_deployment",
    "find_deployments",
    "tag_processes",
]

#: Set to the deployment id in the environment of every process a deployment starts.
TAG_VARIABLE = "DASKDEPLOY_DEPLOYMENT_ID"
#: ``host:pid:start-ticks`` of the deployment's owner, next to :data:`TAG_VARIABLE`.
OWNER_VARIABLE = "DASKDEPLOY_DEPLOYMENT_OWNER"

RUNNING = "running"
ORPHANED = "orphaned"
UNKNOWN = "unknown"

_OWNER_GRACE = 10.0  # seconds the owner gets for its own teardown after SIGTERM
_PROCESS_GRACE = 3.0  # seconds tagged processes get after SIGTERM
_JOB_WAIT = 20.0  # seconds to wait for cancelled jobs to leave squeue
_SSH_TIMEOUT = 10.0  # seconds to connect to an SSH host at most
_QUICK = 10.0  # seconds for one squeue / scancel call

_lock = threading.Lock()
_tagged: str | None = None  # the deployment whose id this process's environment carries


# --------------------------------------------------------------------------- tagging


def owner_tag() -> str:
    """``host:pid:start-ticks`` of this process, the value of :data:`OWNER_VARIABLE`."""
    ticks = processes.start_ticks(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{'' if ticks is None else ticks}"


def tag_processes(deployment_id: str) -> Callable[[], None]:
    """Make the processes started from now on carry ``deployment_id`` in their environment.

    Returns the function that restores the environment (at teardown).

    Only one deployment per process can tag: while one is live, a second deployment
    started by the same process keeps the first one's tag, so ``daskdeploy cleanup`` of
    the first would also end the second's local processes, and cleaning up the second
    finds its local processes only through its owner (which it signals). One deployment
    per process is the common case.
    """
    global _tagged
    with _lock:
        if _tagged is not None:
            return lambda: None
        saved = {name: os.environ.get(name) for name in (TAG_VARIABLE, OWNER_VARIABLE)}
        os.environ[TAG_VARIABLE] = deployment_id
        os.environ[OWNER_VARIABLE] = owner_tag()
        _tagged = deployment_id

    def restore() -> None:
        global _tagged
        with _lock:
            if _tagged != deployment_id:
                return
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _tagged = None

    return restore


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class TaggedProcess:
    """A local process that carries a deployment's tag."""

    pid: int
    command: str
    owner_host: str | None
    owner_pid: int | None
    owner_start: int | None


@dataclass(frozen=True)
class DeploymentJob:
    """A SLURM job of a deployment, as ``squeue`` lists it."""

    id: str
    name: str
    state: str


def _parse_owner(tag: str) -> tuple[str | None, int | None, int | None]:
    host, _, rest = tag.partition(":")
    pid_text, _, ticks_text = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return host or None, None, None
    return host or None, pid, int(ticks_text) if ticks_text.isdigit() else None


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def tagged_processes(only: str | None = None) -> dict[str, list[TaggedProcess]]:
    """This user's running processes that carry a deployment tag, by deployment id.

    The calling process and its ancestors are never included.
    """
    skip = processes.ancestors()
    found: dict[str, list[TaggedProcess]] = {}
    for pid in processes.user_pids():
        if pid in skip:
            continue
        environment = processes.environ(pid)
        deployment_id = environment.get(TAG_VARIABLE, "")
        if not ID_PATTERN.match(deployment_id) or (only and deployment_id != only):
            continue
        if not processes.is_running(pid):
            continue
        host, owner_pid, owner_start = _parse_owner(environment.get(OWNER_VARIABLE, ""))
        found.setdefault(deployment_id, []).append(
            TaggedProcess(pid, _command_line(pid), host, owner_pid, owner_start)
        )
    return found


def _slurm_configured() -> bool:
    """Whether SLURM seems configured here (if not, failing commands would only be noise)."""
    conf = os.environ.get("SLURM_CONF")
    return bool(conf) or os.path.exists("/etc/slurm/slurm.conf") or os.path.isdir("/run/slurm")


_COMMENT = re.compile(r"^daskdeploy:(dd-[0-9a-f]+)$")


def deployment_jobs(ask: bool = False) -> tuple[dict[str, list[DeploymentJob]], str | None]:
    """This user's SLURM jobs that belong to a deployment, by id, and a problem if any.

    A job belongs to a deployment when its comment is ``daskdeploy:<id>`` or its name is
    a deployment id. Without ``squeue`` there are none; without a SLURM configuration
    (``SLURM_CONF``, ``/etc/slurm/slurm.conf``) SLURM is not asked unless ``ask`` is true.
    """
    if shutil.which("squeue") is None or not (ask or _slurm_configured()):
        return {}, None
    try:
        result = run_command(
            ["squeue", "--me", "-h", "-r", "-o", "%i|%j|%T|%k"],
            timeout=_QUICK,
            what="listing your SLURM jobs with squeue",
        )
    except CommandError as exc:
        return {}, str(exc).splitlines()[0]
    jobs: dict[str, list[DeploymentJob]] = {}
    for line in result.stdout.splitlines():
        fields = line.split("|", 3)
        if len(fields) != 4:
            continue
        job_id, name, state, comment = (field.strip() for field in fields)
        match = _COMMENT.match(comment)
        deployment_id = match.group(1) if match else name
        if ID_PATTERN.match(deployment_id):
            jobs.setdefault(deployment_id, []).append(DeploymentJob(job_id, name, state))
    return jobs, None


@dataclass
class LiveDeployment:
    """Everything found of one deployment: record, SLURM jobs, local processes.

    Attributes
    ----------
    id
        The deployment id.
    record
        Its record, or ``None`` when only jobs or processes were found.
    jobs
        Its SLURM jobs still listed by ``squeue``.
    processes
        Its tagged local processes.
    """

    id: str
    record: DeploymentRecord | None = None
    jobs: list[DeploymentJob] = field(default_factory=list)
    processes: list[TaggedProcess] = field(default_factory=list)

    @property
    def backend(self) -> str:
        """The backend's name (``slurm`` for jobs without a record, else ``?``)."""
        if self.record is not None:
            return self.record.backend
        return "slurm" if self.jobs else "?"

    @property
    def owner(self) -> tuple[str | None, int | None, int | None]:
        """Host, pid and start ticks of the owner, as far as known."""
        if self.record is not None:
            return self.record.hostname, self.record.pid, self.record.pid_start
        for process in self.processes:
            if process.owner_pid is not None:
                return process.owner_host, process.owner_pid, process.owner_start
        return None, None, None

    @property
    def state(self) -> str:
        """``running`` (owner alive), ``orphaned`` (owner gone, traces left), ``unknown``.

        ``unknown`` means the owner runs on another host (or, for SLURM jobs without
        record or local process, that nothing tells where it runs).
        """
        host, pid, ticks = self.owner
        if host is None or pid is None or host != socket.gethostname():
            return UNKNOWN
        return RUNNING if processes.same_process(pid, ticks) else ORPHANED

    @property
    def started(self) -> float | None:
        """Start time (seconds since the epoch) when the record says."""
        return self.record.started if self.record is not None else None

    @property
    def ssh_hosts(self) -> list[str]:
        """SSH hosts the deployment runs processes on, from its record."""
        remote = self.record.data.get("remote_dirs") if self.record is not None else None
        return list(remote) if isinstance(remote, dict) else []

    def what(self) -> str:
        """``"2 slurm jobs, 3 processes, ssh: host1 host2"`` style summary."""
        parts = []
        if self.jobs:
            parts.append(f"{len(self.jobs)} slurm job{'s' if len(self.jobs) != 1 else ''}")
        if self.processes:
            count = len(self.processes)
            parts.append(f"{count} process{'es' if count != 1 else ''}")
        if self.ssh_hosts:
            parts.append("ssh: " + " ".join(self.ssh_hosts))
        if self.record is None:
            parts.append("no record")
        return ", ".join(parts) or "-"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description, for ``daskdeploy ls --json``."""
        host, pid, _ = self.owner
        record = self.record
        return {
            "id": self.id,
            "backend": self.backend,
            "state": self.state,
            "owner": {"host": host, "pid": pid},
            "started": record.started if record else None,
            "started_iso": record.started_iso if record else None,
            "age_seconds": round(time.time() - record.started, 1) if record else None,
            "argv": record.argv if record else None,
            "scheduler_address": record.scheduler_address if record else None,
            "slurm_jobs": [{"id": j.id, "name": j.name, "state": j.state} for j in self.jobs],
            "processes": [{"pid": p.pid, "command": p.command} for p in self.processes],
            "ssh_hosts": self.ssh_hosts,
            "record": str(records.record_path(self.id)) if record else None,
        }


def find_deployments() -> tuple[list[LiveDeployment], list[str]]:
    """Every deployment with a trace here: records, SLURM jobs, tagged processes.

    Returns
    -------
    tuple
        The deployments (those with a record first, oldest first) and the problems met
        while looking (e.g. ``squeue`` failing), as sentences.
    """
    found: dict[str, LiveDeployment] = {}
    for record in records.read_all():
        found[record.id] = LiveDeployment(record.id, record=record)
    jobs, problem = deployment_jobs()
    for deployment_id, listed in jobs.items():
        found.setdefault(deployment_id, LiveDeployment(deployment_id)).jobs = listed
    for deployment_id, tagged in tagged_processes().items():
        found.setdefault(deployment_id, LiveDeployment(deployment_id)).processes = tagged
    problems = [f"Could not list SLURM jobs: {problem}"] if problem else []
    return list(found.values()), problems


def find_deployment(deployment_id: str) -> LiveDeployment | None:
    """What is found of one deployment, or ``None`` when nothing is."""
    record = records.read(deployment_id)
    jobs, _ = deployment_jobs()
    processes = tagged_processes(deployment_id).get(deployment_id, [])
    listed = jobs.get(deployment_id, [])
    if record is None and not listed and not processes:
        return None
    return LiveDeployment(deployment_id, record, listed, processes)


# --------------------------------------------------------------------------- ending


@dataclass
class CleanupReport:
    """What :func:`end_deployment` did.

    Attributes
    ----------
    id
        The deployment.
    owner
        What happened to the owner process (empty when there was nothing to do).
    jobs_cancelled
        SLURM jobs cancelled.
    processes_ended
        Local processes ended (SIGTERM or SIGKILL).
    processes_killed
        Of those, how many needed SIGKILL.
    ssh_hosts
        SSH hosts whose processes and directories were removed.
    files_removed
        Files and directories removed (record, scratch, credentials, scheduler file,
        job output).
    errors
        What could not be done, one sentence each.
    seconds
        How long it took.
    """

    id: str
    owner: str = ""
    jobs_cancelled: int = 0
    processes_ended: int = 0
    processes_killed: int = 0
    ssh_hosts: list[str] = field(default_factory=list)
    files_removed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One sentence: what was ended and removed, and how long it took."""
        parts = [self.owner] if self.owner else []
        if self.jobs_cancelled:
            plural = "s" if self.jobs_cancelled != 1 else ""
            parts.append(f"cancelled {self.jobs_cancelled} SLURM job{plural}")
        if self.processes_ended:
            killed = f" ({self.processes_killed} with SIGKILL)" if self.processes_killed else ""
            plural = "es" if self.processes_ended != 1 else ""
            parts.append(f"ended {self.processes_ended} local process{plural}{killed}")
        if self.ssh_hosts:
            parts.append(f"cleaned up on {', '.join(self.ssh_hosts)}")
        if self.files_removed:
            parts.append(f"removed {self.files_removed} file(s) or directories")
        did = "; ".join(parts) or "nothing was left"
        return f"{self.id}: {did} ({self.seconds:.1f} s)."


def end_deployment(target: LiveDeployment | str) -> CleanupReport:
    """End a deployment: its owner, SLURM jobs, local and SSH processes, and files.

    Parameters
    ----------
    target
        What :func:`find_deployments` found, or a deployment id (looked up here).

    Returns
    -------
    CleanupReport
        What was done and what failed. Never raises for a failing step; every step has a
        deadline, so the whole takes at most about a minute (typically well under 5 s).
    """
    began = time.monotonic()
    deployment = target if isinstance(target, LiveDeployment) else None
    deployment_id = target.id if isinstance(target, LiveDeployment) else target
    if not ID_PATTERN.match(deployment_id):
        raise ValueError(f"{deployment_id!r} is not a deployment id (dd- and hex digits)")
    report = CleanupReport(deployment_id)
    if deployment is None:
        deployment = find_deployment(deployment_id) or LiveDeployment(deployment_id)
    record = deployment.record or records.read(deployment_id)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("ending the owner", lambda: _end_owner(record, report)),
        ("cancelling SLURM jobs", lambda: _cancel_jobs(deployment_id, record, report)),
        ("ending local processes", lambda: _end_processes(deployment_id, report)),
        ("cleaning up on the SSH hosts", lambda: _end_remote(record, report)),
        ("removing files", lambda: _remove_files(deployment_id, record, report)),
    ]
    owner_host, owner_pid, owner_start = deployment.owner
    if (
        owner_host == socket.gethostname()
        and owner_pid in processes.ancestors()
        and processes.same_process(owner_pid, owner_start)
    ):
        report.errors.append(
            f"{deployment_id} is owned by this command's own process or one of its parents "
            f"(pid {owner_pid}); not ending it from inside."
        )
        report.seconds = time.monotonic() - began
        return report
    for description, step in steps:
        try:
            step()
        except Exception as exc:
            report.errors.append(f"{description[:1].upper()}{description[1:]} failed: {exc}")
    report.seconds = time.monotonic() - began
    return report


def _end_owner(record: DeploymentRecord | None, report: CleanupReport) -> None:
    if record is None:
        return
    alive = record.owner_alive()
    if alive is None:
        report.owner = f"owner pid {record.pid} runs on {record.hostname}, not signalled"
        return
    if not alive:
        return
    pid = record.pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not processes.wait_gone([pid], _OWNER_GRACE):
        report.owner = f"owner pid {pid} ended on SIGTERM (its own teardown ran)"
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if processes.wait_gone([pid], 2.0):
        report.errors.append(f"The owner pid {pid} is still running after SIGKILL.")
    report.owner = f"owner pid {pid} killed (no exit {_OWNER_GRACE:g} s after SIGTERM)"


def _cancel_jobs(
    deployment_id: str, record: DeploymentRecord | None, report: CleanupReport
) -> None:
    if shutil.which("scancel") is None:
        return
    has_jobs = record is not None and record.backend == "slurm"
    jobs, problem = deployment_jobs(ask=has_jobs)
    listed = jobs.get(deployment_id, [])
    if problem and has_jobs:
        report.errors.append(problem)
    if not listed and not (problem and has_jobs):  # nothing to cancel, or SLURM is not here
        return
    # Jobs found by their comment but renamed: cancel them by id (an array as a whole).
    renamed = sorted({job.id.split("_")[0] for job in listed if job.name != deployment_id})
    commands = [["scancel", f"--name={deployment_id}"]]
    if renamed:
        commands.append(["scancel", *renamed])
    for command in commands:
        run_command(command, timeout=_QUICK, what="cancelling jobs with scancel")
    report.jobs_cancelled = len(listed)
    deadline = time.monotonic() + _JOB_WAIT
    while listed and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs, problem = deployment_jobs(ask=True)
        listed = jobs.get(deployment_id, []) if not problem else listed
    if listed:
        report.errors.append(
            f"SLURM still lists {len(listed)} job(s) {_JOB_WAIT:g} s after scancel: "
            + ", ".join(f"{job.id} {job.state}" for job in listed)
        )


def _end_processes(deployment_id: str, report: CleanupReport) -> None:
    for grace in (_PROCESS_GRACE, 1.0):  # a second round for processes started meanwhile
        found = tagged_processes(deployment_id).get(deployment_id, [])
        if not found:
            return
        ended, killed = processes.terminate([process.pid for process in found], grace)
        report.processes_ended += len(ended) + len(killed)
        report.processes_killed += len(killed)
    left = tagged_processes(deployment_id).get(deployment_id, [])
    if left:
        report.errors.append(
            f"{len(left)} local process(es) still running: "
            + ", ".join(str(process.pid) for process in left)
        )


def _end_remote(record: DeploymentRecord | None, report: CleanupReport) -> None:
    if record is None:
        return
    remote_dirs = record.data.get("remote_dirs")
    if not isinstance(remote_dirs, dict) or not remote_dirs:
        return
    from .backends.ssh.hosts import end_remote_deployment

    options = dict(record.data.get("connect_options") or {})
    timeout = min(float(options.get("connect_timeout") or _SSH_TIMEOUT), _SSH_TIMEOUT)
    options["connect_timeout"] = timeout
    failures = end_remote_deployment(
        {str(host): str(path) for host, path in remote_dirs.items()},
        options,
        timeout,
        f"{SCRATCH_PREFIX}{record.id}",
    )
    report.ssh_hosts = [host for host in remote_dirs if host not in failures]
    for host, cause in failures.items():
        report.errors.append(f"SSH host {host}: {cause}")


def _remove(path: Path, report: CleanupReport) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return
    report.files_removed += 1


def _remove_files(
    deployment_id: str, record: DeploymentRecord | None, report: CleanupReport
) -> None:
    candidates = [
        shared_cache_dir("credentials", deployment_id),
        shared_cache_dir("rendezvous", f"{deployment_id}.json"),
    ]
    # Its scratch directories (daskdeploy-<id>-pid<pid>-...) and the spill directories its
    # workers made on this host (daskdeploy-<id>-XXXXXX): a worker killed before its
    # shell's exit trap ran leaves one behind.
    scratch_prefix = f"{SCRATCH_PREFIX}{deployment_id}-"
    with contextlib.suppress(OSError):
        for entry in Path(tempfile.gettempdir()).iterdir():
            if entry.name.startswith(scratch_prefix) and entry.lstat().st_uid == os.getuid():
                candidates.append(entry)
    if record is not None:
        if record.scratch_dir and Path(record.scratch_dir).name.startswith(scratch_prefix):
            candidates.append(Path(record.scratch_dir))
        logs = record.data.get("log_directory")
        if record.data.get("remove_logs") and logs and Path(logs).name == deployment_id:
            candidates.append(Path(logs))
    for path in dict.fromkeys(candidates):
        try:
            _remove(path, report)
        except OSError as exc:
            report.errors.append(f"Could not remove {path}: {exc}")
    try:
        if records.remove(deployment_id):
            report.files_removed += 1
    except OSError as exc:
        report.errors.append(f"Could not remove the record of {deployment_id}: {exc}")
