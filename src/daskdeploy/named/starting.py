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
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

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
        return _up(name, backend, profile, idle_timeout, options_source, options)


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
    options_source: str,
    options: dict[str, Any],
) -> NamedDeployment:
    from .. import config
    from ..api import plan_from
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
    }
    found = _start_supervisor(name, spec, deployment_plan.options["timeout"] + START_MARGIN)
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


def _start_supervisor(name: str, spec: dict[str, Any], deadline_seconds: float) -> NamedDeployment:
    directory = named_dir(create=True)
    spec_path = directory / f".{name}.spec.json"
    os.close(_private_file(spec_path, json.dumps(spec)))
    log = log_path(name)
    log_descriptor = _private_file(log)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "daskdeploy.named.supervisor", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_descriptor,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not ended by the terminal's Ctrl-C or hang-up
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(log_descriptor)
    try:
        return _wait_until_ready(name, process, time.monotonic() + deadline_seconds)
    except BaseException:
        _stop(process)
        with contextlib.suppress(FileNotFoundError):
            spec_path.unlink()
        raise


def _wait_until_ready(
    name: str, process: subprocess.Popen[bytes], deadline: float
) -> NamedDeployment:
    while True:
        found = find(name)
        if found is not None and found.record.pid == process.pid and found.state == READY:
            return found
        status = process.poll()
        if status is not None:
            raise DeploymentError(
                f"Deployment {name!r} did not start (its supervisor exited with status "
                f"{status}); nothing was left running. The end of its log "
                f"({log_path(name)}):\n{_tail(name)}"
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


def _stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the supervisor (it tears its deployment down), SIGKILL after ``grace``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        from ..orphans import ORPHANED, end_deployment, find_deployments

        for found in find_deployments()[0]:
            if found.state == ORPHANED and found.owner[1] == process.pid:
                end_deployment(found)


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
    from ..orphans import end_deployment, find_deployment

    found = find(name)
    if found is None:
        raise DeploymentError(
            f"No deployment named {name!r} here: `daskdeploy ls` lists them (ids of "
            f"unnamed ones go to `daskdeploy cleanup ID`)."
        )
    live = find_deployment(found.id)
    if live is None:
        return f"{name} ({found.backend}): {found.id} had already ended, nothing was left"
    report = end_deployment(live)
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
