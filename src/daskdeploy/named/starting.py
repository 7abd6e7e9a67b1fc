"""``up``, ``down`` and ``scale`` of named deployments, as Python functions.

``up`` validates everything in the calling process (so a mistake fails fast and starts
nothing), then starts :mod:`.supervisor` in a session of its own with the log as its
output, and waits until the deployment's record says it is ready -- or the supervisor
exits, whose log then explains why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import processes
from ..errors import BackendUnavailableError, DeploymentError, OptionError
from .names import READY, NamedDeployment, check_name, find, log_path, named_dir

__all__ = ["down", "scale", "up"]

#: Seconds ``up`` allows on top of the ``timeout`` option for the supervisor to start.
START_MARGIN = 60.0


def up(
    name: str,
    backend: str | None = None,
    *,
    profile: str | None = None,
    idle_timeout: Any = None,
    scheduler_in_job: bool = False,
    options_source: str = "keyword argument",
    **options: Any,
) -> NamedDeployment:
    """Start deployment ``name`` that outlives this process; return once it is ready.

    Parameters
    ----------
    name
        What to call it: attach with ``deploy(attach=name)`` or
        ``daskdeploy run --attach name``, end with :func:`down`.
    backend, profile, **options
        As for :func:`daskdeploy.deploy`. In-place backends (``allocation``, ``mpi``,
        ``batchjob``) are refused: their workers are the tasks of one job or launch.
    idle_timeout
        End it after this long with no client and no task (seconds or text such as
        ``"2h"``; ``0``: never). Default: dask config ``daskdeploy.named.idle_timeout``
        (1 hour).
    scheduler_in_job
        Run the supervisor, and so the scheduler, in a batch job of the backend's system
        (sized as one worker job, named with the deployment id) instead of on this
        machine: for sites that forbid long-running processes on login nodes.

    Raises
    ------
    OptionError, UnknownBackendError
        A bad name, option or value; nothing was started.
    BackendUnavailableError
        The backend cannot run here.
    DeploymentError
        The name is taken, or the deployment failed to start (its log is quoted).
    """
    check_name(name)
    with _only_starter(name):
        return _up(name, backend, profile, idle_timeout, scheduler_in_job, options_source, options)


@contextlib.contextmanager
def _only_starter(name: str) -> Iterator[None]:
    """Hold the lock that makes this process the only ``up`` of ``name`` right now."""
    import fcntl

    path = named_dir(create=True) / f".{name}.lock"
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeploymentError(
                f"Another `daskdeploy up {name}` is starting a deployment of that name right "
                f"now: wait for it, then attach (`daskdeploy run --attach {name} ...`)."
            ) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(lock, fcntl.LOCK_UN)


def _up(
    name: str,
    backend: str | None,
    profile: str | None,
    idle_timeout: Any,
    scheduler_in_job: bool,
    options_source: str,
    options: dict[str, Any],
) -> NamedDeployment:
    from .. import config, scratch
    from ..api import plan_from
    from ..backends.base import Backend
    from ..options import duration_seconds

    existing = find(name)
    if existing is not None and existing.state != "gone":
        raise DeploymentError(
            f"A deployment named {name!r} already runs ({existing.id} on "
            f"{existing.backend}, {existing.state}). Attach to it (`daskdeploy run --attach "
            f"{name} script.py`, deploy(attach={name!r})) or end it first with "
            f"`daskdeploy down {name}`."
        )
    deployment_plan = plan_from(backend, profile, options, options_source)
    if not deployment_plan.options["tls"] and deployment_plan.options.sources.get("tls") in (
        None,
        "default",
    ):
        # It outlives this command and may be reached by name: TLS unless the user said
        # otherwise, so that other users of the machine cannot connect (local's default
        # is plain TCP on loopback, for a cluster that lives as long as its script).
        options = {**options, "tls": True}
        deployment_plan = plan_from(backend, profile, options, options_source)
    chosen = deployment_plan.backend
    if chosen.kind == "in-place":
        raise OptionError(
            f"Backend {chosen.name!r} runs Dask inside one job or launch, whose tasks are "
            f"its workers, so it cannot outlive a command: use `daskdeploy run` inside the "
            f"job instead of `daskdeploy up`, or a backend that submits its own worker jobs "
            f"to the batch system (`daskdeploy backends` lists them)."
        )
    if scheduler_in_job and type(chosen).submit_supervisor is Backend.submit_supervisor:
        raise OptionError(
            f"Backend {chosen.name!r} has no batch system to run the scheduler in: drop "
            f"--scheduler-in-job (scheduler_in_job=True); its scheduler runs here."
        )
    availability = chosen.available()
    if not availability:
        raise BackendUnavailableError(
            f"Backend {chosen.name!r} cannot run here: {availability.reason}"
        )
    idle = config.named_setting("idle_timeout") if idle_timeout is None else idle_timeout
    try:
        idle_seconds = 0.0 if idle in (0, "0", None, False) else duration_seconds(idle)
    except ValueError as exc:
        raise OptionError(f"Invalid idle_timeout: {exc}.") from None
    spec = {
        "name": name,
        "backend": chosen.name,
        "profile": deployment_plan.profile,
        "options": _json_options(options),
        "idle_timeout": idle_seconds,
        "deployment_id": scratch.new_deployment_id(),
        "scheduler_in_job": scheduler_in_job,
    }
    in_job = (chosen, deployment_plan.options) if scheduler_in_job else None
    margin = START_MARGIN + (deployment_plan.options["timeout"] if scheduler_in_job else 0)
    found = _start_supervisor(
        name, spec, deployment_plan.options["timeout"] + margin, in_job=in_job
    )
    if not deployment_plan.options["tls"] and (found.address or "").startswith("tcp://"):
        from ..credentials import plain_tcp_warning

        loopback = "//127." in found.address or "//localhost" in found.address
        print(plain_tcp_warning(chosen.name, found.address, loopback), file=sys.stderr)
    return found


def _json_options(options: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(options)))
    except (TypeError, ValueError) as exc:
        raise OptionError(
            f"The options of a named deployment go to another process as JSON, and these "
            f"cannot ({exc}): give numbers, text, lists and mappings only."
        ) from None


def _private_file(path: os.PathLike[str] | str, text: str = "") -> int:
    """Create (or truncate) ``path`` with mode 0600 and return its descriptor."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if text:
        os.write(descriptor, text.encode())
    return descriptor


class _LocalSupervisor:
    """The supervisor as a process of this machine, in a session of its own."""

    #: Seconds between two looks at whether it has ended.
    look_every = 0.1

    def __init__(self, command: list[str], log: os.PathLike[str]) -> None:
        log_descriptor = _private_file(log)
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_descriptor,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not ended by the terminal's Ctrl-C or hang-up
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(log_descriptor)

    def ended(self) -> str | None:
        status = self.process.poll()
        return None if status is None else f"its supervisor exited with status {status}"

    def stop(self, deployment_id: str) -> None:
        """SIGTERM the supervisor (it tears down), SIGKILL after 30 s; then end what is left."""
        _, killed = processes.terminate([self.process.pid], grace=30.0)
        self.process.wait()
        if killed:
            from ..orphans import end_deployment

            end_deployment(deployment_id)


class _SupervisorJob:
    """The supervisor as a batch job, named with the deployment id (``--scheduler-in-job``)."""

    #: Seconds between two looks at whether it has ended: asking a batch system costs.
    look_every = 1.0

    def __init__(
        self, backend: Any, options: Any, command: list[str], log: Path, deployment_id: str
    ) -> None:
        self.backend = backend
        os.close(_private_file(log))
        line = f"{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1"
        self.job_id = str(backend.submit_supervisor(options, line, deployment_id, log.parent))
        self.deployment_id = deployment_id

    def ended(self) -> str | None:
        if self.backend.supervisor_alive(self.deployment_id):
            return None
        return f"its supervisor's job {self.job_id} ended"

    def stop(self, deployment_id: str) -> None:
        from ..orphans import end_deployment

        self.backend.cancel_supervisor(deployment_id)
        end_deployment(deployment_id)  # what it had submitted, if it got that far


def _start_supervisor(
    name: str,
    spec: dict[str, Any],
    deadline_seconds: float,
    in_job: tuple[Any, Any] | None = None,
) -> NamedDeployment:
    directory = named_dir(create=True)
    spec_path = directory / f".{name}.spec.json"
    os.close(_private_file(spec_path, json.dumps(spec)))
    command = [sys.executable, "-m", "daskdeploy.named.supervisor", str(spec_path)]
    log = log_path(name)
    supervisor: _LocalSupervisor | _SupervisorJob | None = None
    try:
        if in_job is None:
            supervisor = _LocalSupervisor(command, log)
        else:
            supervisor = _SupervisorJob(*in_job, command, log, spec["deployment_id"])
        return _wait_until_ready(name, spec["deployment_id"], supervisor, deadline_seconds)
    except BaseException:
        if supervisor is not None:
            supervisor.stop(spec["deployment_id"])
        with contextlib.suppress(FileNotFoundError):
            spec_path.unlink()
        raise


def _wait_until_ready(
    name: str, deployment_id: str, supervisor: Any, deadline_seconds: float
) -> NamedDeployment:
    deadline = time.monotonic() + deadline_seconds
    next_look = 0.0
    while True:
        found = find(name)
        if found is not None and found.id == deployment_id and found.state == READY:
            return found
        if time.monotonic() >= next_look:
            next_look = time.monotonic() + supervisor.look_every
            ended = supervisor.ended()
            if ended is not None:
                raise DeploymentError(
                    f"Deployment {name!r} did not start ({ended}); nothing was left "
                    f"running. The end of its log ({log_path(name)}):\n{_tail(name)}"
                )
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"Deployment {name!r} was not ready in time; it was stopped and nothing "
                f"was left running. The end of its log ({log_path(name)}):\n{_tail(name)}"
            )
        time.sleep(0.1)


def _tail(name: str, lines: int = 15) -> str:
    try:
        text = log_path(name).read_text(errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line for line in text.splitlines()[-lines:])


def down(name: str) -> str:
    """End deployment ``name`` and everything it started; return what was ended.

    Works whether its supervisor runs or died: the supervisor gets SIGTERM and tears the
    deployment down; whatever is left (batch jobs, remote processes, files) is then
    ended as ``daskdeploy cleanup`` would.

    Raises
    ------
    DeploymentError
        No deployment of that name, or ending it left something behind.
    """
    from .. import records, registry
    from ..orphans import end_deployment, find_deployment

    found = find(name)
    if found is None:
        raise DeploymentError(
            f"No deployment named {name!r} here: `daskdeploy ls` lists them (ids of "
            f"unnamed ones go to `daskdeploy cleanup ID`)."
        )
    in_job = bool(found.record.named.get("scheduler_in_job"))
    backend = registry.get_backend(found.backend) if in_job else None
    if backend is not None and not found.record.is_local:
        # Its supervisor runs in a job on a node this process cannot signal: cancelling
        # the job sends it SIGTERM, and it tears the deployment down itself.
        backend.cancel_supervisor(found.id)
        deadline = time.monotonic() + 60
        while records.read(found.id) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
    live = find_deployment(found.id)
    if live is None:
        return f"{name} ({found.backend}): {found.id} had already ended, nothing was left"
    report = end_deployment(live)
    if backend is not None and backend.supervisor_alive(found.id):
        backend.cancel_supervisor(found.id)
    if report.errors:
        raise DeploymentError(
            f"Ending {name!r} ({found.id}) left something behind: {'; '.join(report.errors)}"
        )
    return f"{name} ({found.backend}): {report.summary()}"


def scale(name: str, workers: int) -> str:
    """Ask deployment ``name`` to run ``workers`` workers; return its supervisor's answer."""
    from .cluster import NamedCluster

    cluster = NamedCluster(name)
    try:
        return cluster._request("scale", n=int(workers))
    finally:
        cluster.close()
