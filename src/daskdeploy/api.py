"""The public entry point: ``deploy()`` chooses a backend, resolves its options, starts it."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import adoption, config, lifecycle, profiles, records, registry, scratch
from .backends.base import Backend, LaunchCommand, StartContext
from .commands import CommandError
from .deployment import DeployedClient, Deployment
from .errors import (
    BackendUnavailableError,
    DaskDeployError,
    DeploymentError,
    UnknownBackendError,
    closest_match_hint,
)
from .mainguard import hide_main_from_spawn
from .options import ResolvedOptions, resolve_options
from .orphans import tag_processes
from .reaper import Reaper

__all__ = ["Plan", "deploy", "plan", "plan_from"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """A validated deployment that has not started yet.

    Attributes
    ----------
    backend
        The backend that will start it.
    options
        Validated options with the source of each value.
    chosen_by
        How the backend was chosen (argument, environment variable, config, auto).
    profile
        Name of the profile the options came from, if any.
    """

    backend: Backend
    options: ResolvedOptions
    chosen_by: str
    profile: str | None = None

    def describe(self) -> str:
        """Return the dry-run text: backend, options with sources, what would start."""
        lines = [
            f"Backend: {self.backend.name} ({self.backend.kind}; chosen by {self.chosen_by})",
            f"Profile: {self.profile or '-'}",
            "Options:",
            self.options.describe(),
        ]
        what = self.backend.describe(self.options)
        if what:
            lines += ["Would start:", f"  {what}"]
        return "\n".join(lines)

    def check(self) -> str | None:
        """Ask the resource manager whether it would accept this deployment.

        Starts and submits nothing (a batch system is asked with a test submission).
        Returns its answer, or ``None`` when the backend has nothing to ask.

        Raises
        ------
        BackendUnavailableError
            The backend cannot run here.
        DeploymentError
            The resource manager would reject it; the message quotes why.
        """
        availability = self.backend.available()
        if not availability:
            raise BackendUnavailableError(
                f"Backend {self.backend.name!r} cannot run here: {availability.reason}"
            )
        return self.backend.check(self.options)

    def launch_command(self, program: list[str]) -> LaunchCommand | None:
        """How to start ``program`` under this backend's launcher, or ``None`` to deploy here.

        ``daskdeploy run --backend mpi`` outside ``mpiexec`` gets the ``mpiexec -n N``
        command line that runs ``program`` (the same ``daskdeploy run`` on every rank).

        Raises
        ------
        BackendUnavailableError
            A launcher is needed but none can be found; the message says what to install.
        """
        return self.backend.launch_command(self.options, program)

    def start(self, *, name: str | None = None, deployment_id: str | None = None) -> DeployedClient:
        """Start the deployment and return its client, tearing everything down on failure.

        ``name`` and ``deployment_id`` are for named deployments (``daskdeploy up NAME``):
        their record carries the name from the moment it is written, so ``daskdeploy ls``
        shows them ``starting``, and the id is chosen by ``up`` beforehand (a batch job
        running the scheduler is named with it).
        """
        availability = self.backend.available()
        if not availability:
            raise BackendUnavailableError(
                f"Backend {self.backend.name!r} cannot run here: {availability.reason}"
            )
        scratch.sweep_stale()
        deployment_id = deployment_id or scratch.new_deployment_id()
        scratch_dir = scratch.make_scratch_dir(deployment_id)
        deployment = Deployment(deployment_id, self.backend.name, self.options, scratch_dir)
        # Registered first, so it runs last: tell the reaper the teardown is complete and
        # remove the record only once everything else has gone.
        guard = Reaper(deployment_id)
        deployment.add_cleanup("stop the reaper and remove the record", guard.finish)
        deployment.add_cleanup(
            "remove scratch directories", scratch.remover(deployment_id, scratch_dir)
        )
        lifecycle.register(deployment)
        try:
            deployment.add_cleanup("restore __main__", hide_main_from_spawn())
            # Processes the backend starts inherit the id, so `daskdeploy cleanup` finds them.
            deployment.add_cleanup("untag new processes", tag_processes(deployment_id))
            with _scratch_as_temporary_directory(scratch_dir), adoption.paused():
                running = self.backend.start(self.options, StartContext(deployment_id, scratch_dir))
            deployment.attach(running)
            # (MPI's serving ranks never return from start, so only the client rank gets here.)
            record = records.DeploymentRecord.for_this_process(
                deployment_id,
                self.backend.name,
                scheduler_address=running.address,
                scratch_dir=scratch_dir,
                data=running.record,
            )
            if name is not None:
                record.name, record.named = name, {"state": "starting"}
            guard.start(record)
            client = DeployedClient.for_deployment(deployment, owner=True)
            _wait_for_workers(client, deployment)
            deployment.ready_after = time.monotonic() - deployment.started_at
            if self.options.get("report"):
                from .report.efficiency import started_meter_or_none

                deployment.meter = started_meter_or_none(
                    client,
                    label=f"{deployment_id} on {self.backend.name}",
                    startup_seconds=deployment.ready_after,
                )
        except BaseException as exc:
            deployment.teardown()
            # A failing external command (squeue, sbatch, ...) is a failed start like any
            # other: DeploymentError, exit status 1, whatever had started is gone.
            failed_start = isinstance(exc, CommandError) or not isinstance(exc, DaskDeployError)
            if failed_start and isinstance(exc, Exception):
                raise DeploymentError(
                    f"Starting the {self.backend.name!r} backend failed: "
                    f"{_root_cause(exc)}. Nothing was left running."
                ) from exc
            raise
        deployment.announce()
        return client


@contextlib.contextmanager
def _scratch_as_temporary_directory(scratch_dir: Path) -> Iterator[None]:
    """While a backend starts, point dask's ``temporary-directory`` at the scratch dir.

    Schedulers and workers created without a ``local_directory`` otherwise leave
    ``$TMPDIR/dask-scratch-space`` behind. A directory the user configured is kept.
    """
    import dask.config

    if dask.config.get("temporary-directory", None):
        yield
        return
    with dask.config.set({"temporary-directory": str(scratch_dir)}):
        yield


def _root_cause(exc: BaseException) -> str:
    """Describe the innermost cause of a chain like "Cluster failed to start" -> ValueError."""
    messages = [f"{type(exc).__name__}: {exc}"]
    seen = {id(exc)}
    while True:
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if cause is None or id(cause) in seen:
            break
        exc = cause
        seen.add(id(exc))
        messages.append(f"{type(exc).__name__}: {exc}")
    return messages[0] if len(messages) == 1 else f"{messages[0]} (caused by {messages[-1]})"


def _wait_for_workers(client: DeployedClient, deployment: Deployment) -> None:
    """Wait for the expected workers, asking the backend about trouble once a second."""
    running = deployment.running
    expected = running.expected_workers if running else 0
    if not running or not expected:
        return
    timeout = deployment.options["timeout"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            remaining = max(deadline - time.monotonic(), 0.01)
            client.wait_for_workers(expected, timeout=min(1.0, remaining))
            client.scheduler_info(n_workers=0)  # so that repr(client) counts them already
            return
        except TimeoutError:
            pass
        if running.check is not None:
            running.check()
        if time.monotonic() >= deadline:
            break
    connected = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    diagnosis = running.diagnose() if running.diagnose is not None else ""
    raise DeploymentError(
        f"Only {connected} of {expected} workers of the {deployment.backend!r} backend "
        f"connected within {timeout:g} s. Raise the timeout option if workers start "
        f"slowly, or ask for fewer workers." + (f"\n{diagnosis}" if diagnosis else "")
    )


def _auto_backend() -> str:
    for backend in registry.loaded_backends():
        if backend.detect():
            return backend.name
    return registry.DEFAULT_BACKEND


def plan(backend: str | None = None, *, profile: str | None = None, **options: Any) -> Plan:
    """Validate a deployment without starting anything.

    Takes the same arguments as :func:`deploy` and returns a :class:`Plan` whose
    :meth:`~Plan.describe` says what would start and :meth:`~Plan.start` starts it.

    Raises
    ------
    UnknownBackendError, OptionError, ConfigError
        For unknown names, unknown options or invalid values, before anything starts.
    """
    return plan_from(backend, profile, options)


def plan_from(
    backend: str | None,
    profile: str | None,
    options: Mapping[str, Any],
    options_source: str = "keyword argument",
) -> Plan:
    """Build a :class:`Plan`; ``options_source`` names where ``options`` came from."""
    requested, chosen_by = config.requested_backend(backend)
    profile_settings: Mapping[str, Any] = {}
    if profile is None and requested not in registry.backend_names():
        if requested in profiles.list_profiles():
            profile = requested
        elif requested != "auto":
            known = registry.backend_names()
            saved = sorted(profiles.list_profiles())
            named = _named_deployment_names()
            raise UnknownBackendError(
                f"Unknown backend {requested!r} (from {chosen_by})."
                f"{closest_match_hint(requested, known + saved + named)} Known backends: "
                f"{', '.join(known)}"
                + (f"; saved profiles: {', '.join(saved)}" if saved else "")
                + (f"; named deployments: {', '.join(named)}" if named else "")
                + "."
            )
    if profile is not None:
        profile_backend, profile_settings = profiles.get_profile(profile)
        if backend is not None and backend != profile and backend != profile_backend:
            raise UnknownBackendError(
                f"Profile {profile!r} is for backend {profile_backend!r}, not {backend!r}. "
                f"Drop one of the two arguments."
            )
        requested, chosen_by = profile_backend, f"profile {profile!r}"
    if requested == "auto":
        requested, chosen_by = _auto_backend(), f"{chosen_by} -> auto-detected"
    try:
        chosen = registry.get_backend(requested)
    except UnknownBackendError as exc:
        if profile is None:
            raise
        raise UnknownBackendError(
            f"{exc} It is named by {chosen_by}: fix its 'backend' with "
            f"`daskdeploy profile save {profile} --backend NAME ...`, or delete it."
        ) from exc
    section = config.backend_section(chosen.name)
    defaults = {
        k: v for k, v in section.items() if config.source_of(chosen.name, k, v) == "default"
    }
    configured = {k: v for k, v in section.items() if k not in defaults}
    layers = [
        ("default", defaults),
        (f"dask config daskdeploy.{chosen.name}.{{name}}", configured),
        (f"profile {profile!r}", profile_settings),
        (options_source, options),
    ]
    resolved = resolve_options(chosen.name, chosen.options(), layers)
    chosen.validate(resolved)
    return Plan(chosen, resolved, chosen_by, profile)


def _named_deployment_names() -> list[str]:
    """Names of the named deployments with a record here (for error messages)."""
    from .named import list_named

    return sorted({found.name for found in list_named()})


def deploy(
    backend: str | None = None,
    *,
    profile: str | None = None,
    attach: str | None = None,
    **options: Any,
) -> DeployedClient:
    """Start Dask workers somewhere and return a connected :class:`distributed.Client`.

    Parameters
    ----------
    backend
        Where to run: a backend name (``"local"``, ...), a saved profile name, or
        ``"auto"``. When omitted: the ``DASKDEPLOY_BACKEND`` environment variable, then
        the dask config key ``daskdeploy.backend``, then ``"auto"`` (local on a laptop).
    profile
        Name of saved settings (see :func:`daskdeploy.save_profile`); keyword arguments
        override the profile's values.
    attach
        Name of a running named deployment (``daskdeploy up NAME``) to connect to instead
        of starting one; closing the client leaves it running. ``deploy("NAME")`` does the
        same when NAME is neither a backend nor a profile (those win: ``up`` refuses
        their names). Only ``quiet``, ``report`` and ``adopt`` apply then.
    **options
        Backend options. Every backend accepts ``workers`` (worker processes),
        ``threads_per_worker``, ``memory_per_worker`` (e.g. ``"4GB"``), ``timeout``
        (seconds to wait for workers), ``dashboard``, ``quiet``, ``report``, ``tls`` and
        ``adopt``; each backend adds its own (``daskdeploy backends --options`` lists
        them). Unset options come from dask config ``daskdeploy.<backend>.<option>``,
        then the packaged defaults.

    Returns
    -------
    DeployedClient
        A real :class:`distributed.Client`, set as the default scheduler. Closing it
        (``close()``, a ``with`` block, interpreter exit, SIGINT/SIGTERM) stops every
        process and removes every file the deployment started.

    Raises
    ------
    UnknownBackendError, OptionError, ConfigError
        Bad names or values; raised before anything starts.
    BackendUnavailableError
        The backend cannot run here; the message says what is missing.
    DeploymentError
        Starting failed; whatever had started was torn down.

    Notes
    -----
    Inside ``daskdeploy run``, ``deploy()`` connects to the deployment the command
    started, so one script runs unchanged on whatever backend the command line chose.

    Examples
    --------
    >>> import daskdeploy
    >>> with daskdeploy.deploy("local", workers=2, quiet=True) as client:
    ...     client.submit(sum, [1, 2, 3]).result()
    6
    """
    running = lifecycle.ambient()
    if running is not None:
        if backend is not None or profile is not None or options:
            print(
                f"daskdeploy: deploy() inside `daskdeploy run` uses the run's deployment "
                f"{running.id} ({running.backend}); its arguments are ignored.",
                file=sys.stderr,
            )
        return DeployedClient.for_deployment(running, owner=False)
    if attach is None and profile is None and backend is not None:
        attach = _named_deployment(backend)
    if attach is not None:
        return _attach(attach, backend, profile, options)
    return plan(backend, profile=profile, **options).start()


def _named_deployment(name: str) -> str | None:
    """``name`` if it names a deployment rather than a backend or profile, else ``None``."""
    if name == "auto" or name in registry.backend_names() or name in profiles.list_profiles():
        return None
    from .named import find

    return name if find(name) is not None else None


_ATTACH_OPTIONS = ("quiet", "report", "adopt")


def _attach(
    name: str, backend: str | None, profile: str | None, options: Mapping[str, Any]
) -> DeployedClient:
    """Connect to named deployment ``name``; refuse arguments that would be ignored."""
    from .errors import OptionError
    from .named import attach

    ignored = [key for key in options if key not in _ATTACH_OPTIONS]
    if profile is not None or (backend is not None and backend != name) or ignored:
        given = [*ignored, *(["profile"] if profile else [])]
        given += ["backend"] if backend is not None and backend != name else []
        raise OptionError(
            f"deploy(attach={name!r}) connects to a running deployment, whose backend and "
            f"workers were set by `daskdeploy up`: drop {', '.join(given)} (only "
            f"{', '.join(_ATTACH_OPTIONS)} apply), or resize it with `daskdeploy scale "
            f"{name} N`."
        )
    return attach(name, **{key: bool(value) for key, value in options.items()})
