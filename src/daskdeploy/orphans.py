"""Finding live deployments and ending them from another process.

A deployment leaves three kinds of traces that another process can find:

* its **record** (:mod:`daskdeploy.records`), written by the owner while it is live;
* its **local processes**, which inherit the variable ``DASKDEPLOY_DEPLOYMENT_ID`` (set
  by :func:`tag_processes` while the deployment starts and runs; read from each
  process's environment, this user's processes only), together with
  ``DASKDEPLOY_DEPLOYMENT_OWNER`` (``host:pid:start-ticks`` of the owner);
* what its **backend** left elsewhere (batch jobs, processes on remote hosts), which only
  the backend can find and end: every registered backend is asked through
  :meth:`~daskdeploy.backends.base.Backend.find_leftovers` and
  :meth:`~daskdeploy.backends.base.Backend.end_leftovers`.

:func:`find_deployments` merges them (``daskdeploy ls``); :func:`end_deployment` ends
one (``daskdeploy cleanup``, and the reaper): the owner first (SIGTERM, so its own
teardown runs), then every backend's leftovers, the local processes, and the files
(credentials, scheduler file, scratch directories, the record). Every step has a
deadline; failures are collected, never raised, and the report says what was ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import processes, records, registry
from .records import ID_PATTERN, DeploymentRecord
from .scratch import PREFIX as SCRATCH_PREFIX
from .scratch import deployment_dirs, forkserver_dirs, shared_cache_dir

if TYPE_CHECKING:
    from .backends.base import Backend, Leftover

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


def _parse_owner(tag: str) -> tuple[str | None, int | None, int | None]:
    host, _, rest = tag.partition(":")
    pid_text, _, ticks_text = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return host or None, None, None
    return host or None, pid, int(ticks_text) if ticks_text.isdigit() else None


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
            TaggedProcess(pid, processes.command_line(pid), host, owner_pid, owner_start)
        )
    return found


def _backends() -> list[Backend]:
    return list(registry.loaded_backends())


def _find_leftovers(
    deployment_id: str | None, recorded: Mapping[str, DeploymentRecord]
) -> tuple[dict[str, dict[str, list[Leftover]]], list[str]]:
    """Every backend's leftovers, by deployment id then backend name, and the problems."""
    found: dict[str, dict[str, list[Leftover]]] = {}
    problems: list[str] = []
    for backend in _backends():
        try:
            search = backend.find_leftovers(deployment_id, recorded)
        except Exception as exc:  # a broken backend must not hide the others' leftovers
            problems.append(f"The {backend.name} backend could not look for leftovers: {exc}")
            continue
        problems += search.problems
        for found_id, leftovers in search.found.items():
            if leftovers:
                found.setdefault(found_id, {})[backend.name] = list(leftovers)
    return found, problems


@dataclass
class LiveDeployment:
    """Everything found of one deployment: record, backends' leftovers, local processes.

    Attributes
    ----------
    id
        The deployment id.
    record
        Its record, or ``None`` when only leftovers or processes were found.
    leftovers
        What backends found of it elsewhere (batch jobs, remote hosts), by backend name.
    processes
        Its tagged local processes.
    """

    id: str
    record: DeploymentRecord | None = None
    leftovers: dict[str, list[Leftover]] = field(default_factory=dict)
    processes: list[TaggedProcess] = field(default_factory=list)

    @property
    def backend(self) -> str:
        """The backend's name: the record's, else the one that found leftovers, else ``?``."""
        if self.record is not None:
            return self.record.backend
        return next(iter(self.leftovers), "?")

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

        ``unknown`` means the owner runs on another host (or, for leftovers without
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

    def what(self) -> str:
        """``"2 batch jobs, 3 processes"`` style summary (each backend words its own)."""
        parts = []
        for backend in _backends():
            found = self.leftovers.get(backend.name)
            if found:
                parts.append(backend.describe_leftovers(found))
        if self.processes:
            count = len(self.processes)
            parts.append(f"{count} process{'es' if count != 1 else ''}")
        if self.record is None:
            parts.append("no record")
        return ", ".join(parts) or "-"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description, for ``daskdeploy ls --json``."""
        host, pid, _ = self.owner
        record = self.record
        leftovers = {
            backend.leftovers_key: [item.to_json() for item in self.leftovers.get(backend.name, [])]
            for backend in _backends()
            if backend.leftovers_key
        }
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
            **leftovers,
            "processes": [{"pid": p.pid, "command": p.command} for p in self.processes],
            "record": str(records.record_path(self.id)) if record else None,
        }


def find_deployments() -> tuple[list[LiveDeployment], list[str]]:
    """Every deployment with a trace here: records, backends' leftovers, tagged processes.

    Returns
    -------
    tuple
        The deployments (those with a record first, oldest first) and the problems met
        while looking (e.g. a batch system not answering), as sentences.
    """
    recorded = {record.id: record for record in records.read_all()}
    found = {id_: LiveDeployment(id_, record=record) for id_, record in recorded.items()}
    leftovers, problems = _find_leftovers(None, recorded)
    for deployment_id, by_backend in leftovers.items():
        found.setdefault(deployment_id, LiveDeployment(deployment_id)).leftovers = by_backend
    for deployment_id, tagged in tagged_processes().items():
        found.setdefault(deployment_id, LiveDeployment(deployment_id)).processes = tagged
    return list(found.values()), problems


def find_deployment(deployment_id: str) -> LiveDeployment | None:
    """What is found of one deployment, or ``None`` when nothing is."""
    record = records.read(deployment_id)
    leftovers, _ = _find_leftovers(deployment_id, {deployment_id: record} if record else {})
    found = leftovers.get(deployment_id, {})
    tagged = tagged_processes(deployment_id).get(deployment_id, [])
    if record is None and not found and not tagged:
        return None
    return LiveDeployment(deployment_id, record, found, tagged)


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
    leftovers
        What the backends ended elsewhere, as phrases (e.g. ``"cancelled 2 batch jobs"``).
    processes_ended
        Local processes ended (SIGTERM or SIGKILL).
    processes_killed
        Of those, how many needed SIGKILL.
    files_removed
        Files and directories removed (record, scratch, credentials, scheduler file).
    errors
        What could not be done, one sentence each.
    seconds
        How long it took.
    """

    id: str
    owner: str = ""
    leftovers: list[str] = field(default_factory=list)
    processes_ended: int = 0
    processes_killed: int = 0
    files_removed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One sentence: what was ended and removed, and how long it took."""
        parts = [self.owner] if self.owner else []
        parts += self.leftovers
        if self.processes_ended:
            killed = f" ({self.processes_killed} with SIGKILL)" if self.processes_killed else ""
            plural = "es" if self.processes_ended != 1 else ""
            parts.append(f"ended {self.processes_ended} local process{plural}{killed}")
        if self.files_removed:
            parts.append(f"removed {self.files_removed} file(s) or directories")
        did = "; ".join(parts) or "nothing was left"
        return f"{self.id}: {did} ({self.seconds:.1f} s)."


def end_deployment(target: LiveDeployment | str) -> CleanupReport:
    """End a deployment: its owner, its backends' leftovers, local processes and files.

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
        *(
            (
                f"ending what the {backend.name} backend left",
                _leftovers_step(backend, deployment, record, report),
            )
            for backend in _backends()
        ),
        ("ending local processes", lambda: _end_processes(deployment_id, report)),
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


def _leftovers_step(
    backend: Backend,
    deployment: LiveDeployment,
    record: DeploymentRecord | None,
    report: CleanupReport,
) -> Callable[[], None]:
    def step() -> None:
        found = deployment.leftovers.get(backend.name, [])
        outcome = backend.end_leftovers(deployment.id, record, found)
        report.leftovers += outcome.done
        report.errors += outcome.errors

    return step


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
    candidates += deployment_dirs(deployment_id)
    if (
        record is not None
        and record.scratch_dir
        and Path(record.scratch_dir).name.startswith(scratch_prefix)
    ):
        candidates.append(Path(record.scratch_dir))
    # The socket directory of the forkserver its (dead) owner started local workers from.
    if record is not None and record.pid and not processes.is_running(record.pid):
        candidates += forkserver_dirs(record.pid)
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
